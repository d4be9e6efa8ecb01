"""How a stage stops: an error a researcher can act on, or a cancel."""

from __future__ import annotations


class StageError(Exception):
    """A stage cannot go on: the message says why, in words a researcher can act on. The
    executor fails the run and the round with it (docs/design.md, "Rounds and stages")."""


class StageCancelled(Exception):
    """The round was cancelled while the stage ran; its trainer has been stopped."""
