"""The incremental statistics equal the ones computed from scratch."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from apps.quality.measures import DAY, JudgmentArrays, QualityOptions
from apps.quality.simulation import simulate
from apps.quality.statistics import (
    JUDGMENT_COLUMNS,
    NeedsFullRecompute,
    QualityState,
    ReviewChanges,
    compute_quality,
)

OPTIONS = QualityOptions(n_boot=200, n_boot_series=50)


def _crowd(days: int = 40, seed: int = 1) -> JudgmentArrays:
    kinds = ["honest"] * 14 + ["random"] * 2 + ["first"] * 2
    noise = np.random.default_rng(seed).uniform(0.3, 0.8, size=len(kinds))
    arrays, _ = simulate(
        n_tasks=900,
        k=4,
        overlap=(2, 6),
        kinds=kinds,
        noise=noise,
        days=days,
        gold_share=0.05,
        seed=seed,
    )
    order = np.argsort(arrays.created, kind="stable")  # ids in the order judgments arrive
    for name in JUDGMENT_COLUMNS[:-1]:
        setattr(arrays, name, getattr(arrays, name)[order])
    arrays.judgment_ids = np.arange(1, order.size + 1, dtype=np.int64) * 3
    arrays.rater_names = [f"r{pk}" for pk in arrays.rater_ids]
    return arrays


def _rows(arrays: JudgmentArrays, rows: np.ndarray) -> JudgmentArrays:
    """The judgments at `rows`, with every task and rater of the project."""
    picked = replace(arrays)
    for name in JUDGMENT_COLUMNS:
        setattr(picked, name, getattr(arrays, name)[rows].copy())
    return picked


def assert_same_figures(ours, theirs, path="figures"):
    if isinstance(theirs, dict):
        assert ours.keys() == theirs.keys(), path
        for key in theirs:
            assert_same_figures(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same_figures(a, b, f"{path}[{i}]")
    elif isinstance(theirs, float) and ours is not None:
        assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-9), (path, ours, theirs)
    else:
        assert ours == theirs, (path, ours, theirs)


@pytest.mark.parametrize("days", [40, 400])  # by day, and by week past 120 days
def test_batches_of_judgments_and_reviews_give_the_figures_of_a_full_recompute(days):
    arrays = _crowd(days=days)
    n = arrays.task.size
    rng = np.random.default_rng(5)
    cuts = [int(n * share) for share in (0.6, 0.7, 0.85, 0.97, 1.0)]
    state = QualityState.build(_rows(arrays, np.arange(cuts[0])))
    truth = _rows(arrays, np.arange(n))
    for low, high in zip(cuts, cuts[1:], strict=False):
        # reviewers decide on some judgments held already (a rejection leaves the figures)
        seen = rng.choice(low, size=40, replace=False)
        truth.included[seen] = rng.random(40) < 0.5
        truth.reviewed[seen] = truth.created[seen] + rng.uniform(0, 3 * DAY, 40)
        reviews = ReviewChanges(
            judgment_ids=truth.judgment_ids[seen],
            included=truth.included[seen],
            reviewed=truth.reviewed[seen],
        )
        # the new batch, read with an overlap of judgments held already
        batch = np.arange(max(low - 25, 0), high)
        changed = state.apply(_rows(truth, batch), reviews)
        assert changed >= high - low
        expected = compute_quality(_rows(truth, np.arange(high)), OPTIONS)
        assert_same_figures(state.figures(OPTIONS), expected)
    assert state.judgments == n


def test_late_commits_new_raters_and_new_tasks_are_taken_in():
    arrays = _crowd()
    n = arrays.task.size
    late = np.arange(n - 300, n, 7)  # committed after later judgments were read
    first = np.setdiff1d(np.arange(n), late)
    base = _rows(arrays, first[first < n - 200])
    # raters and tasks the first state has never seen
    base_tasks = np.unique(base.task)
    state = QualityState.build(_rows(arrays, first[first < n - 200]))
    state.apply(_rows(arrays, first[first >= n - 200]))
    state.apply(_rows(arrays, late))
    assert np.all(np.diff(state.arrays.judgment_ids) > 0)
    assert_same_figures(
        state.figures(OPTIONS), compute_quality(_rows(arrays, np.arange(n)), OPTIONS)
    )
    assert base_tasks.size <= state.arrays.n_tasks


def test_a_state_survives_the_disk(tmp_path):
    arrays = _crowd()
    state = QualityState.build(_rows(arrays, np.arange(2000)))
    path = tmp_path / "state.bin"
    state.save(path, {"token": "abc"})
    loaded, meta = QualityState.load(path)
    assert meta["token"] == "abc"
    loaded.apply(_rows(arrays, np.arange(2000, arrays.task.size)))
    assert_same_figures(loaded.figures(OPTIONS), compute_quality(arrays, OPTIONS))

    # nothing applied: only the meta is written, and it still pairs with the data
    written = path.stat().st_mtime_ns
    loaded.save(path, {**meta, "token": "def"}, unchanged=True)
    assert path.stat().st_mtime_ns == written
    assert QualityState.load(path)[1]["token"] == "def"

    assert QualityState.load(tmp_path / "missing.bin") is None
    path.write_bytes(path.read_bytes()[:5000])  # cut short
    assert QualityState.load(path) is None
    state.save(path, {"token": "ghi"})
    path.with_suffix(".json").write_text('{"token": "ghi", "data_token": "another"}')
    assert QualityState.load(path) is None  # meta and data not written together


def test_judgments_dated_before_the_first_day_move_the_series_start():
    arrays = _crowd()
    arrays.created[:30] -= 200 * DAY  # older than everything else: weeks, and a new start
    state = QualityState.build(_rows(arrays, np.arange(30, arrays.task.size)))
    state.apply(_rows(arrays, np.arange(30)))
    expected = compute_quality(arrays, OPTIONS)
    assert expected["project"]["series"]["bucket_seconds"] == 7 * DAY
    assert_same_figures(state.figures(OPTIONS), expected)


def test_what_cannot_be_applied_asks_for_a_full_recompute():
    arrays = _crowd()
    state = QualityState.build(_rows(arrays, np.arange(1000, 2000)))
    other_flags = _rows(arrays, np.arange(2000, 2010))
    other_flags.flag_keys = ["harmful"]
    with pytest.raises(NeedsFullRecompute, match="flag set"):
        state.apply(other_flags)
