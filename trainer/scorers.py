"""Synthetic scorers for smoke tests and benchmarks, registered by name in
``trainer.contract.SCORERS`` (``--score-fn length``); the loop's hidden rule is registered there
too, from apps/loop/scoring.py. Each takes (prompts, completions) and returns one score each."""

from __future__ import annotations


def length(prompts: list[str], completions: list[str]) -> list[float]:
    """Characters in the completion."""
    return [float(len(c)) for c in completions]


def digit_count(prompts: list[str], completions: list[str]) -> list[float]:
    """A quarter point per digit in the completion."""
    return [sum(ch.isdigit() for ch in c) / 4 for c in completions]


def brevity(prompts: list[str], completions: list[str]) -> list[float]:
    """Rewards stopping early: the shortcut a small reward model can fall for."""
    return [-len(c) / 4 for c in completions]
