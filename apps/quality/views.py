"""Reviewer pages: read the latest stored statistics, post decisions to services.

Every view requires the reviewer role (anyone else gets 403; anonymous: the login page) and
shows only the projects the reviewer reviews: another project, its judgments and raters
answer 404 (apps/collection/access.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.accounts.services import rater_profile_get_or_create
from apps.collection.models import Project, ReviewStatus
from apps.collection.selectors import project_get
from apps.core.errors import DomainError
from apps.core.ids import parse_id
from apps.core.pages import role_required
from apps.core.roles import Role
from apps.quality import overlap, review_context, selectors, services


def _back(request, fallback: str):
    target = request.POST.get("next", "")
    return redirect(target if target.startswith("/review/") else fallback)


def _snapshot_context(project: Project, *, keep_fresh: bool = True) -> dict:
    """The latest statistics and their age; a project page (`keep_fresh`) also queues a
    refresh when they are older than the project's bound, and says so."""
    if keep_fresh:
        freshness = services.quality_refresh_if_stale(project=project)
        return {
            "snapshot": freshness["snapshot"],
            "snapshot_age": freshness["age_seconds"],
            "freshness": freshness,
        }
    snapshot = selectors.snapshot_latest(project=project)
    age = (timezone.now() - snapshot.computed_at).total_seconds() if snapshot else None
    return {"snapshot": snapshot, "snapshot_age": age}


@role_required(Role.REVIEWER)
def index(request):
    projects = selectors.projects_with_pending_reviews(user=request.user)
    rows = [{"project": p, **_snapshot_context(p, keep_fresh=False)} for p in projects]
    return render(request, "quality/index.html", {"rows": rows})


@role_required(Role.REVIEWER)
def dashboard(request, project_id: int):
    project = project_get(project_id=project_id, user=request.user, role=Role.REVIEWER)
    context = _snapshot_context(project)
    snapshot = context["snapshot"]
    stats = snapshot.data["project"] if snapshot else None
    raters = snapshot.data["raters"] if snapshot else []
    context.update(
        project=project,
        stats=stats,
        flagged=[r for r in raters if r.get("flags")],
        too_few=[
            r
            for r in raters
            if not r.get("flags") and not r.get("evidence", {}).get("enough", True)
        ],
        series=stats["series"] if stats else {"points": []},
        failed_screenings=selectors.screenings_needing_attention(project=project),
        settings=selectors.quality_settings(project=project),
        pending=selectors.pending_reviews_count(project=project),
        overlap=overlap.overlap_overview(project=project),
    )
    return render(request, "quality/dashboard.html", context)


RATER_COLUMNS = [
    ("name", "Rater"),
    ("judgments", "Judgments"),
    ("agreement", "Agreement (LOO)"),
    ("peer_agreement", "Pairwise with peers"),
    ("gold_accuracy", "Gold accuracy"),
    ("median_seconds", "Median s / task"),
    ("first_ranked_first", "First shown ranked first"),
    ("length_tau", "τ with length"),
    ("flag_rate", "Flag rate"),
    ("weight", "Consensus weight"),
]


@role_required(Role.REVIEWER)
def raters(request, project_id: int):
    project = project_get(project_id=project_id, user=request.user, role=Role.REVIEWER)
    context = _snapshot_context(project)
    snapshot = context["snapshot"]
    rows = snapshot.data["raters"] if snapshot else []
    context.update(
        project=project,
        rows=rows,
        columns=RATER_COLUMNS,
        settings=selectors.quality_settings(project=project),
    )
    return render(request, "quality/raters.html", context)


PERCENT_MEASURES = {
    "agreement",
    "peer_agreement",
    "gold_accuracy",
    "first_ranked_first",
    "flag_rate",
}


def _shown(key: str, value) -> str:
    if value is None:
        return "—"
    if key in PERCENT_MEASURES:
        return f"{value * 100:.1f}%"
    if key == "judgments":
        return str(value)
    return f"{value:.2f}"


@role_required(Role.REVIEWER)
def rater_detail(request, project_id: int, user_id: int):
    project = project_get(project_id=project_id, user=request.user, role=Role.REVIEWER)
    rater = selectors.rater_for_reviewer(user_id=user_id, user=request.user)
    profile = rater_profile_get_or_create(user=rater)
    context = _snapshot_context(project)
    snapshot = context["snapshot"]
    row = next(
        (r for r in (snapshot.data["raters"] if snapshot else []) if r["rater_id"] == rater.pk),
        None,
    )
    context.update(
        project=project,
        rater=rater,
        profile=profile,
        row=row,
        measures=_rater_measures(row),
        trend=row["trend"] if row else None,
        trend_rows=_trend_rows(row["trend"]) if row else [],
        comparisons=selectors.rater_judgments_with_consensus(project=project, rater=rater),
        screening=selectors.screening_for(project=project, rater=rater),
        status_changes=selectors.rater_status_changes(rater=rater, limit=20),
        pending=selectors.pending_reviews_count(project=project, rater=rater),
    )
    return render(request, "quality/rater.html", context)


def _rater_measures(row: dict | None) -> list[tuple[str, str]]:
    """(label, shown value) of each measure, the agreement followed by its 95% interval."""
    if not row:
        return []
    shown = []
    for key, label in RATER_COLUMNS[1:]:
        shown.append((label, _shown(key, row.get(key))))
        low, high = row.get("agreement_ci") or [None, None]
        if key == "agreement" and low is not None:
            shown.append(("Agreement, 95% interval", f"{_shown(key, low)} – {_shown(key, high)}"))
    return shown


def _trend_rows(trend: dict, last: int = 12) -> list[dict]:
    """The latest periods of a rater's trend as rows, newest first."""
    names = ["judgments", "agreement", "gold_accuracy", "first_ranked_first", "flag_rate"]
    rows = []
    for i in range(len(trend["t"]) - 1, max(len(trend["t"]) - 1 - last, -1), -1):
        row = {"start": datetime.fromtimestamp(trend["t"][i], tz=UTC)}
        row.update({name: trend[name][i] for name in names})
        rows.append(row)
    return rows


@role_required(Role.REVIEWER)
def queue(request, project_id: int):
    project = project_get(project_id=project_id, user=request.user, role=Role.REVIEWER)
    status = request.GET.get("status", ReviewStatus.PENDING)
    if status not in {*ReviewStatus.values, ""}:
        status = ReviewStatus.PENDING
    rater_id = request.GET.get("rater")
    judgments = selectors.review_queue(
        project=project,
        status=status,
        rater_id=parse_id(rater_id),
    )
    page = Paginator(judgments, 50).get_page(request.GET.get("page"))
    judgments_shown = list(page.object_list)
    readable = review_context.judgments_readable(judgments_shown)
    context = _snapshot_context(project)
    agreement = {
        row["rater_id"]: row
        for row in (context["snapshot"].data["raters"] if context["snapshot"] else [])
    }
    context.update(
        project=project,
        page=page,
        status=status,
        statuses=ReviewStatus.choices,
        rows=[(j, agreement.get(j.rater_id), readable[j.pk]) for j in judgments_shown],
        recent=selectors.review_decisions_recent(project=project, limit=10),
    )
    return render(request, "quality/queue.html", context)


LETTERS = "ABCDEFGHI"


@role_required(Role.REVIEWER)
def judgment_page(request, judgment_id: int):
    """One judgment in context: answers side by side in the rater's order, the other raters
    and the consensus; approve, reject and move on by keyboard."""
    judgment = selectors.judgment_for_reviewer(judgment_id=judgment_id, user=request.user)
    project = judgment.task.project
    status = request.GET.get("status", ReviewStatus.PENDING)
    if status not in {*ReviewStatus.values, ""}:
        status = ReviewStatus.PENDING
    context = _snapshot_context(project)
    detail = review_context.judgment_in_context(judgment=judgment)
    letter = {c["id"]: LETTERS[i] for i, c in enumerate(detail["completions"])}
    rater_row = next(
        (
            r
            for r in (context["snapshot"].data["raters"] if context["snapshot"] else [])
            if r["rater_id"] == judgment.rater_id
        ),
        None,
    )
    neighbours = review_context.queue_neighbours(project=project, judgment=judgment, status=status)
    query = f"?status={status}"
    context.update(
        project=project,
        judgment=judgment,
        detail=detail,
        letter=letter,
        answers=[{**c, "letter": letter[c["id"]]} for c in detail["completions"]],
        ranking_letters=_as_letters(detail["ranking"], letter),
        others=[
            {**o, "ranking_letters": _as_letters(o["ranking"], letter)} for o in detail["others"]
        ],
        consensus_letters=_as_letters((detail["consensus"] or {}).get("ranking"), letter),
        gold_letters=_as_letters((detail["gold"] or {}).get("ranking"), letter),
        rater_row=rater_row,
        status=status,
        next_url=_judgment_url(neighbours["next"], query),
        previous_url=_judgment_url(neighbours["previous"], query),
        queue_url=reverse("quality:queue", args=[project.pk]) + query,
    )
    return render(request, "quality/judgment.html", context)


def _judgment_url(judgment_id: int | None, query: str) -> str | None:
    return reverse("quality:judgment", args=[judgment_id]) + query if judgment_id else None


def _as_letters(ranking, letter: dict[int, str]) -> str:
    """Best-first groups of completion ids as "B ≻ A = D ≻ C" (letters: the rater's order)."""
    groups = [" = ".join(letter.get(cid, f"#{cid}") for cid in group) for group in ranking or []]
    return " ≻ ".join(groups)


PAST_TENSE = {"approve": "approved", "reject": "rejected"}


def _run(request, action, success: str) -> None:
    try:
        result = action()
    except DomainError as error:
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in error.fields.items())
        messages.error(request, f"{error.message} {detail}".strip())
        return
    messages.success(request, success.format(result=result))


@require_POST
@role_required(Role.REVIEWER)
def judgment_review(request, judgment_id: int):
    judgment = selectors.judgment_for_reviewer(judgment_id=judgment_id, user=request.user)
    decision = request.POST.get("decision", "")
    _run(
        request,
        lambda: services.judgment_review(
            judgment_id=judgment_id,
            reviewer=request.user,
            decision=decision,
            reason=request.POST.get("reason", ""),
        ),
        f"Judgment {judgment_id}: {PAST_TENSE.get(decision, decision)}.",
    )
    return _back(request, reverse("quality:queue", args=[judgment.task.project_id]))


@require_POST
@role_required(Role.REVIEWER)
def bulk_review(request, project_id: int):
    project = project_get(project_id=project_id, user=request.user, role=Role.REVIEWER)
    ids = [parse_id(pk) for pk in request.POST.getlist("judgment_ids")]
    if None in ids:
        messages.error(request, "Some judgment ids are not ids; nothing was changed.")
        return _back(request, reverse("quality:queue", args=[project.pk]))
    _run(
        request,
        lambda: services.judgments_review_bulk(
            project=project,
            judgment_ids=ids,
            reviewer=request.user,
            decision=request.POST.get("decision", ""),
            reason=request.POST.get("reason", ""),
        ),
        "{result} judgments updated.",
    )
    return _back(request, reverse("quality:queue", args=[project.pk]))


@require_POST
@role_required(Role.REVIEWER)
def approve_reliable(request, project_id: int):
    project = project_get(project_id=project_id, user=request.user, role=Role.REVIEWER)
    try:
        threshold = float(request.POST.get("min_agreement", ""))
    except ValueError:
        threshold = -1.0
    _run(
        request,
        lambda: services.judgments_approve_reliable(
            project=project,
            reviewer=request.user,
            min_agreement=threshold,
            reason=request.POST.get("reason", ""),
        ),
        "{result} judgments of reliable raters approved.",
    )
    return _back(request, reverse("quality:queue", args=[project.pk]))


@require_POST
@role_required(Role.REVIEWER)
def rater_suspend(request, user_id: int):
    rater = selectors.rater_for_reviewer(user_id=user_id, user=request.user)
    _run(
        request,
        lambda: services.rater_suspend(
            rater=rater,
            actor=request.user,
            reason=request.POST.get("reason", ""),
            reject_pending=request.POST.get("reject_pending") == "on",
        ),
        "Suspended: {result.leases_released} leases released, "
        "{result.judgments_rejected} judgments rejected.",
    )
    return _back(request, reverse("quality:index"))


@require_POST
@role_required(Role.REVIEWER)
def rater_reinstate(request, user_id: int):
    rater = selectors.rater_for_reviewer(user_id=user_id, user=request.user)
    _run(
        request,
        lambda: services.rater_reinstate(
            rater=rater, actor=request.user, reason=request.POST.get("reason", "")
        ),
        "Reinstated.",
    )
    return _back(request, reverse("quality:index"))


@require_POST
@role_required(Role.REVIEWER)
def refresh(request, project_id: int):
    """Refresh now (incremental), or recompute every figure from all judgments (`full`)."""
    project = project_get(project_id=project_id, user=request.user, role=Role.REVIEWER)
    full = request.POST.get("full") == "1"
    services.quality_refresh_request(project=project, full=full)
    messages.success(
        request,
        "Recomputing every figure from all judgments; this page updates when it is done."
        if full
        else "Refreshing the statistics; this page updates when it is done.",
    )
    return _back(request, reverse("quality:dashboard", args=[project.pk]))
