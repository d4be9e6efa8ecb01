"""The README's demo: six simulated raters, one adversarial, on the demo project. The
adversarial rater is flagged by the time round 1 starts collecting (every ranking task of
the demo judged, 36 × overlap 3 = 108 judgments) and no honest rater is flagged on agreement.

The answers are what `make run` ranks: SmolLM2-135M-Instruct's samples of the demo's 36
train prompts with the demo's sampling settings (apps/collection/demo.py SAMPLING; K = 4,
48 tokens, temperature 0.8, top-p 0.95, seed 0), made on this machine with
`python -m trainer sample` and kept in data/demo_samples.jsonl (a test never loads a model).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.collection import leasing
from apps.collection.demo import demo_seed
from apps.collection.models import Judgment, Prompt
from apps.collection.samples import tasks_create_from_samples
from apps.quality import services

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLES = Path(__file__).parent / "data" / "demo_samples.jsonl"
RATERS, ADVERSARIAL = 6, 1
JUDGMENTS = 36 * 3


def _demo_with_samples(tmp_path):
    seeded = demo_seed()
    by_text = {p.text: p.pk for p in Prompt.objects.filter(project=seeded.project)}
    rows = [json.loads(line) for line in SAMPLES.read_text(encoding="utf-8").splitlines()]
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        "\n".join(json.dumps({**row, "prompt_id": by_text[row["prompt"]]}) for row in rows),
        encoding="utf-8",
    )
    tasks = tasks_create_from_samples(
        project=seeded.project, policy_version=seeded.policy, samples_path=samples
    )
    assert len(tasks) == 36
    return seeded.project


@pytest.mark.parametrize("draw", [0, 1, 2])
def test_the_adversarial_demo_rater_is_flagged_by_the_end_of_round_1(
    live_server, tmp_path, monkeypatch, draw
):
    # the rater's display order is the one thing drawn at random (leasing._rng)
    monkeypatch.setattr(leasing, "_rng", random.Random(draw))
    project = _demo_with_samples(tmp_path)
    call_command(  # the README's command, bounded by the judgments of the demo's tasks
        "simulate_raters",
        url=live_server.url,
        project="demo",
        raters=RATERS,
        adversarial=ADVERSARIAL,
        max_judgments=JUDGMENTS,
        max_seconds=300,
    )
    assert Judgment.objects.filter(task__project=project).count() == JUDGMENTS
    snapshot = services.quality_snapshot_refresh(project_id=project.pk)
    rows = {row["name"]: row for row in snapshot.data["raters"]}
    names = {
        Judgment.objects.filter(rater__username=f"simrater{i + 1}")
        .first()
        .rater.rater_profile.pseudonym: i
        for i in range(RATERS)
    }
    adversarial = [rows[n] for n, i in names.items() if i >= RATERS - ADVERSARIAL]
    honest = [rows[n] for n, i in names.items() if i < RATERS - ADVERSARIAL]
    for row in adversarial:
        reasons = [f for f in row["flags"] if f["measure"] == "agreement"]
        assert reasons, row
        assert "rank against the others" in reasons[0]["reason"]
        assert row["judgments"] == JUDGMENTS // RATERS
        assert row["reliable_agreement_ci"][1] < 0.5 and row["skill"] < 0
    for row in honest:
        assert not [f for f in row["flags"] if f["measure"] == "agreement"], row
        assert row["skill"] > 0
