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


QUIET_MINUTES, BUSY_MINUTES = 15.0, 25.0  # issue 11: quiet machine / beside 2 busy processes


def round_report(api: Api, round_id: int, sampler: LoadSampler, timeout: float) -> dict:
    """Poll a round until it ends; its stages (wall time, load, what they did) and metrics."""
    started = time.time()
    seen, detail = "", {}
    while time.time() - started < timeout:
        status, detail = api.call("GET", f"/api/rounds/{round_id}/")
        if status == 200:
            if detail["stage"] != seen:
                seen = detail["stage"]
                print(f"  {time.time() - started:6.0f} s  {seen}", flush=True)
            if detail["stage"] in ("done", "failed", "cancelled"):
                break
        time.sleep(2)
    runs = {row["stage"]: row for row in detail.get("runs", [])}
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
    evaluating = (runs.get("evaluating") or {}).get("metrics") or {}
    return {
        "round": detail.get("number"),
        "round_stage": detail.get("stage"),
        "message": detail.get("message"),
        "round_seconds": round(finished - _ts(detail["created_at"]), 1),
        "load_mean": sampler.mean(_ts(detail["created_at"]), finished),
        "stages": stages,
        "learning": evaluating.get("learning") or {},
        "round_config": detail.get("config"),
    }


def _rate(figure: dict | None) -> str:
    if not figure or figure.get("win_rate") is None:
        return "—"
    return (
        f"{figure['win_rate']:.3f} (95% CI {figure['ci_low']:.3f}–{figure['ci_high']:.3f}, "
        f"n={figure['n']})"
    )


def _accuracy(figure: dict | None, n_key: str = "pairs") -> str:
    if not figure or figure.get("accuracy", figure.get("value")) is None:
        return "—"
    value = figure.get("accuracy", figure.get("value"))
    ci = figure.get("ci") or [None, None]
    n = figure.get(n_key, figure.get("n_pairs"))
    shown = f"{value:.3f}"
    if ci[0] is not None:
        shown += f" (95% CI {ci[0]:.3f}–{ci[1]:.3f}"
        shown += f", n={n} pairs)" if n is not None else ")"
    return shown


def checks(rounds: list[dict], busy: int) -> list[tuple[str, bool, str]]:
    """Issue 11's thresholds on the first round (and on the second when there is one):
    (what, passed, measured)."""
    first = rounds[0]
    learnt = first["learning"]
    rm = learnt.get("rm_accuracy") or {}
    consensus = learnt.get("rm_accuracy_consensus") or {}
    ceiling = learnt.get("agreement_ceiling") or {}
    ppo = learnt.get("ppo") or {}
    hidden = learnt.get("win_rate_hidden_rule") or {}
    minutes = first["round_seconds"] / 60
    limit = BUSY_MINUTES if busy >= 2 else QUIET_MINUTES
    accuracy, agreement = rm.get("value"), ceiling.get("value")
    first_q, last_q = ppo.get("score_first_quarter"), ppo.get("score_last_quarter")
    result = [
        ("round 1 ended done", first["round_stage"] == "done", str(first["round_stage"])),
        (
            "RM held-out accuracy vs the raters' consensus ≥ 0.70 on ≥ 100 pairs",
            consensus.get("value") is not None
            and consensus["value"] >= 0.70
            and (consensus.get("n_pairs") or 0) >= 100,
            f"{_accuracy(consensus, 'n_pairs')}; vs each rater {_accuracy(rm, 'n_pairs')}",
        ),
        (
            "RM accuracy ≥ 0.9 × raters' agreement on the same held-out tasks",
            bool(accuracy and agreement and accuracy >= 0.9 * agreement),
            f"{accuracy or float('nan'):.3f} vs 0.9 × {agreement or float('nan'):.3f} "
            f"(agreement n={ceiling.get('n_rater_pairs')} rater pairs on "
            f"{ceiling.get('n_tasks')} tasks)",
        ),
        (
            "PPO reward: last quarter > first quarter",
            first_q is not None and last_q is not None and last_q > first_q,
            f"{first_q if first_q is not None else float('nan'):.3f} → "
            f"{last_q if last_q is not None else float('nan'):.3f}, "
            f"KL {ppo.get('kl_last_quarter') or float('nan'):.2f} nats",
        ),
        (
            "hidden-rule win rate vs parent ≥ 0.65, CI low > 0.5, n ≥ 32",
            bool(
                hidden
                and hidden["win_rate"] >= 0.65
                and hidden["ci_low"] > 0.5
                and hidden["n"] >= 32
            ),
            _rate(hidden) + f"; RM-judged {_rate(learnt.get('win_rate_reward_model'))}",
        ),
        (
            f"round 1 within {limit:.0f} min ({busy} busy processes beside it)",
            minutes <= limit,
            f"{minutes:.1f} min",
        ),
    ]
    if len(rounds) > 1:
        second = rounds[1]["learning"].get("win_rate_hidden_rule_vs_root") or {}
        result.append(
            (
                "round 2's hidden-rule win rate vs the base ≥ round 1's CI low",
                bool(second and hidden and second["win_rate"] >= hidden["ci_low"]),
                f"{_rate(second)} vs round 1's {_rate(hidden)}",
            )
        )
    return result


def print_round(report: dict) -> None:
    print(f"round {report['round']}: mean load {report['load_mean']}\n")
    print("| stage | wall time | load | what it did |\n|---|---|---|---|")
    for row in report["stages"]:
        print(f"| {row['stage']} | {row['seconds']} s | {row['load']} | {row['what']} |")
    minutes = report["round_seconds"] / 60
    print(
        f"| **round {report['round']}** | **{report['round_seconds']} s ({minutes:.1f} min)** "
        f"| {report['load_mean']} | {report['round_stage']} |\n"
    )
    learnt = report["learning"]
    lines = [
        ("RM held-out accuracy vs the raters", _accuracy(learnt.get("rm_accuracy"), "n_pairs")),
        (
            "RM held-out accuracy vs the raters' consensus",
            _accuracy(learnt.get("rm_accuracy_consensus"), "n_pairs"),
        ),
        (
            "the raters' agreement on those tasks",
            _accuracy(learnt.get("agreement_ceiling"), "n_rater_pairs"),
        ),
        ("RM vs the hidden rule on held-out answers", _accuracy(learnt.get("rm_vs_hidden_rule"))),
        (
            "the hidden rule itself vs the raters (a perfect model's accuracy)",
            _accuracy(learnt.get("hidden_rule_on_rankings")),
        ),
        (
            "the hidden rule vs the raters' consensus",
            _accuracy(learnt.get("hidden_rule_on_consensus")),
        ),
        ("win rate vs parent, hidden rule", _rate(learnt.get("win_rate_hidden_rule"))),
        ("win rate vs parent, reward model", _rate(learnt.get("win_rate_reward_model"))),
    ]
    if learnt.get("win_rate_hidden_rule_vs_root"):
        lines.append(
            ("win rate vs the base, hidden rule", _rate(learnt["win_rate_hidden_rule_vs_root"]))
        )
    for label, text in lines:
        print(f"- {label}: {text}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-demo")
    parser.add_argument("--config", default="{}", help="round config overrides (JSON)")
    parser.add_argument("--raters", type=int, default=6)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the draw: the round's seed (sampling, RM folds, PPO) and the raters' noise",
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds in a row (2: round 2 too)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a threshold is missed")
    parser.add_argument(
        "--timeout",
        type=float,
        default=7200.0,
        help="give up on a round after (s); a round on a 2-core AVX2-only CPU took over an hour",
    )
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

    def interrupted(signum, frame):  # a `kill` stops what this bench started, as Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    sampler = LoadSampler()
    result: dict = {}
    overrides = {"seed": args.seed, **json.loads(args.config)}
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
        # the README's raters (--url: this bench's own port), started before the round
        start(
            "raters",
            [python, "manage.py", "simulate_raters", "--url", url, "--project", "demo",
             "--raters", str(args.raters), "--adversarial", "1", "--max-judgments", "2000",
             "--seed", str(args.seed), "--wait", "1800", "--max-seconds", str(int(args.timeout))],
        )  # fmt: skip
        reports = []
        for number in range(1, args.rounds + 1):
            status, created = api.call(
                "POST",
                f"/api/projects/{project_id}/rounds/",
                {"preset": args.preset, "config": overrides},
            )
            assert status == 201, created
            print(
                f"round {number} (id {created['id']}) started ({args.preset}, seed {args.seed}); "
                f"load: {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            reports.append(round_report(api, created["id"], sampler, args.timeout))
            if reports[-1]["round_stage"] != "done":
                break
        sampler.stop.set()
        result = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "preset": args.preset,
            "seed": args.seed,
            "overrides": overrides,
            "load_before": [round(x, 2) for x in load_before],
            "busy_processes": args.busy,
            "cpus": os.cpu_count(),
            "rounds": reports,
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
    result["checks"] = [
        {"check": name, "passed": passed, "measured": measured}
        for name, passed, measured in checks(result["rounds"], args.busy)
    ]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    print(
        f"\n{result['date']}, preset {result['preset']}, seed {args.seed}, {result['cpus']} "
        f"CPUs, {args.busy} busy processes beside it, load average before "
        f"{result['load_before']}\n"
    )
    for report in result["rounds"]:
        print_round(report)
    print("| check | passed | measured |\n|---|---|---|")
    for row in result["checks"]:
        print(f"| {row['check']} | {'yes' if row['passed'] else '**no**'} | {row['measured']} |")
    if args.check:
        return 0 if all(row["passed"] for row in result["checks"]) else 1
    return 0 if all(r["round_stage"] == "done" for r in result["rounds"]) else 1


if __name__ == "__main__":
    sys.exit(main())
