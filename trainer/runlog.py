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


def use_threads(threads: int) -> None:
    """``torch.set_num_threads(threads)`` when threads > 0; 0 keeps torch's default (one per
    core). On a CPU shared with other busy processes, intra-op threads that outnumber the free
    cores wait on each other at every operation (docs/loop.md, "Demo")."""
    if threads > 0:
        torch.set_num_threads(threads)


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
