"""The screening gate the assignment engine asks before it leases a task: an interface.

Whether a rater must first pass a screening on gold tasks is rater-quality policy, which
lives in `apps/quality`. The engine (apps/collection/leasing.py) only needs its answer, so it
asks the `Screening` registered here; `apps/quality` registers its implementation when it
loads (`QualityConfig.ready`). Without one, every rater gets regular work. So collection
neither imports quality nor needs it in its tests (docs/design.md, "Collection and quality").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from django.db import models


class ScreeningGate(StrEnum):
    """What screening allows a rater in a project right now."""

    REGULAR = "regular"  # no screening, passed, or waived: regular work (with gold honeypots)
    GOLD_ONLY = "gold_only"  # in screening: gold tasks only
    CLOSED = "closed"  # failed screening: nothing until a reviewer reopens it


@dataclass(frozen=True)
class ScreeningProgress:
    """Where a rater stands in a project's screening, for the rater's own home page."""

    state: ScreeningGate  # GOLD_ONLY: in screening; CLOSED: failed
    answered: int  # gold tasks answered so far
    size: int  # gold tasks the screening asks for


class Screening(Protocol):
    #: a model with a one-to-one `project` field, read along with the project on every
    #: `next` (one statement, apps/collection/selectors.py), or None
    settings_model: type[models.Model] | None
    #: what a rater whose gate is CLOSED is told
    failed_message: str

    def gate(self, *, project, rater, now: datetime) -> ScreeningGate:
        """Where screening leaves `rater` in `project`; may decide pass or fail (it runs in
        the engine's transaction, with the rater's profile row locked)."""

    def progress(self, *, project, rater) -> ScreeningProgress | None:
        """Read only: the rater's screening in `project` while it is in the way (in
        screening, or failed); None when it is not (none, passed, waived)."""

    #: the project's quality settings a project's setup may change (screening among them):
    #: name → ("int" | "float", lowest, highest), checked by apps/collection/projects.py
    settings_fields: dict[str, tuple]

    def settings_read(self, *, project) -> dict:
        """The project's quality settings, by the names of `settings_fields`."""

    def settings_save(self, *, project, values: dict) -> None:
        """Store checked values of `settings_fields`."""


class NoScreening:
    settings_model = None
    failed_message = ""

    def gate(self, *, project, rater, now: datetime) -> ScreeningGate:
        return ScreeningGate.REGULAR

    def progress(self, *, project, rater) -> ScreeningProgress | None:
        return None

    settings_fields: dict[str, tuple] = {}

    def settings_read(self, *, project) -> dict:
        return {}

    def settings_save(self, *, project, values: dict) -> None:
        return None


_registered: Screening = NoScreening()


def screening_register(screening: Screening) -> None:
    global _registered
    _registered = screening


def screening() -> Screening:
    """The registered screening (quality's, once apps/quality has loaded)."""
    return _registered
