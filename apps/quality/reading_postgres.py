"""`reading.judgment_arrays` on PostgreSQL: a million judgments without a million Python rows.

The server gathers the rows of each block of ids into arrays (`array_agg`), which come back
in PostgreSQL's binary form and go straight into numpy; the rankings come as their JSON
texts joined into one string per block, parsed by one numpy call ("[[5, 7], [6]]" becomes
the ids with -1 between groups). A few dozen values cross the wire instead of a million
rows, each of which would cost a Python call in the driver.
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from django.db import connection, transaction
from psycopg import postgres
from psycopg.adapt import Loader
from psycopg.pq import Format

from apps.collection.models import ReviewStatus, Task
from apps.quality import agreement as ag
from apps.quality.measures import JudgmentArrays

NONE = -3  # a missing number (never a real value of these columns)
END = -2  # the end of a ranking text
BREAK = -1  # a break between best-first groups
BLOCK_LOG2 = 14  # rows are gathered in blocks of ids (or task ids) 2 ** 14 apart
_TO_SPACES = bytes.maketrans(b"[],", b"   ")
_ELEMENT = {"int8": ">i8", "float8": ">f8", "bool": "?"}
_JUDGMENT_COLUMNS = {
    "id": ("j.id", "int8"),
    "task": ("j.task_id::int8", "int8"),
    "rater": ("j.rater_id::int8", "int8"),
    "first": ("COALESCE((j.display_order->>0)::int8, -3)", "int8"),
    "spent": ("COALESCE(j.time_spent_ms, -3)::int8", "int8"),
    "created": ("date_part('epoch', j.created_at)", "float8"),
    "included": ("j.review_status <> %s", "bool"),
    "reviewed": (
        "CASE WHEN j.review_status <> %s AND j.reviewed_at IS NOT NULL"
        " THEN date_part('epoch', j.reviewed_at) ELSE 'NaN' END",
        "float8",
    ),
    "ranking": ("j.ranking::text", "text"),
}


def arrays_postgres(tasks, flag_keys: list[str], after_id: int | None, names_of) -> JudgmentArrays:
    """See `reading.judgment_arrays`; `tasks` is the queryset of tasks in scope.

    A whole project is read by four connections at once (outside a transaction): each half
    of the judgments by id, the tasks with their completions' lengths, and the flags.
    """
    task_sql, task_params = tasks.values("pk").query.sql_with_params()
    scope = f"j.task_id IN ({task_sql}) AND j.rater_id IS NOT NULL"
    params = list(task_params)
    if after_id is None:
        which, which_params = f"IN ({task_sql})", list(task_params)
        middle = _middle_judgment_id()
        task_side, flag_rows, *halves = _concurrently(
            lambda: _read_task_side(which, which_params),
            lambda: _flag_rows(scope, params, flag_keys),
            lambda: _read_judgments(f"{scope} AND j.id <= %s", [*params, middle]),
            lambda: _read_judgments(f"{scope} AND j.id > %s", [*params, middle]),
        )
        judgments = _joined(halves)
    else:
        scope += " AND j.id > %s"
        params.append(after_id)
        judgments = _read_judgments(scope, params)
        flag_rows = _flag_rows(scope, params, flag_keys) if judgments["id"].size else None
        # only the tasks the new judgments are on
        task_side = _read_task_side("= ANY(%s)", [np.unique(judgments["task"]).tolist()])
    task_ids, is_gold, lengths, lookup, gold_pos = task_side
    k_max = lengths.shape[1]

    n = judgments["id"].shape[0]
    judgment_tasks = judgments["task"]
    rank_pos = np.full((n, k_max), -1, dtype=np.int8)
    row, completion, group = judgments["ranked"]
    slot = lookup.slots(judgment_tasks[row], completion)
    known = slot >= 0
    rank_pos[row[known], slot[known]] = group[known]
    flags = _flag_bits(
        np.zeros((0, 4), np.int64) if flag_rows is None else flag_rows,
        judgments["id"],
        lookup,
        n,
        k_max,
    )
    rater_ids, rater = np.unique(judgments["rater"], return_inverse=True)
    names = names_of(rater_ids)
    return JudgmentArrays(
        task=np.searchsorted(task_ids, judgment_tasks).astype(np.int32),
        rater=rater.astype(np.int32),
        rank_pos=rank_pos,
        first_shown=lookup.slots(judgment_tasks, judgments["first"]).astype(np.int8),
        created=np.floor(judgments["created"]),
        time_spent_ms=np.where(judgments["spent"] == NONE, np.nan, judgments["spent"]),
        flags=flags,
        included=judgments["included"],
        reviewed=np.floor(judgments["reviewed"]),
        task_is_gold=is_gold,
        task_gold_pos=gold_pos,
        task_lengths=lengths,
        task_ids=task_ids,
        rater_ids=rater_ids,
        flag_keys=flag_keys,
        rater_names=[names.get(int(pk), str(pk)) for pk in rater_ids],
        judgment_ids=judgments["id"],
    )


def _read_task_side(which: str, params: list):
    """(task ids, gold marks, lengths, slot lookup, gold positions) of the tasks `which`
    selects."""
    task_ids, is_gold = _read_tasks(which, params)
    lengths, lookup = _task_slots(task_ids, which, params)
    return (
        task_ids,
        is_gold,
        lengths,
        lookup,
        _gold_positions(task_ids, is_gold, lookup, lengths.shape[1]),
    )


def _middle_judgment_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM collection_judgment")
        low, high = cursor.fetchone()
    return ((low or 0) + (high or 0)) // 2


def _concurrently(*reads):
    """The results of `reads`, each run on its own thread and database connection; in turn
    inside a transaction (other connections would not see its rows)."""
    if connection.in_atomic_block or len(reads) == 1:
        return [read() for read in reads]

    def on_own_connection(read):
        try:
            return read()
        finally:
            connection.close()  # this thread's connection

    with ThreadPoolExecutor(max_workers=len(reads)) as pool:
        return [future.result() for future in [pool.submit(on_own_connection, r) for r in reads]]


def _joined(parts: list[dict]) -> dict:
    """Judgment columns read in id ranges, in ascending ranges: one set of columns."""
    joined = {
        name: np.concatenate([part[name] for part in parts])
        for name in parts[0]
        if name != "ranked"
    }
    rows, offset = [], 0
    for part in parts:
        rows.append(part["ranked"][0] + offset)
        offset += part["id"].shape[0]
    joined["ranked"] = (
        np.concatenate(rows),
        np.concatenate([part["ranked"][1] for part in parts]),
        np.concatenate([part["ranked"][2] for part in parts]),
    )
    return joined


class _RawBinary(Loader):
    """Hands a column's binary value over as bytes, for numpy to read."""

    format = Format.BINARY

    def load(self, data) -> bytes:
        return bytes(data)


def _array_column(data: bytes, element: str) -> np.ndarray:
    """A one-dimensional PostgreSQL array without NULLs, from its binary form: a 20-byte
    header (dimensions, null flag, element type, length, lower bound), then each element
    after its 4-byte length."""
    dtype = np.dtype(_ELEMENT[element])
    dimensions, has_null = struct.unpack(">ii", data[:8])
    if dimensions == 0:
        return np.zeros(0, dtype=dtype.newbyteorder("="))
    if has_null:
        raise ValueError("a NULL in an array read as numbers")
    record = np.dtype([("length", ">i4"), ("value", dtype)])
    return np.frombuffer(data, dtype=record, offset=20)["value"].astype(dtype.newbyteorder("="))


def read_blocks(columns: dict[str, tuple[str, str]], source: str, block_by: str, params: list):
    """Yield {name: values} per block of `SELECT <columns> FROM <source>`.

    `columns` maps a name to (SQL expression, element type: int8, float8 or bool), or to
    (SQL text expression, "text") for a text column, whose values come as one bytes string,
    each followed by " -2 ". Within a block every aggregate sees the rows in the same
    order (one aggregation node feeds each row to all of them), so the columns line up.
    """
    names, parts = list(columns), []
    for name in names:
        expression, element = columns[name]
        if element == "text":
            parts.append(f"convert_to(string_agg({expression} || ' -2 ', ''), 'UTF8')")
        else:
            parts.append(f"array_agg({expression})")
    with transaction.atomic(), connection.cursor() as django_cursor:
        cursor = django_cursor.cursor
        for element in _ELEMENT:
            cursor.adapters.register_loader(postgres.types.get(element).array_oid, _RawBinary)
        # Enough memory to hash (not sort on disk); compiling costs more than these scans save.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute("SET LOCAL jit = off")
        # (a division, not a shift: the planner then expects few groups and hashes them)
        cursor.execute(
            f"SELECT {', '.join(parts)} FROM {source} GROUP BY {block_by} / {2**BLOCK_LOG2}",
            params,
            binary=True,
        )
        for values in cursor:
            yield {
                name: value
                if columns[name][1] == "text"
                else _array_column(value, columns[name][1])
                for name, value in zip(names, values, strict=True)
            }


def _concatenated(blocks: list[dict], name: str, dtype) -> np.ndarray:
    return np.concatenate([b[name] for b in blocks]) if blocks else np.zeros(0, dtype)


def _read_judgments(scope: str, params: list) -> dict:
    """The judgments in `scope` as columns sorted by id, and "ranked": (row, completion id,
    group index) of every id their rankings hold."""
    blocks = list(
        read_blocks(
            _JUDGMENT_COLUMNS,
            f"collection_judgment j WHERE {scope}",
            "j.id",
            [ReviewStatus.REJECTED, ReviewStatus.PENDING, *params],
        )
    )
    columns = {
        name: _concatenated(blocks, name, np.float64 if element == "float8" else np.int64)
        for name, (_, element) in _JUDGMENT_COLUMNS.items()
        if element != "text"
    }
    columns["included"] = columns["included"].astype(bool)
    rows, ids, groups, offset = [], [], [], 0
    for block in blocks:
        row, completion, group = parse_rankings(block["ranking"])
        ends = block["ranking"].count(b" -2 ")
        if ends != block["id"].shape[0]:
            raise ValueError("rankings and judgments do not line up")
        rows.append(row + offset)
        ids.append(completion)
        groups.append(group)
        offset += ends
    empty = np.zeros(0, dtype=np.int64)
    row = np.concatenate(rows) if rows else empty
    ranked = (
        row,
        np.concatenate(ids) if ids else empty,
        np.concatenate(groups) if groups else empty,
    )
    order = np.argsort(columns["id"], kind="stable")  # no ORDER BY: the server skips a sort
    if np.any(order[1:] < order[:-1]):
        columns = {name: values[order] for name, values in columns.items()}
        ranked = (np.argsort(order)[ranked[0]], ranked[1], ranked[2])
    columns["ranked"] = ranked
    return columns


def parse_rankings(text: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best-first group JSON texts, each followed by " -2 " ("[[5, 7], [6]] -2 ...")
    → (row, completion id, group index) of every id, by one numpy parse: a group break
    "], [" becomes -1 before the brackets go."""
    text = text.replace(b"], [", b" -1 ").replace(b"],[", b" -1 ").translate(_TO_SPACES)
    tokens = np.fromstring(text, dtype=np.int64, sep=" ")  # noqa: NPY201 - text mode
    ends = tokens == END
    row = np.cumsum(ends) - ends
    breaks = np.cumsum(tokens == BREAK)
    group = breaks - np.concatenate([[0], breaks[ends]])[row]
    ids = tokens >= 0
    return row[ids], tokens[ids], group[ids]


def _read_tasks(which: str, params: list) -> tuple[np.ndarray, np.ndarray]:
    """Ids (ascending) of the ranked tasks whose id satisfies `which`, and which are gold."""
    gold = "is_gold AND COALESCE(jsonb_array_length(gold_ranking) > 0, false)"
    columns = {"id": ("id", "int8"), "gold": (gold, "bool")}
    kinds = [Task.Kind.RANKING, Task.Kind.EVALUATION]
    source = f"collection_task WHERE id {which} AND kind = ANY(%s)"
    blocks = list(read_blocks(columns, source, "id", [*params, kinds]))
    ids = _concatenated(blocks, "id", np.int64)
    gold = _concatenated(blocks, "gold", bool).astype(bool)
    order = np.argsort(ids)
    return ids[order], gold[order]


class SlotLookup:
    """(task id, completion id) → the completion's canonical slot in its task, in numpy."""

    def __init__(self, task_ids, completion_ids, slots):
        keys = (np.asarray(task_ids, dtype=np.int64) << 32) | np.asarray(
            completion_ids, dtype=np.int64
        )
        order = np.argsort(keys)
        self.keys, self.values = keys[order], np.asarray(slots, dtype=np.int64)[order]

    def slots(self, task_id, completion_id) -> np.ndarray:
        """Slot of each pair; -1 where the task has no such completion."""
        keys = (np.asarray(task_id, dtype=np.int64) << 32) | np.asarray(
            completion_id, dtype=np.int64
        )
        if self.keys.shape[0] == 0:
            return np.full(keys.shape, -1, dtype=np.int64)
        where = np.clip(np.searchsorted(self.keys, keys), 0, self.keys.shape[0] - 1)
        return np.where(self.keys[where] == keys, self.values[where], -1)

    def of_task(self, task_id: int) -> dict[int, int]:
        low, high = np.searchsorted(self.keys, [task_id << 32, (task_id + 1) << 32])
        mask = (1 << 32) - 1
        pairs = zip(self.keys[low:high].tolist(), self.values[low:high].tolist(), strict=True)
        return {key & mask: slot for key, slot in pairs}


def _task_slots(task_ids: np.ndarray, which: str, params: list):
    """UTF-8 bytes per completion slot (T, K) of these tasks (`which`: the SQL condition on
    a task id that selects them), and their slot lookup."""
    columns = {
        "task": ("tc.task_id::int8", "int8"),
        "completion": ("tc.completion_id::int8", "int8"),
        "position": ("tc.position::int8", "int8"),
        "chars": ("c.bytes::int8", "int8"),
    }
    # Lengths in bytes: octet_length reads the stored size, length() would decode the text.
    # (OFFSET 0 keeps the length inside the subquery, so the join carries no text.)
    source = f"""collection_taskcompletion tc JOIN (
            SELECT id, octet_length(text) AS bytes FROM collection_completion OFFSET 0
        ) c ON c.id = tc.completion_id WHERE tc.task_id {which}"""
    blocks = list(read_blocks(columns, source, "tc.task_id", params)) if task_ids.size else []
    rows = {name: _concatenated(blocks, name, np.int64) for name in columns}
    keep = np.isin(rows["task"], task_ids)  # ranked tasks only
    rows = {name: values[keep] for name, values in rows.items()}
    k_max = int(rows["position"].max()) + 1 if rows["position"].size else 2
    lengths = np.full((task_ids.shape[0], k_max), np.nan)
    lengths[np.searchsorted(task_ids, rows["task"]), rows["position"]] = rows["chars"]
    return lengths, SlotLookup(rows["task"], rows["completion"], rows["position"])


def _gold_positions(task_ids, is_gold, lookup: SlotLookup, k_max: int) -> np.ndarray:
    """Gold best-first group per slot of each task; -1 for tasks that are not gold."""
    gold_pos = np.full((task_ids.shape[0], k_max), -1, dtype=np.int8)
    rankings = Task.objects.filter(pk__in=task_ids[is_gold].tolist()).values_list(
        "pk", "gold_ranking"
    )
    for pk, ranking in rankings:
        positions = ag.ranking_to_positions(ranking, lookup.of_task(pk), k_max)
        gold_pos[np.searchsorted(task_ids, pk)] = positions
    return gold_pos


def _flag_rows(scope: str, params: list, flag_keys: list[str]) -> np.ndarray:
    """(judgment id, task id, completion id, flag bit) of every known flag set on the
    judgments in `scope`."""
    if not flag_keys:
        return np.zeros((0, 4), dtype=np.int64)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT j.id, j.task_id, e.cid::bigint, array_position(%s::text[], f.key) - 1
                FROM collection_judgment j
                CROSS JOIN LATERAL jsonb_each(j.flags) AS e(cid, keys)
                CROSS JOIN LATERAL jsonb_array_elements_text(e.keys) AS f(key)
                WHERE {scope} AND j.flags <> '{{}}'::jsonb AND f.key = ANY(%s::text[])""",
            [flag_keys, *params, flag_keys],
        )
        return np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 4)


def _flag_bits(flagged: np.ndarray, judgment_ids, lookup: SlotLookup, n: int, k_max: int):
    """Flag bits per (judgment, slot) from `_flag_rows`."""
    flags = np.zeros((n, k_max), dtype=np.uint32)
    if flagged.size:
        where = np.searchsorted(judgment_ids, flagged[:, 0])
        slot = lookup.slots(flagged[:, 1], flagged[:, 2])
        keep = slot >= 0
        bits = np.left_shift(np.uint32(1), flagged[keep, 3].astype(np.uint32))
        np.bitwise_or.at(flags, (where[keep], slot[keep]), bits)
    return flags
