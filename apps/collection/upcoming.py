"""Work on its way to a project, for the labeler home's "new tasks in about N minutes".

Collection does not know how tasks get made elsewhere (a training round samples them on a
worker), so the apps that make them register a source: a function from a project to the
seconds until its next tasks appear, or None when nothing is on its way. Collection's own
source is the demo's first sampling (demo.py marks its base policy while it runs).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.utils import timezone

from apps.collection.models import PolicyVersion, Project

Source = Callable[[Project], float | None]
_SOURCES: list[Source] = []
DEMO_SAMPLING_SECONDS = 300.0  # SmolLM2 on a CPU, once (README)
MINIMUM_WAIT_SECONDS = 60.0  # a run past its expected length is "about a minute" away


def register(source: Source) -> None:
    if source not in _SOURCES:
        _SOURCES.append(source)


def seconds_until_new_tasks(project: Project) -> float | None:
    """The soonest any source expects new tasks in `project`, or None."""
    waits = [wait for source in _SOURCES if (wait := source(project)) is not None]
    return min(waits) if waits else None


def remaining(*, started: datetime, expected_seconds: float) -> float:
    """Seconds left of a run that started at `started` and usually takes `expected_seconds`."""
    elapsed = (timezone.now() - started).total_seconds()
    return max(expected_seconds - elapsed, MINIMUM_WAIT_SECONDS)


def _demo_sampling(project: Project) -> float | None:
    policy = (
        PolicyVersion.objects.filter(project=project, metadata__has_key="sampling_started_at")
        .exclude(metadata__has_key="sampling_finished_at")
        .first()
    )
    if policy is None:
        return None
    started = datetime.fromisoformat(policy.metadata["sampling_started_at"])
    return remaining(started=started, expected_seconds=DEMO_SAMPLING_SECONDS)


register(_demo_sampling)
