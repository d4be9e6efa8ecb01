"""Reads of rater quality: judgments as arrays, the latest statistics, consensus."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Length

from apps.accounts.models import RaterProfile
from apps.collection import access
from apps.collection.models import (
    Assignment,
    Judgment,
    Project,
    ProjectMembership,
    ReviewStatus,
    Task,
    TaskCompletion,
)
from apps.core.errors import NotFound
from apps.core.roles import Role, is_staff
from apps.quality import agreement as ag
from apps.quality.measures import JudgmentArrays, consensus_scores
from apps.quality.models import (
    ProjectQualitySettings,
    QualitySnapshot,
    RaterScreening,
    RaterStatusChange,
    ReviewDecision,
)

RANKED_KINDS = (Task.Kind.RANKING, Task.Kind.EVALUATION)


def quality_settings(*, project: Project) -> ProjectQualitySettings:
    """The project's settings row, or unsaved defaults (no screening) when it has none.

    A project read with `select_related("quality_settings")` answers without a query.
    """
    try:
        return project.quality_settings
    except ProjectQualitySettings.DoesNotExist:
        return ProjectQualitySettings(project=project)


def judgment_arrays(
    *, project: Project | None = None, task_ids: list[int] | None = None
) -> JudgmentArrays:
    """The judgments of a project (or of some tasks) as `measures.JudgmentArrays` columns.

    On PostgreSQL the rankings are unpacked by the server (`_judgment_columns_postgres`);
    elsewhere (SQLite, the embedded default) rows are read with `values_list` and turned
    into arrays in one pass. This is the part the benchmark reports as "read time".
    """
    tasks = Task.objects.filter(kind__in=RANKED_KINDS)
    tasks = tasks.filter(project=project) if project is not None else tasks.filter(pk__in=task_ids)
    if connection.vendor == "postgresql":
        return _judgment_arrays_postgres(project=project, tasks=tasks)
    return _judgment_arrays_generic(project=project, tasks=tasks)


def _judgment_arrays_generic(*, project: Project | None, tasks) -> JudgmentArrays:
    """`judgment_arrays` on any database: one pass over the rows in Python."""
    task_rows = list(tasks.order_by("pk").values_list("pk", "is_gold", "gold_ranking"))
    task_index = {pk: i for i, (pk, _, _) in enumerate(task_rows)}
    slots: dict[int, dict[int, int]] = defaultdict(dict)
    lengths: dict[int, dict[int, int]] = defaultdict(dict)
    completions = (
        TaskCompletion.objects.filter(task__in=tasks)
        .annotate(chars=Length("completion__text"))
        .values_list("task_id", "completion_id", "position", "chars")
    )
    for task_id, completion_id, position, chars in completions.iterator(chunk_size=20_000):
        slots[task_id][completion_id] = position
        lengths[task_id][position] = chars
    k_max = max((len(s) for s in slots.values()), default=2)
    n_tasks = len(task_rows)
    task_lengths = np.full((n_tasks, k_max), np.nan)
    gold_pos = np.full((n_tasks, k_max), -1, dtype=np.int8)
    is_gold = np.zeros(n_tasks, dtype=bool)
    for i, (pk, gold, gold_ranking) in enumerate(task_rows):
        for position, chars in lengths[pk].items():
            task_lengths[i, position] = chars
        if gold and gold_ranking:
            is_gold[i] = True
            gold_pos[i] = ag.ranking_to_positions(gold_ranking, slots[pk], k_max)

    flag_keys = list(project.flag_keys) if project is not None else []
    flag_bit = {key: 1 << bit for bit, key in enumerate(flag_keys[:32])}
    rows = (
        Judgment.objects.filter(task__in=tasks, rater__isnull=False)
        .order_by("pk")
        .values_list(
            "task_id",
            "rater_id",
            "ranking",
            "display_order",
            "flags",
            "time_spent_ms",
            "created_at",
            "review_status",
            "reviewed_at",
        )
    )
    columns: dict[str, list] = defaultdict(list)
    rater_index: dict[int, int] = {}
    rank_rows, flag_rows = [], []
    for task_id, rater_id, ranking, shown, flags, spent, created, status, reviewed in rows.iterator(
        chunk_size=20_000
    ):
        task_slots = slots[task_id]
        rank_rows.append(ag.ranking_to_positions(ranking, task_slots, k_max))
        bits = np.zeros(k_max, dtype=np.uint32)
        for cid, keys in (flags or {}).items():
            slot = task_slots.get(int(cid))
            if slot is not None:
                bits[slot] = sum(flag_bit.get(key, 0) for key in keys)
        flag_rows.append(bits)
        columns["task"].append(task_index[task_id])
        columns["rater"].append(rater_index.setdefault(rater_id, len(rater_index)))
        columns["first"].append(task_slots.get(shown[0], -1) if shown else -1)
        columns["spent"].append(np.nan if spent is None else spent)
        columns["created"].append(created.timestamp())
        columns["included"].append(status != ReviewStatus.REJECTED)
        columns["reviewed"].append(
            reviewed.timestamp() if reviewed and status != ReviewStatus.PENDING else np.nan
        )
    rater_ids = np.array(list(rater_index), dtype=np.int64)
    names = dict(
        RaterProfile.objects.filter(user_id__in=list(rater_index)).values_list(
            "user_id", "pseudonym"
        )
    )
    n = len(rank_rows)
    return JudgmentArrays(
        task=np.array(columns["task"], dtype=np.int32),
        rater=np.array(columns["rater"], dtype=np.int32),
        rank_pos=np.array(rank_rows, dtype=np.int8).reshape(n, k_max),
        first_shown=np.array(columns["first"], dtype=np.int8),
        created=np.array(columns["created"], dtype=np.float64),
        time_spent_ms=np.array(columns["spent"], dtype=np.float64),
        flags=np.array(flag_rows, dtype=np.uint32).reshape(n, k_max),
        included=np.array(columns["included"], dtype=bool),
        reviewed=np.array(columns["reviewed"], dtype=np.float64),
        task_is_gold=is_gold,
        task_gold_pos=gold_pos,
        task_lengths=task_lengths,
        task_ids=np.array([pk for pk, _, _ in task_rows], dtype=np.int64),
        rater_ids=rater_ids,
        flag_keys=flag_keys,
        rater_names=[names.get(int(pk), str(pk)) for pk in rater_ids],
    )


def _gold_columns(task_rows: list, k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Gold best-first group per slot (-1 elsewhere) and which tasks are gold."""
    gold_pos = np.full((len(task_rows), k_max), -1, dtype=np.int8)
    is_gold = np.zeros(len(task_rows), dtype=bool)
    gold = {pk: i for i, (pk, flag, ranking) in enumerate(task_rows) if flag and ranking}
    slots: dict[int, dict[int, int]] = defaultdict(dict)
    for task_id, completion_id, position in TaskCompletion.objects.filter(
        task_id__in=list(gold)
    ).values_list("task_id", "completion_id", "position"):
        slots[task_id][completion_id] = position
    for pk, i in gold.items():
        is_gold[i] = True
        gold_pos[i] = ag.ranking_to_positions(task_rows[i][2], slots[pk], k_max)
    return gold_pos, is_gold


def _fetch_numbers(sql: str, params: list, width: int) -> np.ndarray:
    """Run a query whose columns are all numbers; return them as one float64 matrix."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return np.array(rows, dtype=np.float64).reshape(-1, width)


def _task_slots_postgres(tasks, task_ids: np.ndarray):
    """Per-task completion lengths (T, K), and a sorted (task id, completion id) → slot
    lookup for mapping the ids judgments mention to canonical slots in numpy."""
    task_sql, task_params = tasks.values("pk").query.sql_with_params()
    rows = _fetch_numbers(
        f"""SELECT tc.task_id, tc.completion_id, tc.position, length(c.text)
            FROM collection_taskcompletion tc
            JOIN collection_completion c ON c.id = tc.completion_id
            WHERE tc.task_id IN ({task_sql})""",
        list(task_params),
        4,
    ).astype(np.int64)
    k_max = int(rows[:, 2].max()) + 1 if rows.size else 2
    lengths = np.full((task_ids.shape[0], k_max), np.nan)
    if rows.size:
        lengths[np.searchsorted(task_ids, rows[:, 0]), rows[:, 2]] = rows[:, 3]
    keys = (rows[:, 0] << 32) | rows[:, 1]
    order = np.argsort(keys)
    return lengths, keys[order], rows[order, 2]


def _slots_of(lookup_keys, lookup_slots, task_id, completion_id) -> np.ndarray:
    """Canonical slot of each (task id, completion id), -1 where the task has no such id."""
    keys = (np.asarray(task_id, dtype=np.int64) << 32) | np.asarray(completion_id, dtype=np.int64)
    if lookup_keys.shape[0] == 0:
        return np.full(keys.shape, -1, dtype=np.int64)
    where = np.clip(np.searchsorted(lookup_keys, keys), 0, lookup_keys.shape[0] - 1)
    return np.where(lookup_keys[where] == keys, lookup_slots[where], -1)


def _parse_rankings(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best-first group JSON texts ("[[5, 7], [6]]") → (row, completion id, group index)
    of every id, parsed by one numpy call: a group break "], [" becomes -1 before the
    brackets go, and rows are joined by -2."""
    text = " -2 ".join(texts).replace("], [", " -1 ").replace("],[", " -1 ") + " -2"
    text = text.replace("[", " ").replace("]", " ").replace(",", " ")
    tokens = np.fromstring(text, sep=" ").astype(np.int64)  # noqa: NPY201 - text mode is fine
    row_end = tokens == -2
    breaks = np.cumsum(tokens == -1)
    row = np.cumsum(row_end) - row_end
    group = breaks - np.concatenate([[0], breaks[row_end]])[row]
    ids = tokens >= 0
    return row[ids], tokens[ids], group[ids]


def _judgment_arrays_postgres(*, project: Project | None, tasks) -> JudgmentArrays:
    """`judgment_arrays` on PostgreSQL: numbers come back as number columns, rankings as
    their JSON text, and numpy maps completion ids to canonical slots for all rows at once."""
    task_rows = list(tasks.order_by("pk").values_list("pk", "is_gold", "gold_ranking"))
    task_ids = np.array([pk for pk, _, _ in task_rows], dtype=np.int64)
    task_lengths, lookup_keys, lookup_slots = _task_slots_postgres(tasks, task_ids)
    k_max = task_lengths.shape[1]
    gold_pos, is_gold = _gold_columns(task_rows, k_max)
    task_sql, task_params = tasks.values("pk").query.sql_with_params()
    scope = f"j.task_id IN ({task_sql}) AND j.rater_id IS NOT NULL"
    flag_keys = list(project.flag_keys)[:32] if project is not None else []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")  # compiling costs more than these scans save
        cursor.execute(
            f"""SELECT j.id, j.task_id, j.rater_id,
                       COALESCE((j.display_order->>0)::bigint, 0),
                       COALESCE(j.time_spent_ms::float8, 'NaN'::float8),
                       EXTRACT(EPOCH FROM j.created_at)::float8,
                       CASE j.review_status WHEN %s THEN 0 ELSE 1 END,
                       CASE WHEN j.review_status <> %s AND j.reviewed_at IS NOT NULL
                            THEN EXTRACT(EPOCH FROM j.reviewed_at)::float8
                            ELSE 'NaN'::float8 END,
                       j.ranking::text
                FROM collection_judgment j WHERE {scope} ORDER BY j.id""",
            [ReviewStatus.REJECTED, ReviewStatus.PENDING, *task_params],
        )
        rows = cursor.fetchall()
        cursor.execute(
            f"""SELECT j.id, j.task_id, e.cid::bigint, array_position(%s::text[], f.key) - 1
                FROM collection_judgment j
                CROSS JOIN LATERAL jsonb_each(j.flags) AS e(cid, keys)
                CROSS JOIN LATERAL jsonb_array_elements_text(e.keys) AS f(key)
                WHERE {scope} AND j.flags <> '{{}}'::jsonb AND f.key = ANY(%s::text[])""",
            [flag_keys, *task_params, flag_keys],
        )
        flagged = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 4)
    n = len(rows)
    texts = [row[8] for row in rows]
    scalars = np.array([row[:8] for row in rows], dtype=np.float64).reshape(n, 8)
    del rows
    judgment_ids = scalars[:, 0].astype(np.int64)
    judgment_tasks = scalars[:, 1].astype(np.int64)
    rank_pos = np.full((n, k_max), -1, dtype=np.int8)
    if n:
        row, completion, group = _parse_rankings(texts)
        slot = _slots_of(lookup_keys, lookup_slots, judgment_tasks[row], completion)
        known = slot >= 0
        rank_pos[row[known], slot[known]] = group[known]
    first_shown = _slots_of(lookup_keys, lookup_slots, judgment_tasks, scalars[:, 3])
    flags = np.zeros((n, k_max), dtype=np.uint32)
    if flagged.size:
        where = np.searchsorted(judgment_ids, flagged[:, 0])
        slot = _slots_of(lookup_keys, lookup_slots, flagged[:, 1], flagged[:, 2])
        keep = slot >= 0
        bits = np.left_shift(np.uint32(1), flagged[keep, 3].astype(np.uint32))
        np.bitwise_or.at(flags, (where[keep], slot[keep]), bits)
    rater_ids, rater = np.unique(scalars[:, 2].astype(np.int64), return_inverse=True)
    names = dict(
        RaterProfile.objects.filter(user_id__in=rater_ids.tolist()).values_list(
            "user_id", "pseudonym"
        )
    )
    return JudgmentArrays(
        task=np.searchsorted(task_ids, judgment_tasks).astype(np.int32),
        rater=rater.astype(np.int32),
        rank_pos=rank_pos,
        first_shown=first_shown.astype(np.int8),
        created=scalars[:, 5],
        time_spent_ms=scalars[:, 4],
        flags=flags,
        included=scalars[:, 6] > 0,
        reviewed=scalars[:, 7],
        task_is_gold=is_gold,
        task_gold_pos=gold_pos,
        task_lengths=task_lengths,
        task_ids=task_ids,
        rater_ids=rater_ids,
        flag_keys=flag_keys,
        rater_names=[names.get(int(pk), str(pk)) for pk in rater_ids],
    )


def snapshot_latest(*, project: Project) -> QualitySnapshot | None:
    return QualitySnapshot.objects.filter(project=project).order_by("-computed_at", "-pk").first()


def rater_weights(*, project: Project) -> dict[int, float]:
    """Each rater's consensus weight from the latest snapshot (absent: weight 1)."""
    snapshot = snapshot_latest(project=project)
    if snapshot is None:
        return {}
    return {
        row["rater_id"]: row["weight"]
        for row in snapshot.data.get("raters", [])
        if row.get("weight") is not None
    }


def project_consensus(*, project: Project, task_ids: list[int] | None = None) -> dict[int, dict]:
    """`task_consensus` for many tasks of a project at once (one read, one batched fit)."""
    arrays = (
        judgment_arrays(project=project)
        if task_ids is None
        else judgment_arrays(task_ids=list(task_ids))
    )
    return _consensus_from_arrays(arrays, rater_weights(project=project))


def task_consensus(*, task_id: int) -> dict:
    """The consensus of one task's raters, for reviewers and the export stage.

    A Bradley–Terry model (Bradley & Terry 1952) fitted to every pairwise outcome the task's
    judgments imply, each judgment weighted by its rater's reliability (log-odds of agreeing
    with the other raters, from the latest quality snapshot; weight 1 before there is one).
    Rejected judgments are left out. Returns:

        {"task_id": int,
         "completion_ids": [int, ...]           canonical order,
         "scores": {completion_id: float}       log-strengths, mean 0,
         "ranking": [[completion_id, ...], ...] best-first groups (equal scores tie),
         "p_prefer": {i: {j: P(i ≻ j)}}          soft labels σ(s_i − s_j), i ≠ j,
         "judgments": int, "raters": int, "weight": float  (total rater weight used)}

    With no judgments, every score is 0 and every P(i ≻ j) is ½.
    """
    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        raise NotFound("No such task.")
    if task.kind not in RANKED_KINDS:
        raise NotFound("This task has no completions to rank, so it has no consensus.")
    arrays = judgment_arrays(task_ids=[task_id])
    return _consensus_from_arrays(arrays, rater_weights(project=task.project))[task_id]


def _consensus_from_arrays(arrays: JudgmentArrays, weights_by_id: dict[int, float]) -> dict:
    weight = np.array([weights_by_id.get(int(pk), 1.0) for pk in arrays.rater_ids])
    scores = consensus_scores(arrays, weight) if arrays.n_tasks else np.zeros((0, 0))
    slots = defaultdict(list)
    for task_id, completion_id in (
        TaskCompletion.objects.filter(task_id__in=arrays.task_ids.tolist())
        .order_by("task_id", "position")
        .values_list("task_id", "completion_id")
    ):
        slots[task_id].append(completion_id)
    used = arrays.included
    judgments = np.bincount(arrays.task[used], minlength=arrays.n_tasks)
    total_weight = np.bincount(
        arrays.task[used], weights=weight[arrays.rater[used]], minlength=arrays.n_tasks
    )
    raters = defaultdict(set)
    for t, r in zip(arrays.task[used].tolist(), arrays.rater[used].tolist(), strict=True):
        raters[t].add(r)
    result = {}
    for t, task_id in enumerate(arrays.task_ids.tolist()):
        ids = slots[task_id]
        task_scores = scores[t, : len(ids)] if len(ids) else np.zeros(0)
        probabilities = ag.preference_probabilities(task_scores)
        result[task_id] = {
            "task_id": task_id,
            "completion_ids": ids,
            "scores": {cid: round(float(s), 6) for cid, s in zip(ids, task_scores, strict=True)},
            "ranking": [[ids[i] for i in group] for group in ag.scores_to_groups(task_scores)],
            "p_prefer": {
                a: {b: round(float(probabilities[i, j]), 6) for j, b in enumerate(ids) if i != j}
                for i, a in enumerate(ids)
            },
            "judgments": int(judgments[t]),
            "raters": len(raters[t]),
            "weight": round(float(total_weight[t]), 4),
        }
    return result


def screening_for(*, project: Project, rater) -> RaterScreening | None:
    return RaterScreening.objects.filter(project=project, rater=rater).first()


def screenings_needing_attention(*, project: Project) -> QuerySet[RaterScreening]:
    return RaterScreening.objects.filter(
        project=project, state=RaterScreening.State.FAILED
    ).select_related("rater__rater_profile")


def review_queue(
    *, project: Project, status: str = ReviewStatus.PENDING, rater_id: int | None = None
) -> QuerySet[Judgment]:
    """Judgments of the project awaiting (or past) review, oldest first."""
    judgments = Judgment.objects.filter(task__project=project, rater__isnull=False)
    if status:
        judgments = judgments.filter(review_status=status)
    if rater_id is not None:
        judgments = judgments.filter(rater_id=rater_id)
    return judgments.select_related("rater__rater_profile", "task__prompt", "reviewed_by").order_by(
        "created_at", "pk"
    )


def rater_judgments_with_consensus(*, project: Project, rater, limit: int = 50) -> list[dict]:
    """The rater's latest judgments on regular tasks beside the consensus of all raters,
    with the comparisons where they differ."""
    judgments = list(
        Judgment.objects.filter(task__project=project, rater=rater, task__is_gold=False)
        .select_related("task__prompt")
        .order_by("-created_at", "-pk")[:limit]
    )
    consensus = project_consensus(project=project, task_ids=[j.task_id for j in judgments])
    texts = dict(
        TaskCompletion.objects.filter(task_id__in=[j.task_id for j in judgments]).values_list(
            "completion_id", "completion__text"
        )
    )
    rows = []
    for judgment in judgments:
        agreed = consensus.get(judgment.task_id)
        ids = agreed["completion_ids"] if agreed else []
        own = ag.ranking_to_positions(judgment.ranking, ag.slot_index(ids), len(ids))
        theirs = np.array(
            [next(g for g, group in enumerate(agreed["ranking"]) if cid in group) for cid in ids]
            if agreed
            else [],
            dtype=np.int8,
        )
        disagreements = []
        if len(ids) >= 2:
            first, second = ag.slot_pairs(len(ids))
            for a, b in zip(first.tolist(), second.tolist(), strict=True):
                mine, consensus_sign = np.sign(own[b] - own[a]), np.sign(theirs[b] - theirs[a])
                if mine != consensus_sign and consensus_sign != 0:
                    winner, loser = (ids[a], ids[b]) if consensus_sign > 0 else (ids[b], ids[a])
                    disagreements.append(
                        {
                            "consensus_prefers": winner,
                            "over": loser,
                            "p": agreed["p_prefer"][winner][loser],
                            "rater_said": "tie" if mine == 0 else "the other way",
                        }
                    )
        rows.append(
            {
                "judgment": judgment,
                "ranking": judgment.ranking,
                "consensus": agreed["ranking"] if agreed else [],
                "consensus_judgments": agreed["judgments"] if agreed else 0,
                "disagreements": disagreements,
                "texts": texts,
                "tau_b": ag.kendall_tau_b(own, theirs) if len(ids) >= 2 else None,
            }
        )
    return rows


# --- scope: what a reviewer may act on (apps/collection/access.py) -------------------------


def judgment_for_reviewer(*, judgment_id: int, user) -> Judgment:
    """The judgment if its project is one `user` reviews; NotFound otherwise."""
    return access.object_for(
        Judgment.objects.select_related("task"),
        user=user,
        role=Role.REVIEWER,
        pk=judgment_id,
        via="task__project",
        missing="No such judgment, or you do not review its project.",
    )


def raters_in_scope(*, user) -> QuerySet:
    """Accounts a reviewer may act on: every account for staff; otherwise the labelers of
    the projects they review (members, or anyone who took a task there)."""
    users = get_user_model().objects.all()
    if is_staff(user):
        return users
    reviewed = access.projects_for(user=user, role=Role.REVIEWER).values("pk")
    member = ProjectMembership.objects.filter(
        user_id=OuterRef("pk"), project__in=reviewed, role=Role.LABELER
    )
    worked = Assignment.objects.filter(rater_id=OuterRef("pk"), task__project__in=reviewed)
    return users.filter(Exists(member) | Exists(worked))


def rater_for_reviewer(*, user_id: int, user):
    """The account `user_id` if `user` may act on it as a reviewer; NotFound otherwise."""
    rater = raters_in_scope(user=user).filter(pk=user_id).first()
    if rater is None:
        raise NotFound("No such rater, or not one who works on your projects.")
    return rater


def projects_with_pending_reviews(*, user) -> QuerySet[Project]:
    """The projects `user` reviews, by name, each with `.pending`: judgments awaiting review."""
    return (
        access.projects_for(user=user, role=Role.REVIEWER)
        .annotate(
            pending=Count(
                "tasks__judgments", filter=Q(tasks__judgments__review_status=ReviewStatus.PENDING)
            )
        )
        .order_by("name")
    )


def pending_reviews_count(*, project: Project, rater=None) -> int:
    """Judgments of the project (of one rater, when given) awaiting review."""
    pending = Judgment.objects.filter(task__project=project, review_status=ReviewStatus.PENDING)
    return (pending.filter(rater=rater) if rater is not None else pending).count()


def rater_status_changes(*, rater, limit: int) -> QuerySet[RaterStatusChange]:
    """The rater's latest suspensions and reinstatements, newest first, with who made them."""
    return RaterStatusChange.objects.filter(rater=rater).select_related("actor")[:limit]


def review_decisions_recent(*, project: Project, limit: int) -> QuerySet[ReviewDecision]:
    """The project's latest review decisions, newest first, with their reviewers."""
    return ReviewDecision.objects.filter(judgment__task__project=project).select_related(
        "reviewer"
    )[:limit]
