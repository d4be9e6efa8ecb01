"""Scoring functions importable as ``tests.trainer.scoring:NAME`` (for --score-fn)."""


def digit_count(prompts: list[str], completions: list[str]) -> list[float]:
    """Synthetic reward: a quarter point per digit in the completion."""
    return [sum(ch.isdigit() for ch in c) / 4 for c in completions]


def length_score(prompts: list[str], completions: list[str]) -> list[float]:
    return [float(len(c)) for c in completions]


def brevity(prompts: list[str], completions: list[str]) -> list[float]:
    """Rewards stopping early: the shortcut a small reward model can fall for."""
    return [-len(c) / 4 for c in completions]
