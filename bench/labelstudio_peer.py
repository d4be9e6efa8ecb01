"""The peer side of the assignment benchmark: Label Studio 1.23 doing the same next + submit loop.

Installs Label Studio into its own virtualenv (var/bench-venv-labelstudio, never the project's
.venv), starts it in its default setup (`label-studio start`: Django's threaded development
server on a fresh SQLite database in var/bench-labelstudio-data, bound to 127.0.0.1), and for
each concurrency level N creates a project (a <List> + <Ranker> config over K=4 answers,
`maximum_annotations` = 3, i.e. overlap 3, which the open-source edition honours through its
task locks and `is_labeled`, though on SQLite without row locks, so concurrent annotators can
overshoot it: the rows count such tasks), imports the tasks, creates N annotators with
personal access tokens, then runs N asyncio clients that loop `GET /api/projects/{id}/next/` +
`POST /api/tasks/{id}/annotations/` for a fixed time. Rows have the shape of
bench/assignment_throughput.py's rows.

    .venv/bin/python bench/labelstudio_peer.py                 # 1, 8, 32 annotators, 15 s each
    .venv/bin/python bench/labelstudio_peer.py --concurrency 8 --duration 30

Only 127.0.0.1 (and PyPI, for the first install) is contacted: the server runs with Sentry,
analytics and the latest-version check switched off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "var" / "bench-venv-labelstudio"
DATA_DIR = ROOT / "var" / "bench-labelstudio-data"
REQUIREMENT = "label-studio==1.23.*"
ADMIN_EMAIL = "admin@bench.local"
ADMIN_PASSWORD = "bench-admin-pw-123456"
MAX_ITERATIONS = 100_000  # per client and level, on top of the time bound

LABEL_CONFIG = """<View>
  <Text name="prompt" value="$prompt"/>
  <List name="answers" value="$answers" title="Rank the answers, best first"/>
  <Ranker name="rank" toName="answers"/>
</View>"""

# Runs inside the Label Studio virtualenv (its Django), reads a JSON spec on stdin, prints JSON:
# creates the annotators in the admin's organization and a personal access token for each one
# (the same JWT refresh token "Account & Settings > Personal Access Token" hands out).
SETUP_USERS = """
import json, os, sys
import label_studio
sys.path.insert(0, os.path.dirname(label_studio.__file__))
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'core.settings.label_studio')
import django
django.setup()
from jwt_auth.models import LSAPIToken
from users.models import User
spec = json.load(sys.stdin)
admin = User.objects.get(email=spec['admin'])
org = admin.active_organization
tokens = {}
for email in [spec['admin']] + spec['users']:
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=spec['password'])
    org.add_user(user)
    user.active_organization = org
    user.save(update_fields=['active_organization'])
    tokens[email] = LSAPIToken.for_user(user).get_full_jwt()
print('TOKENS ' + json.dumps(tokens))
"""


def ensure_venv() -> Path:
    """Create var/bench-venv-labelstudio and install Label Studio into it, once."""
    exe = VENV / "bin" / "label-studio"
    if exe.exists():
        return exe
    log = VENV.parent / "bench-venv-labelstudio.log"
    print(f"installing {REQUIREMENT} into {VENV} (log: {log}) ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(VENV)], check=True)
    with log.open("w") as out:
        done = subprocess.run(
            [str(VENV / "bin" / "pip"), "install", REQUIREMENT],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if done.returncode or not exe.exists():
        raise SystemExit(f"pip install {REQUIREMENT} failed, see {log}")
    return exe


def server_env() -> dict[str, str]:
    """A clean environment: nothing of PrefLoop's settings (DJANGO_SETTINGS_MODULE, SECRET_KEY,
    LOG_LEVEL...) and no stray USERNAME/PORT/HOST, which Label Studio would read."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(DATA_DIR),
        LOG_LEVEL="WARNING",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        COLLECT_ANALYTICS="false",
        LATEST_VERSION_CHECK="false",
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(exe: Path, port: int) -> subprocess.Popen:
    import httpx

    shutil.rmtree(DATA_DIR, ignore_errors=True)
    DATA_DIR.mkdir(parents=True)
    log = (DATA_DIR / "server.log").open("w")
    server = subprocess.Popen(
        [
            str(exe),
            "start",
            "--no-browser",
            "--internal-host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(DATA_DIR),
            "--username",
            ADMIN_EMAIL,
            "--password",
            ADMIN_PASSWORD,
        ],
        cwd=DATA_DIR,
        env=server_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600  # the first start runs all migrations on a busy machine
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"label-studio exited with {server.returncode}, see {log.name}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    stop_server(server)
    raise SystemExit(f"label-studio did not answer on 127.0.0.1:{port}, see {log.name}")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def annotator_email(level: int, index: int) -> str:
    return f"bench{level}-annotator{index}@bench.local"


def create_tokens(emails: list[str]) -> dict[str, str]:
    """Users + personal access tokens through Label Studio's own Django (in its venv)."""
    spec = {"admin": ADMIN_EMAIL, "users": emails, "password": "bench-annotator-pw-123456"}
    done = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", SETUP_USERS],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        env=server_env(),
        cwd=DATA_DIR,
        timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("TOKENS ")]
    if done.returncode or not lines:
        raise SystemExit(f"creating Label Studio users failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("TOKENS ") :])


def access_token(client, base: str, refresh: str) -> str:
    """Personal access tokens are JWT refresh tokens: trade one for a (5-minute) access token."""
    response = client.post(f"{base}/api/token/refresh/", json={"refresh": refresh})
    response.raise_for_status()
    return response.json()["access"]


def make_tasks(level: int, count: int, k: int) -> list[dict]:
    return [
        {
            "prompt": f"bench {level} prompt {i}",
            "answers": [
                {"id": f"a{j}", "title": f"answer {j}", "body": f"answer {j} to bench {level} {i}"}
                for j in range(k)
            ],
        }
        for i in range(count)
    ]


def create_project(client, base: str, level: int, tasks: int, k: int, overlap: int) -> int:
    response = client.post(
        f"{base}/api/projects/",
        json={
            "title": f"bench {level}",
            "label_config": LABEL_CONFIG,
            "maximum_annotations": overlap,
        },
    )
    response.raise_for_status()
    project_id = response.json()["id"]
    response = client.post(
        f"{base}/api/projects/{project_id}/import", json=make_tasks(level, tasks, k), timeout=600
    )
    response.raise_for_status()
    deadline = time.monotonic() + 300  # the import may run in the background
    while time.monotonic() < deadline:
        project = client.get(f"{base}/api/projects/{project_id}/").json()
        if project.get("task_number") == tasks:
            break
        time.sleep(1)
    else:
        raise SystemExit(f"project {project_id}: {project.get('task_number')} of {tasks} imported")
    if project.get("maximum_annotations") != overlap:
        raise SystemExit(f"project {project_id}: maximum_annotations not set: {project}")
    return project_id


@dataclass
class LevelResult:
    concurrency: int
    seconds: float = 0.0
    judgments: int = 0
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    acknowledged: list[int] = field(default_factory=list)  # annotation ids
    exhausted: int = 0


def ranker_result(task: dict) -> list[dict]:
    ids = [item["id"] for item in task["data"]["answers"]]
    return [
        {
            "from_name": "rank",
            "to_name": "answers",
            "type": "ranker",
            "origin": "manual",
            "value": {"ranker": {"answers": ids[::-1]}},
        }
    ]


async def annotator_loop(client, base: str, token: str, project_id: int, stop_at: float, result):
    """Mirrors PrefLoop's rater loop, except that an error is counted and the loop goes on."""
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(MAX_ITERATIONS):
        if time.perf_counter() >= stop_at:
            return
        started = time.perf_counter()
        try:
            response = await client.get(f"{base}/api/projects/{project_id}/next/", headers=headers)
        except Exception as exc:  # noqa: BLE001 - a timeout or reset is a counted error
            result.errors.append(f"next {type(exc).__name__}: {exc}"[:200])
            continue
        finally:
            result.next_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code == 404:
            result.exhausted += 1
            return
        if response.status_code != 200:
            result.errors.append(f"next {response.status_code}: {response.text[:200]}")
            continue
        task = response.json()
        body = {"result": ranker_result(task), "lead_time": 1.0}
        started = time.perf_counter()
        try:
            response = await client.post(
                f"{base}/api/tasks/{task['id']}/annotations/", headers=headers, json=body
            )
        except Exception as exc:  # noqa: BLE001
            result.errors.append(f"submit {type(exc).__name__}: {exc}"[:200])
            continue
        finally:
            result.submit_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != 201:
            result.errors.append(f"submit {response.status_code}: {response.text[:200]}")
            continue
        result.acknowledged.append(response.json()["id"])
        result.judgments += 1


async def run_level(base: str, level: int, project_id: int, tokens, duration: float):
    from bench.loadclient import Connection

    result = LevelResult(concurrency=level)
    connections = [Connection(base) for _ in tokens]
    started = time.perf_counter()
    stop_at = started + duration
    try:
        await asyncio.gather(
            *(
                annotator_loop(connection, base, token, project_id, stop_at, result)
                for connection, token in zip(connections, tokens, strict=True)
            )
        )
    finally:
        result.seconds = time.perf_counter() - started
        for connection in connections:
            await connection.close()
    return result


def check_database(result: LevelResult, project_id: int, overlap: int) -> dict[str, int]:
    """The same invariants PrefLoop checks, read straight from Label Studio's SQLite file."""
    db = sqlite3.connect(f"file:{DATA_DIR / 'label_studio.sqlite3'}?mode=ro", uri=True)
    try:
        over = db.execute(
            "SELECT COUNT(*) FROM (SELECT task_id FROM task_completion WHERE project_id = ? "
            "AND was_cancelled = 0 GROUP BY task_id HAVING COUNT(*) > ?)",
            (project_id, overlap),
        ).fetchone()[0]
        twice = db.execute(
            "SELECT COUNT(*) FROM (SELECT task_id FROM task_completion WHERE project_id = ? "
            "GROUP BY task_id, completed_by_id HAVING COUNT(*) > 1)",
            (project_id,),
        ).fetchone()[0]
        stored = {
            row[0]
            for row in db.execute(
                "SELECT id FROM task_completion WHERE project_id = ?", (project_id,)
            )
        }
    finally:
        db.close()
    acknowledged = set(result.acknowledged)
    return {
        "errors": len(result.errors),
        "over_assigned_tasks": over,
        "same_task_twice": twice,
        "lost_judgments": len(acknowledged - stored),
        "unacknowledged_rows": len(stored - acknowledged),
    }


def locked_retries(offset: int) -> int:
    """On SQLite, Label Studio answers "database is locked" by sleeping and re-running the whole
    request server-side (DatabaseIsLockedRetryMiddleware, 1 s, 1.5 s, ... up to 15 times), so
    the client sees a slow 200 instead of an error; count those retries from the server log."""
    with (DATA_DIR / "server.log").open("rb") as log:
        log.seek(offset)
        return sum(
            1
            for line in log
            if b"custom_exception_handler" in line and b"database is locked" in line
        )


def percentile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def run_labelstudio(
    levels: list[int], duration: float, tasks: int, k: int = 4, overlap: int = 3
) -> list[dict]:
    """Run the loop against Label Studio at each level; rows shaped like PrefLoop's."""
    import httpx

    exe = ensure_venv()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(exe, port)
    rows = []
    try:
        emails = [annotator_email(level, i) for level in levels for i in range(level)]
        refresh = create_tokens(emails)
        with httpx.Client(timeout=60) as client:
            admin = access_token(client, base, refresh[ADMIN_EMAIL])
            client.headers["Authorization"] = f"Bearer {admin}"
            projects = {
                level: create_project(client, base, level, tasks, k, overlap) for level in levels
            }
        for level in levels:
            with httpx.Client(timeout=60) as client:  # fresh 5-minute access tokens per level
                tokens = [
                    access_token(client, base, refresh[annotator_email(level, i)])
                    for i in range(level)
                ]
            log_offset = (DATA_DIR / "server.log").stat().st_size
            result = asyncio.run(run_level(base, level, projects[level], tokens, duration))
            rows.append(
                {
                    "concurrency": level,
                    "judgments": result.judgments,
                    "seconds": round(result.seconds, 2),
                    "judgments_per_s": round(result.judgments / result.seconds, 1),
                    "next_ms": {q: round(percentile(result.next_ms, q), 1) for q in (50, 95, 99)},
                    "submit_ms": {
                        q: round(percentile(result.submit_ms, q), 1) for q in (50, 95, 99)
                    },
                    "ran_out_of_tasks": result.exhausted,
                    **check_database(result, projects[level], overlap),
                    "server_lock_retries": locked_retries(log_offset),
                    "first_errors": result.errors[:3],
                }
            )
            print(json.dumps({"system": "labelstudio", **rows[-1]}), flush=True)
    finally:
        stop_server(server)
    return rows


def installed_version() -> str:
    done = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import label_studio as ls; print(ls.__version__)"],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "?"


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| annotators | annotations/s | next p50/p95/p99 ms | submit p50/p95/p99 ms | errors | "
        "over-assigned | same task twice | lost | server-side lock retries |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        n, s = row["next_ms"], row["submit_ms"]
        lines.append(
            f"| {row['concurrency']} | {row['judgments_per_s']} | {n[50]} / {n[95]} / {n[99]} | "
            f"{s[50]} / {s[95]} / {s[99]} | {row['errors']} | {row['over_assigned_tasks']} | "
            f"{row['same_task_twice']} | {row['lost_judgments']} | {row['server_lock_retries']} |"
        )
    return "\n".join(lines)


def comparison_table(ours: list[dict], peer: list[dict]) -> str:
    """PrefLoop vs Label Studio per level; ratio = PrefLoop / Label Studio (higher is better
    for throughput, lower is better for latency)."""

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.1f}x" if b else "n/a"

    lines = [
        "| raters | PrefLoop judgments/s | Label Studio annotations/s | ratio | "
        "PrefLoop next+submit p50 ms | Label Studio next+submit p50 ms | "
        "PrefLoop p99 next / submit ms | Label Studio p99 next / submit ms | errors (PL / LS) |",
        "|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    peer_by_level = {row["concurrency"]: row for row in peer}
    for row in ours:
        other = peer_by_level.get(row["concurrency"])
        if other is None:
            continue
        ours_p50 = row["next_ms"][50] + row["submit_ms"][50]
        peer_p50 = other["next_ms"][50] + other["submit_ms"][50]
        lines.append(
            f"| {row['concurrency']} | {row['judgments_per_s']} | {other['judgments_per_s']} | "
            f"{ratio(row['judgments_per_s'], other['judgments_per_s'])} | {ours_p50:.1f} | "
            f"{peer_p50:.1f} | {row['next_ms'][99]} / {row['submit_ms'][99]} | "
            f"{other['next_ms'][99]} / {other['submit_ms'][99]} | "
            f"{row['errors']} / {other['errors']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per level")
    parser.add_argument("--tasks", type=int, default=3000, help="tasks per level")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    rows = run_labelstudio(args.concurrency, args.duration, args.tasks)
    print(
        f"\nlabelstudio_peer — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, Label Studio "
        f"{installed_version()} (label-studio start: Django runserver, SQLite), K=4, "
        f"maximum_annotations=3, {args.duration:.0f} s per level\n"
    )
    print(markdown_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
