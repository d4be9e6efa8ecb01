"""Adaptive threads (trainer/runlog.py): all the cores others leave idle, one beside busy ones."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from trainer import runlog
from trainer.runlog import (
    busiest_recent,
    busy_cores_of_others,
    rebalance_threads,
    threads_for,
    use_threads,
)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    use_threads(before)


@pytest.mark.parametrize(
    ("others_busy", "usable", "most", "expected"),
    [
        (0.0, 2, 2, 2),  # an idle 2-core machine: both
        (0.4, 2, 2, 2),  # the web server and the raters' polls: still both
        (0.6, 2, 2, 1),  # more than half a core taken: one
        (1.3, 2, 2, 1),  # a busy process beside us
        (5.0, 2, 2, 1),  # never fewer than one
        (0.0, 16, 4, 4),  # never more than asked for
        (2.2, 8, 8, 6),
    ],
)
def test_threads_are_the_cores_left_rounded(others_busy, usable, most, expected):
    assert threads_for(others_busy, usable, most) == expected


def test_the_busy_cores_of_others_leave_out_this_process():
    # 10 s: the machine was busy 17 CPU-seconds, 3 of them ours → others kept 1.4 cores busy
    assert busy_cores_of_others((100.0, 50.0, 1.0), (110.0, 67.0, 4.0)) == pytest.approx(1.4)
    assert busy_cores_of_others((100.0, 50.0, 1.0), (110.0, 51.0, 4.0)) == 0.0  # rounding
    assert busy_cores_of_others((100.0, 50.0, 1.0), (100.0, 60.0, 1.0)) == 0.0  # no time


def test_one_busy_span_in_the_look_back_holds_the_count_down():
    # spans (end, others' busy cores): a burst at t=100, quiet since
    spans = [(97.0, 0.1), (100.0, 1.2), (103.0, 0.0), (106.0, 0.1)]
    assert busiest_recent(spans, now=106.0, look_back=30.0) == 1.2
    assert threads_for(busiest_recent(spans, 106.0, 30.0), 2, 2) == 1
    # 30 s after the burst it no longer counts: both cores again
    assert busiest_recent(spans, now=130.5, look_back=30.0) == 0.1
    assert threads_for(busiest_recent(spans, 130.5, 30.0), 2, 2) == 2
    assert busiest_recent([], now=5.0, look_back=30.0) == 0.0


def test_a_burst_lowers_the_count_at_once_and_quiet_raises_it_only_later(
    restore_threads, monkeypatch
):
    clock = {"wall": 1000.0, "machine": 0.0}  # this process uses no CPU in this story

    def elapse(seconds, others_busy):
        clock["wall"] += seconds
        clock["machine"] += seconds * others_busy

    monkeypatch.setattr(runlog, "cpu_times", lambda: (clock["wall"], clock["machine"], 0.0))
    monkeypatch.setattr(runlog.time, "sleep", lambda seconds: elapse(seconds, 0.0))
    monkeypatch.setattr(runlog._CoreShare, "usable", staticmethod(lambda: 2))
    use_threads(0, adapt=True)
    assert torch.get_num_threads() == 2  # quiet: both cores
    elapse(4.0, 1.5)  # another process wakes
    assert rebalance_threads() == 1  # dropped at once
    for _ in range(9):  # 27 s of quiet: the burst is still within the look-back
        elapse(3.0, 0.0)
        assert rebalance_threads() == 1
    elapse(4.0, 0.0)  # 31 s after the burst: both again
    assert rebalance_threads() == 2


def test_our_own_work_does_not_count_as_others(restore_threads):
    before = runlog.cpu_times()
    started = time.process_time()
    while time.process_time() - started < 0.5:  # half a second of our own CPU
        pass
    after = runlog.cpu_times()
    assert after[2] - before[2] >= 0.45
    # what others used is what the machine used minus these 0.5 s
    machine = after[1] - before[1]
    assert busy_cores_of_others(before, after) == pytest.approx(
        max(0.0, machine - (after[2] - before[2])) / (after[0] - before[0])
    )


def test_beside_busy_processes_the_trainer_takes_one_thread(restore_threads):
    usable = len(os.sched_getaffinity(0))
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(usable)]
    try:
        time.sleep(0.5)
        use_threads(0, adapt=True)
        assert torch.get_num_threads() == 1
        assert rebalance_threads() == 1  # within MIN_SPAN_S: the same choice, not re-measured
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def test_fixed_threads_are_set_once_and_never_rebalanced(restore_threads):
    use_threads(1)
    assert torch.get_num_threads() == 1
    assert rebalance_threads() == 1
    use_threads(0, adapt=True)
    use_threads(2)  # back to fixed: rebalancing leaves the count alone
    assert rebalance_threads() == torch.get_num_threads() == 2
