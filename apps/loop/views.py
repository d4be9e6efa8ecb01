"""Researcher pages: start rounds, watch them live, policy lineage, snapshots and downloads.

Every view needs the researcher role (anonymous: the login page; anyone else: 403) and shows
only the projects the researcher researches (another project's answer 404). The round
page polls GET /api/rounds/{id}/ and redraws its stage bar, plots and log (static/loop/round.js).
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from apps.collection import access
from apps.collection.models import PolicyVersion
from apps.collection.selectors import project_get
from apps.collection.services import project_overlap_update
from apps.core.errors import DomainError
from apps.core.ids import parse_id
from apps.core.pages import role_required
from apps.core.roles import Role
from apps.loop import api, selectors, services
from apps.loop.config import DEFAULTS, PRESETS, SELECTION_CHOICES
from apps.quality.overlap import overlap_overview


@role_required(Role.RESEARCHER)
def index(request):
    projects = []
    for project in access.projects_for(user=request.user, role=Role.RESEARCHER):
        projects.append(
            {
                "project": project,
                "policies": PolicyVersion.objects.filter(project=project).order_by("-pk"),
                "latest": selectors.policy_latest(project=project),
                "rounds": selectors.rounds_list(project=project)[:10],
            }
        )
    return render(
        request,
        "loop/index.html",
        {"projects": projects, "presets": sorted(PRESETS), "defaults": DEFAULTS},
    )


@role_required(Role.RESEARCHER)
@require_POST
def round_start(request, project_id: int):
    project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
    policy = None
    policy_text = request.POST.get("start_policy_id", "").strip()
    if policy_text:
        policy = PolicyVersion.objects.filter(pk=parse_id(policy_text), project=project).first()
        if policy is None:
            messages.error(request, "Choose a policy of this project to start from.")
            return redirect("loop:index")
    overrides = {}
    for name in ("target_judgments", "prompts_per_round"):
        value = request.POST.get(name, "").strip()
        if value:
            if parse_id(value) is None:
                messages.error(request, f"{name.replace('_', ' ')} must be a whole number.")
                return redirect("loop:index")
            overrides[name] = parse_id(value)
    overrides["require_review"] = request.POST.get("require_review") == "on"
    # Which prompts raters rank first (apps/loop/selection.py); the config check names a
    # bad value, and nothing is started.
    overrides["selection"] = request.POST.get("selection", "off")
    samples = request.POST.get("samples_per_prompt", "").strip()
    if samples:
        if parse_id(samples) is None:
            messages.error(request, "samples per prompt must be a whole number.")
            return redirect("loop:index")
        overrides["samples_per_prompt"] = parse_id(samples)
    try:
        training_round = services.round_start(
            project=project,
            user=request.user,
            start_policy=policy,
            preset=request.POST.get("preset", ""),
            config=overrides,
        )
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("loop:index")
    return redirect("loop:round", round_id=training_round.pk)


@role_required(Role.RESEARCHER)
def round_page(request, round_id: int):
    training_round = selectors.round_get(round_id=round_id, user=request.user)
    return render(
        request,
        "loop/round.html",
        {"round": training_round, "detail": selectors.round_detail(training_round=training_round)},
    )


def _round_action(request, round_id: int, action, done: str):
    training_round = selectors.round_get(round_id=round_id, user=request.user)
    try:
        action(training_round=training_round, user=request.user)
        messages.success(request, done)
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("loop:round", round_id=round_id)


@role_required(Role.RESEARCHER)
@require_POST
def round_cancel(request, round_id: int):
    return _round_action(request, round_id, services.round_cancel, "Round cancelled.")


@role_required(Role.RESEARCHER)
@require_POST
def round_retry(request, round_id: int):
    return _round_action(request, round_id, services.round_retry, "Stage queued again.")


@role_required(Role.RESEARCHER)
@require_POST
def round_move_on(request, round_id: int):
    return _round_action(request, round_id, services.round_move_on, "Collecting ended.")


@role_required(Role.RESEARCHER)
def lineage(request, project_id: int):
    project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
    return render(
        request,
        "loop/lineage.html",
        {"project": project, "policies": selectors.policy_lineage(project=project)},
    )


@role_required(Role.RESEARCHER)
def snapshot_page(request, snapshot_id: int):
    snapshot = selectors.snapshot_get(snapshot_id=snapshot_id, user=request.user)
    files = [
        {"name": name, **snapshot.manifest.get("files", {}).get(name, {})}
        for name in api.exports.FILES
    ]
    return render(
        request,
        "loop/snapshot.html",
        {"snapshot": snapshot, "files": files, "card": data_card_rows(snapshot.data_card)},
    )


STATUS_WORDS = {"approved": "approved", "pending": "not yet reviewed", "rejected": "rejected"}
SOURCE_WORDS = {
    "this_round": "from this round",
    "earlier_rounds": "from earlier rounds",
    "outside_rounds": "from tasks made outside rounds",
    "imported": "imported",
}


def data_card_rows(card: dict) -> list[dict]:
    """The data card as rows for a table: a label, a sentence, and where a list says more
    than a sentence, a small table ({"label", "text", "table": [(name, value), ...]})."""
    filters = card.get("filters") or {}
    statuses = [STATUS_WORDS.get(s, s) for s in filters.get("review_statuses") or []]
    low, high = [*(filters.get("rounds") or []), None, None][:2]
    rounds = (
        f"rounds {low} to {high}" if low and high else f"rounds up to {high}" if high else "all"
    )
    if filters.get("outside_rounds"):
        rounds += " and tasks made outside rounds (seeded, sampled or imported)"
    sources = card.get("rankings_by_source") or {}
    agreement = card.get("agreement") or {}
    ci = agreement.get("pairwise_agreement_ci") or [None, None]
    pairwise = agreement.get("pairwise_agreement")
    raters = card.get("raters") or {}
    by_rater = sorted((raters.get("judgments_by_rater") or {}).items(), key=lambda kv: -kv[1])
    by_version = sorted((card.get("judgments_by_guidelines_version") or {}).items())
    rows = [
        {
            "label": "Judgments taken",
            "text": f"{filters.get('task_kind', 'ranking')} tasks; judgments "
            f"{' or '.join(statuses) or '—'}; {rounds}; gold tasks "
            f"{'included' if filters.get('include_gold') else 'left out'}",
        },
        {
            "label": "Rankings by source",
            "text": ", ".join(
                f"{sources.get(key, 0)} {words}" for key, words in SOURCE_WORDS.items()
            )
            if sources
            else "—",
        },
        {
            "label": "Guidelines",
            "text": f"version {card.get('guidelines_version', '—')} when frozen",
            "table": [(f"version {v}", n) for v, n in by_version],
        },
        {
            "label": "Raters",
            "text": f"{raters.get('count', 0)} rater(s)",
            "table": [(name, n) for name, n in by_rater[:25]]
            + ([(f"… {len(by_rater) - 25} more", "")] if len(by_rater) > 25 else []),
        },
        {
            "label": "Agreement between raters",
            "text": (
                f"{pairwise:.1%} pairwise"
                + (f" (95% CI {ci[0]:.1%}–{ci[1]:.1%})" if ci[0] is not None else "")
                + (
                    f", Krippendorff α {agreement['krippendorff_alpha_pairs']:.3f}"
                    if agreement.get("krippendorff_alpha_pairs") is not None
                    else ""
                )
                + f", over {agreement.get('tasks_with_overlap', 0)} tasks with two raters or more"
                if pairwise is not None
                else f"— ({agreement.get('source') or 'no task has two raters'})"
            ),
        },
        {"label": "Ranking weights", "text": _weighting_text(card.get("weighting"))},
        {"label": "Held-out rankings", "text": str(card.get("held_out_rankings", 0))},
        {"label": "Policies sampled", "text": ", ".join(card.get("policies") or []) or "—"},
    ]
    return rows


def _weighting_text(weighting) -> str:
    if isinstance(weighting, dict):
        return "; ".join(f"{key}: {value}" for key, value in weighting.items())
    return str(weighting or "uniform")


@role_required(Role.RESEARCHER)
def snapshot_download(request, snapshot_id: int, name: str):
    return api.snapshot_file_response(snapshot_id=snapshot_id, name=name, user=request.user)


@role_required(Role.RESEARCHER)
@require_http_methods(["GET", "POST"])
def collection_settings(request, project_id: int):
    """Adaptive collection for one project: dynamic overlap (a project setting, changed
    here) and what it saved; uncertainty selection is chosen per round when one starts."""
    project = project_get(project_id=project_id, user=request.user, role=Role.RESEARCHER)
    if request.method == "POST":
        try:
            project_overlap_update(
                project=project,
                dynamic_overlap=request.POST.get("dynamic_overlap") == "on",
                overlap=parse_id(request.POST.get("overlap", "")) or 0,
                overlap_max=parse_id(request.POST.get("overlap_max", "")) or 0,
                confidence_target=_probability(request.POST.get("confidence_target", "")),
            )
        except DomainError as exc:
            messages.error(request, exc.message)
            for field, problems in (exc.fields or {}).items():
                messages.error(request, f"{field.replace('_', ' ')}: {' '.join(problems)}")
        else:
            messages.success(request, "Overlap settings saved; new tasks follow them.")
        return redirect("loop:collection-settings", project_id=project.pk)
    return render(
        request,
        "loop/collection_settings.html",
        {
            "project": project,
            "overview": overlap_overview(project=project, limit=0),
            "selection_choices": SELECTION_CHOICES,
        },
    )


def _probability(text: str):
    try:
        return float(text)
    except ValueError:
        return text  # refused by the service with the field named
