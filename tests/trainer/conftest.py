"""Fixtures for the trainer tests: tiny models built in code, synthetic datasets."""

from __future__ import annotations

import random

import pytest

from trainer.data import Ranking


@pytest.fixture(autouse=True, scope="session")
def _quiet_transformers():
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core machine the
    threads spin against each other (a 10 s test took minutes)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny random Llama + character tokenizer saved with save_pretrained (PAD=0, EOS=1)."""
    from trainer.bootstrap import BootstrapConfig, bootstrap

    out = tmp_path_factory.mktemp("tiny") / "model"
    bootstrap(BootstrapConfig(out=str(out), tiny=True, seed=0))
    return out


def count_rule_rankings(n: int, k: int, seed: int, length: int = 8) -> list[Ranking]:
    """Completions over "abxy"; more x's is better, equal counts are ties."""
    rng = random.Random(seed)
    rankings = []
    for i in range(n):
        completions = ["".join(rng.choice("abxy") for _ in range(length)) for _ in range(k)]
        counts = [c.count("x") for c in completions]
        levels = sorted(set(counts), reverse=True)
        groups = [[j for j in range(k) if counts[j] == level] for level in levels]
        rankings.append(Ranking(f"q{seed}-{i}:", completions, groups))
    return rankings


def ranking_row(r: Ranking) -> dict:
    return {
        "prompt": r.prompt,
        "completions": r.completions,
        "ranking": r.ranking,
        "rater": "r1",
        "task_id": 1,
        "judgment_id": 1,
        "policy_versions": ["base"],
    }
