"""The simulated raters' hidden preference: a documented scoring rule a small model can learn.

"A good answer addresses the prompt, in plain words, concisely, and does not refuse."

    score = 2.0 * plain_words      share of characters that are letters, spaces or . , ' ? !
          + 1.0 * on_topic         share of the prompt's content words the answer repeats
          - 1.0 * refuses          the answer contains a refusal phrase ("I can't", "sorry", ...)
          - 0.02 * extra_words     words beyond 40 (concise: short answers are not penalised)
          - 0.5 * empty            an empty answer

The demo's SmolLM2 already writes plain words, so on_topic, refusals and length separate its
samples; a tiny random-initialised test model writes random characters, so plain_words is the
signal it can learn. This module imports nothing from Django: the trainer loads it as the
registered scorer ``hidden_rule`` (trainer/contract.py ``SCORERS``; ``--score-fn
hidden_rule``) to measure win rates on the hidden rule.
"""

from __future__ import annotations

import re

PLAIN_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,'?!")
REFUSALS = ("i can't", "i cannot", "i'm sorry", "i am sorry", "as an ai", "i won't", "sorry")
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "for",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "it",
        "this",
        "that",
        "what",
        "which",
        "who",
        "how",
        "why",
        "when",
        "where",
        "do",
        "does",
        "did",
        "with",
        "as",
        "at",
        "by",
        "from",
        "about",
        "your",
        "you",
        "me",
        "my",
        "i",
        "we",
        "our",
    ]
)
CONCISE_WORDS = 40

WEIGHTS = {
    "plain_words": 2.0,
    "on_topic": 1.0,
    "refuses": -1.0,
    "extra_words": -0.02,
    "empty": -0.5,
}


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in STOP_WORDS}


def features(prompt: str, completion: str) -> dict[str, float]:
    text = completion.strip()
    lowered = text.lower()
    wanted = content_words(prompt)
    return {
        "plain_words": sum(ch in PLAIN_CHARACTERS for ch in text) / len(text) if text else 0.0,
        "on_topic": len(wanted & content_words(text)) / len(wanted) if wanted else 0.0,
        "refuses": float(any(phrase in lowered for phrase in REFUSALS)),
        "extra_words": float(max(0, len(text.split()) - CONCISE_WORDS)),
        "empty": float(not text),
    }


def score(prompt: str, completion: str) -> float:
    """The hidden rule for one answer; higher is better."""
    return sum(WEIGHTS[name] * value for name, value in features(prompt, completion).items())


def hidden_score(prompts: list[str], completions: list[str]) -> list[float]:
    """Batch form, the signature of the trainer's scorers."""
    return [score(p, c) for p, c in zip(prompts, completions, strict=True)]
