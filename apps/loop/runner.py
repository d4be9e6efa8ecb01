"""Run `python -m trainer ...` as a child process and report on it while it runs.

No ORM here: the caller gets a callback every tick with the new metrics lines and output, and
answers whether to stop. The child gets its own process group (so a cancel reaches every
process it started) and dies with its parent (PR_SET_PDEATHSIG on Linux), so a worker that is
killed never leaves a trainer running on its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1
LOG_TAIL_CHARS = 20_000


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # not Linux: no parent-death signal, but the process group kill on cancel still works
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Outcome:
    returncode: int | None
    cancelled: bool
    output_tail: str


class JsonlFollower:
    """Reads the complete lines appended to a JSONL file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def read_new(self) -> list[dict]:
        if not self.path.is_file():
            return []
        size = self.path.stat().st_size
        if size < self.offset:  # truncated (a resumed run rewrites its history): start over
            self.offset, self.partial = 0, b""
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        rows = []
        for line in lines:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows


def trainer_argv(python: str, command: str, config_path: Path, out_dir: Path) -> list[str]:
    return [python, "-m", "trainer", command, "--config", str(config_path), "--out", str(out_dir)]


def run(
    argv: list[str],
    *,
    cwd: Path,
    log_path: Path,
    metrics_path: Path,
    on_start: Callable[[int], None],
    on_tick: Callable[[list[dict], str], bool],
    tick_seconds: float = 1.0,
    kill_grace_seconds: float = 5.0,
    env: dict[str, str] | None = None,
) -> Outcome:
    """Start `argv`, call `on_tick(new_metric_rows, new_output)` every tick until it exits;
    when `on_tick` returns True the whole process group is stopped (TERM, then KILL)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(cwd), child_env.get("PYTHONPATH", "")) if p
    )
    with log_path.open("wb") as log_handle:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    on_start(process.pid)
    metrics = JsonlFollower(metrics_path)
    output_offset = 0
    cancelled = False

    def new_output() -> str:
        nonlocal output_offset
        with log_path.open("rb") as handle:
            handle.seek(output_offset)
            data = handle.read()
        output_offset += len(data)
        return data.decode("utf-8", errors="replace")

    while True:
        returncode = process.poll()
        stop = on_tick(metrics.read_new(), new_output())
        if returncode is not None:
            break
        if stop:
            cancelled = True
            stop_process_group(process, kill_grace_seconds)
            break
        time.sleep(tick_seconds)
    on_tick(metrics.read_new(), new_output())  # whatever arrived after the last tick
    tail = log_path.read_bytes()[-LOG_TAIL_CHARS:].decode("utf-8", errors="replace")
    return Outcome(returncode=process.returncode, cancelled=cancelled, output_tail=tail)


def stop_process_group(process: subprocess.Popen, grace_seconds: float) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pid: int | None) -> None:
    """Stop a trainer left behind by an earlier attempt on this machine."""
    if not pid:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.5)
