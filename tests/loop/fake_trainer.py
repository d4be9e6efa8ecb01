"""A stand-in for `python -m trainer ...` in direct tests of the stages and the executor.

It replaces `apps.loop.runner.run`: it reads the run.json a stage wrote, records it, and
writes what the real command would (samples, a model folder, completions, metrics) in
milliseconds, without torch. Tests then assert what the stage asked the trainer for and what
it did with the outputs.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from apps.loop import runner
from trainer import contract


def write_model_dir(path: Path) -> None:
    """config.json and a one-number model.safetensors: a whole model folder to the checks."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "fake"}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (path / "model.safetensors").write_bytes(
        struct.pack("<Q", len(header)) + header + struct.pack("<f", 1.0)
    )


@dataclass
class FakeTrainer:
    calls: list[tuple[str, dict]] = field(default_factory=list)
    metrics: dict[str, dict] = field(default_factory=dict)
    returncode: int = 0
    output: str = ""

    def configs(self, command: str) -> list[dict]:
        return [config for name, config in self.calls if name == command]

    def __call__(self, argv, *, log_path, metrics_path, on_start, on_tick, **_) -> runner.Outcome:
        command = argv[argv.index("trainer") + 1]
        config = json.loads(Path(argv[argv.index("--config") + 1]).read_text())
        self.calls.append((command, config))
        out = Path(config["out"])
        out.mkdir(parents=True, exist_ok=True)
        log_path.write_text(self.output)
        on_start(4_000_000)  # no such process: nothing to kill
        if self.returncode:
            return runner.Outcome(self.returncode, False, self.output)
        getattr(self, f"_{command}")(config, out)
        rows = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
        metrics_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        if on_tick(rows, "working\n"):
            return runner.Outcome(None, True, "")
        final = {"steps": 2, "finished": True, **self.metrics.get(command, {})}
        (out / contract.METRICS_JSON).write_text(json.dumps({**final, "config": config}))
        return runner.Outcome(0, False, "")

    def _sample(self, config: dict, out: Path) -> None:
        rows = [
            {
                "prompt_id": prompt.id,
                "prompt": prompt.prompt,
                "index": index,
                "completion": f"answer {index} to {prompt.id}",
                "seed": index,
                "sampling": {"temperature": 1.0},
                "model": config["model"],
                "finish_reason": "eos",
            }
            for prompt in contract.read_prompts(config["prompts"])
            for index in range(config["k"])
        ]
        (out / contract.SAMPLES).write_text("".join(json.dumps(r) + "\n" for r in rows))

    def _sft(self, config: dict, out: Path) -> None:
        write_model_dir(out)

    _rm = _sft
    _ppo = _sft

    def _eval(self, config: dict, out: Path) -> None:
        if not config.get("prompts"):  # the reward model on held-out rankings only
            self.metrics.setdefault("eval", {"win_rate": {"overall": {"win_rate": 0.75, "n": 2}}})
            return
        prompts = contract.read_prompts(config["prompts"], split=config["split"])
        rows = [
            {
                "prompt_id": p.id,
                "completion": f"new {p.id}",
                "reference_completion": f"old {p.id}",
                "sampling": {"temperature": 0.0},
                "seed": 0,
            }
            for p in prompts
        ]
        (out / contract.COMPLETIONS).write_text("".join(json.dumps(r) + "\n" for r in rows))
        self.metrics.setdefault("eval", {"win_rate": {"overall": {"win_rate": 0.75, "n": 2}}})
