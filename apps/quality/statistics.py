"""A project's rater-quality statistics, kept between refreshes and updated in place. Numpy.

`QualityState` holds every judgment as columns (`JudgmentArrays`, ascending judgment ids)
and the sums of the figures (aggregates.py). `QualityState.build` computes them from
scratch; `apply` takes the judgments added since and the review decisions taken since,
and updates only what they touch:

1. the tasks they touch are found (new judgments' tasks, re-reviewed judgments' tasks);
2. the sums of those tasks' judgments *as they were* are subtracted;
3. the columns are patched (reviews) and extended (new judgments, tasks, raters);
4. the sums of the same tasks *as they are now* are added, and their per-task values
   overwritten; median times are recomputed for the raters with new judgments.

Sums split over tasks (aggregates.py), so the result equals `build` on the new data (a
test checks it on random sequences). What `apply` cannot take (a task with more
completions than before, another flag set) raises `NeedsFullRecompute`. `save`/`load`
keep a state in a flat file of arrays (state_files.py) and a small JSON file beside it.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from apps.quality.aggregates import QualitySums, TaskValues, task_set_sums
from apps.quality.figures import RaterIndex, quality_figures
from apps.quality.measures import JudgmentArrays, QualityOptions, group_median
from apps.quality.state_files import UnreadableFile, read_arrays, write_arrays

FORMAT_VERSION = 2
JUDGMENT_COLUMNS = (
    "task",
    "rater",
    "rank_pos",
    "first_shown",
    "created",
    "time_spent_ms",
    "flags",
    "included",
    "reviewed",
    "judgment_ids",
)
TASK_COLUMNS = ("task_is_gold", "task_gold_pos", "task_lengths", "task_ids")
TASK_VALUES = ("judgments", "agree", "total", "last_day")


class NeedsFullRecompute(Exception):
    """The change cannot be applied incrementally; the caller recomputes from scratch."""


def compute_quality(arrays: JudgmentArrays, options: QualityOptions | None = None) -> dict:
    """Project figures, per-rater measures with flags and trends, and consensus weights.

    {"project": {judgments, judgments_included, tasks, tasks_with_overlap, raters,
                 pending_review, pairwise_agreement, pairwise_agreement_ci,
                 alpha_pairs_nominal, alpha_ranks_ordinal, flags, series},
     "raters": [{rater_id, name, judgments, agreement, agreement_ci, peer_agreement,
                 gold_accuracy, ..., weight, flags, evidence, trend}, ...]}
    (definitions in measures.py, aggregates.py and figures.py).
    """
    return QualityState.build(arrays).figures(options or QualityOptions())


@dataclass
class ReviewChanges:
    """The review state now of judgments that may have been reviewed since the last refresh."""

    judgment_ids: np.ndarray
    included: np.ndarray
    reviewed: np.ndarray


@dataclass
class QualityState:
    arrays: JudgmentArrays
    sums: QualitySums
    tasks: TaskValues
    median_seconds: np.ndarray  # per rater

    @classmethod
    def build(cls, arrays: JudgmentArrays) -> QualityState:
        if arrays.judgment_ids is None:
            arrays.judgment_ids = np.arange(arrays.task.shape[0], dtype=np.int64)
        sums, tasks = task_set_sums(arrays, n_raters=arrays.n_raters)
        median = group_median(arrays.time_spent_ms / 1000.0, arrays.rater, arrays.n_raters)
        return cls(arrays=arrays, sums=sums, tasks=tasks, median_seconds=median)

    @property
    def judgments(self) -> int:
        return int(self.arrays.task.shape[0])

    def figures(self, options: QualityOptions, names: dict[int, str] | None = None) -> dict:
        """The figures (see `compute_quality`); `names` maps rater ids to pseudonyms."""
        arrays = self.arrays
        if names is not None:
            rater_names = [names.get(int(pk), str(int(pk))) for pk in arrays.rater_ids]
        else:
            rater_names = arrays.rater_names
        raters = RaterIndex(
            ids=arrays.rater_ids, names=rater_names, median_seconds=self.median_seconds
        )
        return quality_figures(
            self.sums,
            self.tasks,
            raters,
            flag_keys=list(arrays.flag_keys),
            options=options,
        )

    def apply(self, new: JudgmentArrays, reviews: ReviewChanges | None = None) -> int:
        """Take in `new` judgments (with their own tasks and raters, `judgment_ids` set;
        ones already held are ignored) and `reviews`; returns how many judgments changed."""
        arrays = self.arrays
        if list(new.flag_keys) != list(arrays.flag_keys):
            raise NeedsFullRecompute("the project's flag set changed")
        new = _drop_known(new, arrays.judgment_ids)
        new = _widen(new, arrays.rank_pos.shape[1])
        task_map = self._add_tasks(new)
        rater_map = self._add_raters(new)
        changed_rows = self._changed_rows(reviews)
        affected = np.unique(np.concatenate([task_map[new.task], arrays.task[changed_rows]]))
        if affected.size == 0:
            return 0
        in_affected = np.zeros(self.arrays.n_tasks, dtype=bool)
        in_affected[affected] = True

        before, _ = self._sums_of(in_affected)
        if reviews is not None and changed_rows.size:
            where = np.searchsorted(reviews.judgment_ids, arrays.judgment_ids[changed_rows])
            arrays.included[changed_rows] = reviews.included[where]
            arrays.reviewed[changed_rows] = reviews.reviewed[where]
        self._append(new, task_map, rater_map)
        after, (local_tasks, values) = self._sums_of(in_affected)
        self.sums = self.sums - before + after
        for name in TASK_VALUES:
            getattr(self.tasks, name)[local_tasks] = getattr(values, name)
        touched = np.unique(rater_map[new.rater])
        if touched.size:
            mine = np.isin(self.arrays.rater, touched)
            medians = group_median(
                self.arrays.time_spent_ms[mine] / 1000.0,
                self.arrays.rater[mine],
                self.arrays.n_raters,
            )
            self.median_seconds[touched] = medians[touched]
        return int(new.task.size + changed_rows.size)

    # --- the steps of apply --------------------------------------------------------------

    def _add_tasks(self, new: JudgmentArrays) -> np.ndarray:
        """Index in the state of each of `new`'s tasks, appending the unknown ones."""
        arrays = self.arrays
        position = _lookup(arrays.task_ids, new.task_ids)
        unknown = np.flatnonzero(position < 0)
        if unknown.size:
            position[unknown] = arrays.n_tasks + np.arange(unknown.size)
            for name in TASK_COLUMNS:
                setattr(
                    arrays,
                    name,
                    np.concatenate([getattr(arrays, name), getattr(new, name)[unknown]]),
                )
            for name in TASK_VALUES:
                old = getattr(self.tasks, name)
                fill = -1 if name == "last_day" else 0
                setattr(
                    self.tasks, name, np.concatenate([old, np.full(unknown.size, fill, old.dtype)])
                )
        return position

    def _add_raters(self, new: JudgmentArrays) -> np.ndarray:
        arrays = self.arrays
        position = _lookup(arrays.rater_ids, new.rater_ids)
        unknown = np.flatnonzero(position < 0)
        if unknown.size:
            position[unknown] = arrays.n_raters + np.arange(unknown.size)
            arrays.rater_ids = np.concatenate([arrays.rater_ids, new.rater_ids[unknown]])
            if arrays.rater_names:
                names = new.rater_names or [str(int(pk)) for pk in new.rater_ids]
                arrays.rater_names = arrays.rater_names + [names[i] for i in unknown]
            self.median_seconds = np.concatenate(
                [self.median_seconds, np.full(unknown.size, np.nan)]
            )
        return position

    def _changed_rows(self, reviews: ReviewChanges | None) -> np.ndarray:
        """Rows of held judgments whose review state differs from `reviews`."""
        if reviews is None or reviews.judgment_ids.size == 0:
            return np.zeros(0, dtype=np.int64)
        order = np.argsort(reviews.judgment_ids)
        for name in ("judgment_ids", "included", "reviewed"):
            setattr(reviews, name, getattr(reviews, name)[order])
        rows = _lookup(self.arrays.judgment_ids, reviews.judgment_ids)
        held = rows >= 0
        rows, included, reviewed = rows[held], reviews.included[held], reviews.reviewed[held]
        before_included = self.arrays.included[rows]
        before_reviewed = self.arrays.reviewed[rows]
        same_time = (before_reviewed == reviewed) | (np.isnan(before_reviewed) & np.isnan(reviewed))
        return rows[(before_included != included) | ~same_time]

    def _append(self, new: JudgmentArrays, task_map: np.ndarray, rater_map: np.ndarray) -> None:
        if new.task.size == 0:
            return
        arrays = self.arrays
        incoming = {name: getattr(new, name) for name in JUDGMENT_COLUMNS}
        incoming["task"] = task_map[new.task].astype(arrays.task.dtype)
        incoming["rater"] = rater_map[new.rater].astype(arrays.rater.dtype)
        in_order = arrays.judgment_ids.size == 0 or new.judgment_ids.min() > arrays.judgment_ids[-1]
        for name in JUDGMENT_COLUMNS:
            setattr(
                arrays,
                name,
                np.concatenate(
                    [getattr(arrays, name), incoming[name].astype(getattr(arrays, name).dtype)]
                ),
            )
        if not in_order:  # a judgment committed after a later one was read: keep ids ascending
            order = np.argsort(arrays.judgment_ids, kind="stable")
            for name in JUDGMENT_COLUMNS:
                setattr(arrays, name, getattr(arrays, name)[order])

    def _sums_of(self, in_tasks: np.ndarray) -> tuple[QualitySums, tuple[np.ndarray, TaskValues]]:
        """The sums of every judgment on the tasks marked in `in_tasks`, and their per-task
        values (with the tasks' indices in the state)."""
        arrays = self.arrays
        rows = np.flatnonzero(in_tasks[arrays.task])
        local_tasks, local_task = np.unique(arrays.task[rows], return_inverse=True)
        subset = JudgmentArrays(
            task=local_task.astype(np.int32),
            rater=arrays.rater[rows],
            rank_pos=arrays.rank_pos[rows],
            first_shown=arrays.first_shown[rows],
            created=arrays.created[rows],
            time_spent_ms=arrays.time_spent_ms[rows],
            flags=arrays.flags[rows],
            included=arrays.included[rows],
            reviewed=arrays.reviewed[rows],
            task_is_gold=arrays.task_is_gold[local_tasks],
            task_gold_pos=arrays.task_gold_pos[local_tasks],
            task_lengths=arrays.task_lengths[local_tasks],
            task_ids=arrays.task_ids[local_tasks],
            rater_ids=arrays.rater_ids,
            flag_keys=arrays.flag_keys,
        )
        sums, values = task_set_sums(subset, n_raters=arrays.n_raters)
        return sums, (local_tasks, values)

    # --- on disk -------------------------------------------------------------------------

    def save(self, path: Path, meta: dict, *, unchanged: bool = False) -> None:
        """Write the state to `path` and `meta` (JSON) beside it (`path` with .json); with
        `unchanged` (nothing was applied since it was loaded) only `meta` is written."""
        meta_path = path.with_suffix(".json")
        data_token = meta.get("data_token") if unchanged and path.exists() else None
        if data_token is None:
            data_token = secrets.token_hex(8)
            columns = {
                f"arrays__{f.name}": getattr(self.arrays, f.name)
                for f in fields(self.arrays)
                if f.name not in ("flag_keys", "rater_names")
            }
            columns["arrays__flags"] = _narrow_flags(self.arrays.flags, len(self.arrays.flag_keys))
            columns.update({f"sums__{name}": value for name, value in self.sums.values.items()})
            columns.update({f"tasks__{name}": getattr(self.tasks, name) for name in TASK_VALUES})
            columns["median_seconds"] = self.median_seconds
            header = {
                "version": FORMAT_VERSION,
                "data_token": data_token,
                "day_origin": self.sums.day_origin,
                "flag_keys": list(self.arrays.flag_keys),
                "rater_names": list(self.arrays.rater_names),
            }
            write_arrays(path, columns, header)
        partial = meta_path.with_name(f".{meta_path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps({**meta, "data_token": data_token}))
        os.replace(partial, meta_path)

    @classmethod
    def load(cls, path: Path) -> tuple[QualityState, dict] | None:
        """The state and meta saved at `path`; None when either is missing, unreadable, of
        another format version, or not written together."""
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            stored, header = read_arrays(path)
        except (OSError, ValueError, UnreadableFile):
            return None
        if header.get("version") != FORMAT_VERSION or header.get("data_token") != meta.get(
            "data_token"
        ):
            return None
        try:
            array_fields = {
                f.name: stored[f"arrays__{f.name}"]
                for f in fields(JudgmentArrays)
                if f.name not in ("flag_keys", "rater_names")
            }
            array_fields["flags"] = array_fields["flags"].astype(np.uint32)
            arrays = JudgmentArrays(
                **array_fields, flag_keys=header["flag_keys"], rater_names=header["rater_names"]
            )
            sums = QualitySums(
                {
                    key[len("sums__") :]: value
                    for key, value in stored.items()
                    if key.startswith("sums__")
                },
                day_origin=int(header["day_origin"]),
            )
            tasks = TaskValues(**{name: stored[f"tasks__{name}"] for name in TASK_VALUES})
            median = stored["median_seconds"]
        except KeyError:
            return None
        return cls(arrays=arrays, sums=sums, tasks=tasks, median_seconds=median), meta


def _narrow_flags(flags: np.ndarray, n_keys: int) -> np.ndarray:
    """Flag bits in the narrowest unsigned type that holds `n_keys` bits."""
    for dtype in (np.uint8, np.uint16):
        if n_keys <= np.iinfo(dtype).bits:
            return flags.astype(dtype)
    return flags


def _lookup(known: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index of each `wanted` value in `known` (any order), -1 where absent."""
    if known.size == 0 or wanted.size == 0:
        return np.full(wanted.shape, -1, dtype=np.int64)
    order = np.argsort(known, kind="stable")
    where = np.clip(np.searchsorted(known[order], wanted), 0, known.size - 1)
    return np.where(known[order][where] == wanted, order[where], -1).astype(np.int64)


def _drop_known(new: JudgmentArrays, held_ids: np.ndarray) -> JudgmentArrays:
    """`new` without the judgments already held (a re-read window overlaps the last)."""
    keep = _lookup(held_ids, new.judgment_ids) < 0
    if keep.all():
        return new
    for name in JUDGMENT_COLUMNS:
        setattr(new, name, getattr(new, name)[keep])
    return new


def _widen(new: JudgmentArrays, k: int) -> JudgmentArrays:
    """`new` with `k` completion slots like the state (narrower tasks get empty slots)."""
    have = new.rank_pos.shape[1]
    if have > k:
        raise NeedsFullRecompute("a task has more completions than the project had")
    if have == k:
        return new
    extra = k - have

    def pad(values, fill):
        return np.concatenate([values, np.full((values.shape[0], extra), fill, values.dtype)], 1)

    new.rank_pos = pad(new.rank_pos, -1)
    new.flags = pad(new.flags, 0)
    new.task_gold_pos = pad(new.task_gold_pos, -1)
    new.task_lengths = pad(new.task_lengths, np.nan)
    return new
