"""A judgment as a reviewer needs to see it: what was ranked, how, by whom, and beside whom.

`judgment_in_context` is what `GET /api/judgments/{id}/` returns and what the review page
(`/review/judgments/{id}/`) draws: the prompt, the completions' texts in the order the rater
saw them with the rater's place, Likert score and flags for each, the rationale and time
spent, the rater's pseudonym, the gold answer of a gold task, the other raters' judgments
of the same task, and the reliability-weighted consensus of all of them.
"""

from __future__ import annotations

from apps.accounts.models import RaterProfile
from apps.collection.content import task_content
from apps.collection.models import Judgment, Project, ReviewStatus, Task, TaskCompletion
from apps.quality import agreement as ag
from apps.quality import selectors

OTHER_JUDGMENTS_SHOWN = 50


def judgment_in_context(*, judgment: Judgment) -> dict:
    """Everything a reviewer weighs before deciding on `judgment` (plain data, for JSON)."""
    task = judgment.task
    content = task_content(task_id=task.pk)
    canonical = list(content.completions)  # completion ids in the task's canonical order
    others = list(
        Judgment.objects.filter(task=task, rater__isnull=False)
        .exclude(pk=judgment.pk)
        .order_by("created_at", "pk")[:OTHER_JUDGMENTS_SHOWN]
    )
    names = dict(
        RaterProfile.objects.filter(
            user_id__in=[judgment.rater_id, *[o.rater_id for o in others]]
        ).values_list("user_id", "pseudonym")
    )
    consensus = None
    if task.kind in selectors.RANKED_KINDS:
        consensus = selectors.task_consensus(task_id=task.pk)
    shown = [cid for cid in judgment.display_order if cid in content.completions]
    shown += [cid for cid in canonical if cid not in shown]  # (an order stored before K grew)
    return {
        "judgment_id": judgment.pk,
        "task_id": task.pk,
        "project_id": task.project_id,
        "kind": task.kind,
        "created_at": judgment.created_at,
        "guidelines_version": judgment.guidelines_version,
        "prompt": {"id": content.prompt_id, "text": content.prompt_text},
        "completions": _completions(judgment, shown, content.completions, canonical),
        "ranking": judgment.ranking,
        "likert": judgment.likert,
        "flags": judgment.flags,
        "rationale": judgment.rationale,
        "both_bad": judgment.both_bad,
        "time_spent_ms": judgment.time_spent_ms,
        "rater": {"id": judgment.rater_id, "pseudonym": names.get(judgment.rater_id, "")},
        "review": _review(judgment),
        "gold": _gold(task),
        "others": [_other(o, names, canonical, judgment) for o in others],
        "consensus": _consensus(consensus, judgment, canonical),
    }


def _completions(judgment: Judgment, shown: list[int], texts: dict, canonical: list) -> list:
    place = _places(judgment.ranking)
    return [
        {
            "id": cid,
            "text": texts[cid],
            "shown_at": position + 1,  # 1 = the rater saw it first (leftmost)
            "canonical_position": canonical.index(cid),
            "place": place.get(cid),  # 1 = best; equal places are a tie
            "likert": (judgment.likert or {}).get(str(cid)),
            "flags": (judgment.flags or {}).get(str(cid), []),
        }
        for position, cid in enumerate(shown)
    ]


def _places(ranking) -> dict[int, int]:
    """completion id → its best-first place (1 = best), ties sharing one."""
    return {cid: index + 1 for index, group in enumerate(ranking or []) for cid in group}


def _review(judgment: Judgment) -> dict:
    return {
        "status": judgment.review_status,
        "reviewed_by": judgment.reviewed_by.username if judgment.reviewed_by_id else None,
        "reviewed_at": judgment.reviewed_at,
        "reason": judgment.review_reason,
    }


def _gold(task: Task) -> dict | None:
    if not task.is_gold or not task.gold_ranking:
        return None
    return {"ranking": task.gold_ranking, "places": _places(task.gold_ranking)}


def _agreement_with(ranking_a, ranking_b, canonical: list[int]) -> float | None:
    """Kendall's τ-b between two rankings of the task (None when undefined)."""
    if len(canonical) < 2:
        return None
    slot_of = ag.slot_index(canonical)
    a = ag.ranking_to_positions(ranking_a, slot_of, len(canonical))
    b = ag.ranking_to_positions(ranking_b, slot_of, len(canonical))
    both = (a >= 0) & (b >= 0)
    tau = ag.kendall_tau_b(a[both], b[both]) if both.sum() >= 2 else float("nan")
    return None if tau != tau else round(tau, 3)


def _other(other: Judgment, names: dict, canonical: list[int], judgment: Judgment) -> dict:
    return {
        "judgment_id": other.pk,
        "rater": {"id": other.rater_id, "pseudonym": names.get(other.rater_id, "")},
        "ranking": other.ranking,
        "places": _places(other.ranking),
        "likert": other.likert,
        "flags": other.flags,
        "rationale": other.rationale,
        "time_spent_ms": other.time_spent_ms,
        "review_status": other.review_status,
        "tau_with_this": _agreement_with(other.ranking, judgment.ranking, canonical),
        "created_at": other.created_at,
    }


def _consensus(consensus: dict | None, judgment: Judgment, canonical: list[int]) -> dict | None:
    if consensus is None:
        return None
    return {
        "ranking": consensus["ranking"],
        "places": _places(consensus["ranking"]),
        "scores": consensus["scores"],
        "p_prefer": consensus["p_prefer"],
        "judgments": consensus["judgments"],
        "raters": consensus["raters"],
        "tau_with_this": _agreement_with(consensus["ranking"], judgment.ranking, canonical),
    }


def queue_neighbours(
    *, project: Project, judgment: Judgment, status: str = ReviewStatus.PENDING
) -> dict[str, int | None]:
    """The judgments before and after this one in the review queue (same status filter,
    oldest first), for "next" and "previous" on the review page."""
    queue = selectors.review_queue(project=project, status=status).exclude(pk=judgment.pk)
    later = queue.filter(created_at__gt=judgment.created_at) | queue.filter(
        created_at=judgment.created_at, pk__gt=judgment.pk
    )
    earlier = queue.filter(created_at__lt=judgment.created_at) | queue.filter(
        created_at=judgment.created_at, pk__lt=judgment.pk
    )
    following = later.order_by("created_at", "pk").values_list("pk", flat=True).first()
    preceding = earlier.order_by("-created_at", "-pk").values_list("pk", flat=True).first()
    if following is None and status == ReviewStatus.PENDING:  # wrap round to the oldest
        following = queue.order_by("created_at", "pk").values_list("pk", flat=True).first()
    return {"next": following, "previous": preceding}


def judgments_readable(judgments: list[Judgment], snippet: int = 90) -> dict[int, dict]:
    """For a page of judgments: each one's answers in the order its rater saw them
    (letter, place, the start of the text) and its ranking in those letters."""
    texts = dict(
        TaskCompletion.objects.filter(task_id__in={j.task_id for j in judgments}).values_list(
            "completion_id", "completion__text"
        )
    )
    readable = {}
    for judgment in judgments:
        shown = [cid for cid in judgment.display_order if cid in texts]
        letter = {cid: "ABCDEFGHI"[i] for i, cid in enumerate(shown)}
        place = _places(judgment.ranking)
        readable[judgment.pk] = {
            "answers": [
                {
                    "letter": letter[cid],
                    "place": place.get(cid),
                    "text": texts[cid][:snippet] + ("…" if len(texts[cid]) > snippet else ""),
                }
                for cid in shown
            ],
            "ranking": " ≻ ".join(
                " = ".join(letter.get(cid, f"#{cid}") for cid in group)
                for group in judgment.ranking or []
            ),
        }
    return readable
