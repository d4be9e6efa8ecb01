"""Run bookkeeping shared by every command: seeding, metrics files, progress bars."""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.contract import METRICS_JSON, METRICS_JSONL


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def use_threads(threads: int, adapt: bool = False) -> None:
    """How many CPU threads torch computes with.

    Fixed (``adapt`` False): ``torch.set_num_threads(threads)`` when threads > 0; 0 keeps
    torch's default (one per core). On a CPU shared with other busy processes, intra-op threads
    that outnumber the free cores wait on each other at every operation (docs/loop.md, "Demo").

    Adaptive: up to ``threads`` (0: every core this process may use), re-chosen by
    ``rebalance_threads`` at each step or batch from the cores that other processes left idle
    since the last choice: all of them on an idle machine, one beside busy processes."""
    _CORES.configure(threads, adapt)
    if adapt:
        _CORES.rebalance(force=True)
    elif threads > 0:
        torch.set_num_threads(threads)


def rebalance_threads() -> int:
    """Under ``use_threads(..., adapt=True)``, the thread count for the next piece of work
    (re-measured at most every few seconds); otherwise torch's current count, unchanged."""
    return _CORES.rebalance()


#: (wall clock, busy CPU seconds of the whole machine, CPU seconds of this process)
CpuTimes = tuple[float, float, float]


def busy_cores_of_others(before: CpuTimes, after: CpuTimes) -> float:
    """Cores that processes other than this one kept busy between two ``cpu_times`` readings:
    (machine-wide busy CPU seconds minus this process's own) per wall-clock second."""
    wall = after[0] - before[0]
    if wall <= 0:
        return 0.0
    machine, own = after[1] - before[1], after[2] - before[2]
    return max(0.0, machine - own) / wall


def threads_for(others_busy: float, usable: int, most: int) -> int:
    """The cores left to this process, rounded to the nearest whole one: at least 1, at most
    ``most``."""
    return max(1, min(most, int(usable - others_busy + 0.5)))


def cpu_times() -> CpuTimes | None:
    """(wall clock, busy CPU seconds of the whole machine, CPU seconds of this process), or
    None where the kernel does not say (no /proc/stat). Machine-wide: where this process may
    use only some of the cores (affinity, a container on a bigger host), work on the others
    counts too, and the choice errs towards fewer threads."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    busy = sum(fields[:3]) + sum(fields[5:8])
    own = os.times()
    return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def busiest_recent(spans: list[tuple[float, float]], now: float, look_back: float) -> float:
    """The most cores others kept busy in any span (end time, busy cores) that ended within
    ``look_back`` seconds of ``now``; 0 when none did."""
    return max((busy for end, busy in spans if now - end <= look_back), default=0.0)


class _CoreShare:
    """The process-wide adaptive thread count (torch's threads are process-wide too).

    It drops threads as soon as one span shows others busy, and takes them back only after
    LOOK_BACK_S of quiet: beside a process that works in bursts, two threads wait on each
    other whenever it wakes (PPO steps of 26-101 s against 9-17 s on one thread, in a demo
    round beside bursty benchmarks), while one idle core gains at most ~1.9x."""

    #: the first measurement, and the shortest span between two
    FIRST_LOOK_S = 0.5
    MIN_SPAN_S = 3.0
    #: how long others must have left the cores idle before the count goes back up
    LOOK_BACK_S = 30.0

    def __init__(self) -> None:
        self.adapt = False
        self.most = 0
        self.last: CpuTimes | None = None
        self.spans: list[tuple[float, float]] = []

    def configure(self, threads: int, adapt: bool) -> None:
        self.adapt, self.last, self.spans = adapt, None, []
        self.most = threads or self.usable()

    @staticmethod
    def usable() -> int:
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return os.cpu_count() or 1

    def rebalance(self, force: bool = False) -> int:
        if not self.adapt:
            return torch.get_num_threads()
        now = cpu_times()
        if now is None:  # nothing to measure by: one thread is never slowed by others
            torch.set_num_threads(1)
            return 1
        if self.last is None:
            time.sleep(self.FIRST_LOOK_S)
            self.last, now = now, cpu_times()
        if not force and now[0] - self.last[0] < self.MIN_SPAN_S:
            return torch.get_num_threads()
        self.spans.append((now[0], busy_cores_of_others(self.last, now)))
        self.spans = [span for span in self.spans if now[0] - span[0] <= self.LOOK_BACK_S]
        busiest = busiest_recent(self.spans, now[0], self.LOOK_BACK_S)
        threads = threads_for(busiest, self.usable(), self.most)
        self.last = now
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        return threads


_CORES = _CoreShare()


def derive_seed(*parts: int | str) -> int:
    """A stable 31-bit seed from a run seed and counters (no Python hash randomisation)."""
    value = 1469598103934665603
    for part in parts:
        for byte in str(part).encode():
            value = ((value ^ byte) * 1099511628211) % (1 << 64)
        value = ((value ^ 0xFF) * 1099511628211) % (1 << 64)
    return value % (2**31 - 1)


def _clean(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


FSYNC_EVERY_S = 1.0


class MetricsLog:
    """Appends one JSON line per step to ``metrics.jsonl`` (flushed at once, so a caller can
    tail it for progress) and writes the final ``metrics.json``."""

    def __init__(self, out_dir: str | Path, append: bool = False):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / METRICS_JSONL
        self._handle = self.path.open("a" if append else "w", encoding="utf-8")
        self._start = time.time()
        self._synced = time.monotonic()

    def log(self, step: int, **metrics: Any) -> None:
        row = {"step": step, "time_s": round(time.time() - self._start, 3), **_clean(metrics)}
        self._handle.write(json.dumps(row) + "\n")
        self._handle.flush()  # a reader tailing the file, or a killed process, loses nothing
        # fsync (a machine crash) at most once a second: per step it cost a tiny model's
        # reward-model training ~2 % of its time
        if time.monotonic() - self._synced >= FSYNC_EVERY_S:
            os.fsync(self._handle.fileno())
            self._synced = time.monotonic()

    def finish(self, **metrics: Any) -> dict[str, Any]:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        final = _clean(metrics)
        write_json(self.out_dir / METRICS_JSON, final)
        return final


def write_json(path: Path, payload: Any) -> None:
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(_clean(payload), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def progress(total: int, desc: str, initial: int = 0):
    """A tqdm bar on a terminal; silent when stderr is not a TTY (workers, tests)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=desc, initial=initial, disable=not sys.stderr.isatty(), dynamic_ncols=True
    )
