"""Where the CPU of one judgment goes: gunicorn workers, PostgreSQL, and the load client.

Runs the assignment loop of `assignment_throughput.py` (same server, data and client) at one
concurrency level, after a short warm-up, and reads each process's CPU time from
`/proc/<pid>/stat` before and after. On a shared machine the split is steadier than the
throughput: it says how many judgments per second the cores could carry.

    .venv/bin/python bench/throughput_cpu_split.py --concurrency 32 --duration 10

PostgreSQL's share counts every `postgres` process on the machine, so run it when no other
database work is going on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import assignment_throughput as throughput  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def server_cpu(server: subprocess.Popen) -> float:
    children = subprocess.run(
        ["pgrep", "-P", str(server.pid)], capture_output=True, text=True
    ).stdout.split()
    return sum(cpu_seconds(pid) for pid in [server.pid, *map(int, children)])


def postgres_cpu() -> float:
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith("postgres"):
                    total += cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    args = parser.parse_args()

    throughput.recreate_database()
    plan = throughput.seed([args.concurrency], 3000, 4, 3)[args.concurrency]
    server = throughput.start_server(args.workers)
    try:
        asyncio.run(throughput.run_level(args.concurrency, plan, 3.0))  # warm every worker
        before = server_cpu(server), postgres_cpu(), time.process_time()
        result = asyncio.run(throughput.run_level(args.concurrency, plan, args.duration))
        after = server_cpu(server), postgres_cpu(), time.process_time()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    per_judgment = [
        round((end - start) * 1000 / max(result.judgments, 1), 2)
        for start, end in zip(before, after, strict=True)
    ]
    print(
        json.dumps(
            {
                "concurrency": args.concurrency,
                "judgments_per_s": round(result.judgments / result.seconds, 1),
                "cpu_ms_per_judgment": dict(
                    zip(("gunicorn", "postgres", "client"), per_judgment, strict=True)
                ),
                "next_p99_ms": round(throughput.percentile(result.next_ms, 99), 1),
                "submit_p99_ms": round(throughput.percentile(result.submit_ms, 99), 1),
                "errors": result.errors[:3],
            }
        )
    )


if __name__ == "__main__":
    main()
