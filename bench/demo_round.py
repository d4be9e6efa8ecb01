"""One demo round end to end, as `make run` gives it to a user; prints the per-stage table.

What it does, in a fresh embedded stack (SQLite, filesystem broker) under a temporary
PREFLOOP_VAR_DIR so nothing of var/ is touched except the model it links:

1. links `var/models/` in (running `python -m trainer bootstrap` first when the SmolLM2
   directory is missing), `manage.py migrate`, `manage.py seed_demo --no-sampling` (the demo
   project and accounts, without the one-off sampling of every demo prompt that `make run`
   does on its first start: a round samples its own prompts);
2. starts what `scripts/run.sh` starts: a Celery worker for `default`, one for `gpu`, beat and
   `runserver`, each with its log in the temporary folder;
3. logs in as `researcher` and starts a round through the API with `{"preset": "cpu-demo"}`,
   and runs `manage.py simulate_raters --project demo --raters 6 --adversarial 1 --wait ...`
   beside it (the README's commands);
4. polls `GET /api/rounds/{id}/` until the round is done (or failed), samples the load
   average every 2 s, stops every process it started, and prints one row per stage: wall
   time (the run's started_at → finished_at), the mean 1-minute load average while it ran,
   and what it did.

    .venv/bin/python bench/demo_round.py                  # preset cpu-demo
    .venv/bin/python bench/demo_round.py --busy 2            # beside two busy processes
    .venv/bin/python bench/demo_round.py --preset cpu-demo --config '{"ppo": {"total_steps": 2}}'

Writes the result to var/bench/demo_round.json (--json). The load average counts this
round's own processes too (the trainer is one or two of it); `load_before` is the machine's
load before anything started. `--busy N` runs N CPU-bound processes (a Python loop each, at
normal priority) from start to end, the way other test suites or benchmarks load a shared
machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("sampling", "collecting", "exporting", "sft", "rm", "ppo", "evaluating")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    def __init__(self, base: str) -> None:
        self.base = base
        self.token = ""

    def call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()[:500].decode(errors="replace")


class LoadSampler(threading.Thread):
    """(monotonic time, 1-minute load average) every `interval` seconds."""

    def __init__(self, interval: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.time(), os.getloadavg()[0]))
            self.stop.wait(self.interval)

    def mean(self, start: float, end: float) -> float | None:
        values = [load for at, load in self.samples if start <= at <= end]
        return round(sum(values) / len(values), 2) if values else None


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def _what(stage: str, metrics: dict) -> str:
    m = metrics or {}
    if stage == "sampling":
        return (
            f"{m.get('completions')} answers, {m.get('new_tokens')} new tokens "
            f"({m.get('tokens_per_second')} tok/s), {m.get('tasks_created')} ranking tasks"
        )
    if stage == "collecting":
        return f"{m.get('judgments', m.get('collected', '?'))} judgments"
    if stage == "exporting":
        return f"snapshot: {m.get('rankings.jsonl')} rankings, {m.get('pairs.jsonl')} pairs"
    if stage == "sft":
        if m.get("skipped"):
            return f"skipped: {m.get('demonstrations')} demonstrations"
        return f"{m.get('steps')} optimiser steps on {m.get('demonstrations')} demonstrations"
    if stage == "rm":
        accuracy = m.get("valid_accuracy")
        accuracy = f"{accuracy:.2f}" if isinstance(accuracy, float) else accuracy
        return (
            f"{m.get('steps')} optimiser steps, held-out accuracy {accuracy} "
            f"on {m.get('valid_pairs')} pairs"
        )
    if stage == "ppo":
        seconds = m.get("step_seconds_mean")
        return (
            f"{m.get('steps_done')} steps, {seconds:.1f} s each, response length "
            f"{m.get('response_length_last')}, score {m.get('score_first'):.2f} → "
            f"{m.get('score_last'):.2f}"
            if seconds is not None
            else f"{m.get('steps_done')} steps"
        )
    if stage == "evaluating":
        parts = []
        for label in ("vs_parent", "hidden_rule"):
            overall = ((m.get(label) or {}).get("win_rate") or {}).get("overall") or {}
            if overall:
                parts.append(f"{label} win rate {overall.get('win_rate'):.2f} (n={overall['n']})")
        parts.append(f"{m.get('ab_tasks')} A/B tasks")
        return ", ".join(parts)
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-demo")
    parser.add_argument("--config", default="{}", help="round config overrides (JSON)")
    parser.add_argument("--raters", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after (s)")
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound processes beside it")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench" / "demo_round.json")
    args = parser.parse_args()

    python = sys.executable
    models_dir = ROOT / "var" / "models"
    if not (models_dir / "smollm2-135m-instruct" / "config.json").is_file():
        subprocess.run([python, "-m", "trainer", "bootstrap"], cwd=ROOT, check=True)
    load_before = os.getloadavg()
    var = Path(tempfile.mkdtemp(prefix="prefloop-demo-round-"))
    (var / "models").symlink_to(models_dir.resolve(), target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        PREFLOOP_VAR_DIR=str(var),
        DJANGO_SETTINGS_MODULE="annotation_site.settings.local",
        ARTIFACT_ROOT=str(var / "artifacts"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("PREFLOOP_TEST_DB_SUFFIX", None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def manage(*argv: str) -> None:
        subprocess.run([python, "manage.py", *argv], cwd=ROOT, env=env, check=True)

    processes: list[subprocess.Popen] = []

    def start(name: str, argv: list[str]) -> subprocess.Popen:
        log = (var / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        processes.append(process)
        return process

    sampler = LoadSampler()
    result: dict = {}
    try:
        for index in range(args.busy):
            start(f"busy{index}", [python, "-c", "while True: pass"])
        manage("migrate", "--noinput", "-v", "0")
        manage("seed_demo", "--no-sampling")
        celery = [python, "-m", "celery", "-A", "annotation_site"]
        start("worker-default", [*celery, "worker", "-Q", "default", "-n", "default@%h",
                                 "--concurrency", "1", "--loglevel", "INFO"])  # fmt: skip
        start("worker-gpu", [*celery, "worker", "-Q", "gpu", "-n", "gpu@%h",
                             "--concurrency", "1", "--loglevel", "INFO"])  # fmt: skip
        start("beat", [*celery, "beat", "--schedule", str(var / "celerybeat-schedule"),
                       "--loglevel", "INFO"])  # fmt: skip
        start("web", [python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"])
        api = Api(url)
        for _ in range(120):
            try:
                if api.call("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        status, body = api.call(
            "POST", "/api/auth/token/", {"username": "researcher", "password": "prefloop"}
        )
        assert status == 200, body
        api.token = body["token"]
        status, projects = api.call("GET", "/api/projects/")
        rows = projects["results"] if isinstance(projects, dict) else projects
        project_id = next(p["id"] for p in rows if p.get("slug") == "demo")
        time.sleep(3)  # let the workers finish starting
        sampler.start()
        status, created = api.call(
            "POST",
            f"/api/projects/{project_id}/rounds/",
            {"preset": args.preset, "config": json.loads(args.config)},
        )
        assert status == 201, created
        round_id = created["id"]
        started = time.time()
        print(f"round {round_id} started ({args.preset}); load before: {load_before}", flush=True)
        start(
            "raters",
            [python, "manage.py", "simulate_raters", "--url", url, "--project", "demo",
             "--raters", str(args.raters), "--adversarial", "1", "--max-judgments", "300",
             "--wait", str(int(args.timeout)), "--max-seconds", str(int(args.timeout))],
        )  # fmt: skip
        seen = ""
        while time.time() - started < args.timeout:
            status, detail = api.call("GET", f"/api/rounds/{round_id}/")
            if status == 200:
                if detail["stage"] != seen:
                    seen = detail["stage"]
                    print(f"  {time.time() - started:6.0f} s  {seen}", flush=True)
                if detail["stage"] in ("done", "failed", "cancelled"):
                    break
            time.sleep(2)
        sampler.stop.set()
        runs = {row["stage"]: row for row in detail["runs"]}
        finished = _ts(detail.get("finished_at")) or time.time()
        stages = []
        for stage in STAGES:
            row = runs.get(stage)
            if row is None:
                continue
            begin, end = _ts(row["started_at"]), _ts(row["finished_at"])
            stages.append(
                {
                    "stage": stage,
                    "status": row["status"],
                    "seconds": round(end - begin, 1) if begin and end else None,
                    "load": sampler.mean(begin or started, end or finished),
                    "what": _what(stage, row["metrics"]),
                    "metrics": {k: v for k, v in (row["metrics"] or {}).items() if k != "config"},
                }
            )
        total = round(finished - _ts(detail["created_at"]), 1)
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "preset": args.preset,
            "overrides": json.loads(args.config),
            "round_stage": detail["stage"],
            "message": detail.get("message"),
            "round_seconds": total,
            "load_before": [round(x, 2) for x in load_before],
            "load_mean": sampler.mean(started, finished),
            "busy_processes": args.busy,
            "cpus": os.cpu_count(),
            "stages": stages,
            "round_config": detail["config"],
        }
    finally:
        sampler.stop.set()
        for process in reversed(processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if args.keep:
            print(f"kept {var}")
        else:
            shutil.rmtree(var, ignore_errors=True)
    if not result:
        return 1
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    print(
        f"\n{result['date']}, preset {result['preset']}, {result['cpus']} CPUs, "
        f"{args.busy} busy processes beside it, load average before {result['load_before']}, "
        f"mean during the round {result['load_mean']}\n"
    )
    print("| stage | wall time | load | what it did |\n|---|---|---|---|")
    for row in result["stages"]:
        print(f"| {row['stage']} | {row['seconds']} s | {row['load']} | {row['what']} |")
    minutes = result["round_seconds"] / 60
    print(f"| **round** | **{result['round_seconds']} s ({minutes:.1f} min)** | "
          f"{result['load_mean']} | {result['round_stage']} |")  # fmt: skip
    return 0 if result["round_stage"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
