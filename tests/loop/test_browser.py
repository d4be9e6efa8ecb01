"""A researcher starts a round in the browser, watches it advance, downloads its snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.collection.models import PolicyVersion
from apps.collection.services import membership_add
from apps.core.roles import Role
from apps.loop.models import Stage, TrainingRound, TrainingRun
from tests.browser import log_in, screenshot
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_researcher_runs_a_round_and_downloads_the_snapshot(
    page, live_server, loop_project, stages
):
    project, base = loop_project
    rosalind = UserFactory(username="rosalind", roles=[Role.RESEARCHER])
    membership_add(project=project, user=rosalind, role=Role.RESEARCHER)
    log_in(page, live_server, "rosalind", next_url="/research/")

    form = page.locator(f'.loop-project[data-project="{project.pk}"] form.loop-start')
    form.locator('select[name="preset"]').select_option("tiny")
    form.locator('input[name="target_judgments"]').fill("8")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/research/rounds/*/")
    assert page.locator("#round-stage").inner_text() == "Sampling"
    assert page.locator('#stage-bar li[data-stage="sampling"] small').inner_text() == "queued"

    training_round = TrainingRound.objects.get(project=project)
    assert stages.drain() == ["succeeded"]  # the gpu worker samples from the tiny policy
    page.wait_for_function(
        "document.getElementById('round-stage').dataset.stage === 'collecting'", timeout=15_000
    )
    call_command(
        "simulate_raters",
        url=live_server.url,
        project=project.pk,
        raters=3,
        adversarial=0,
        max_judgments=10,
        max_seconds=30,
    )
    page.wait_for_function(
        "document.querySelector('#results dd').textContent.startsWith('0 of') === false",
        timeout=15_000,
    )
    # cancel asks first: dismissed, nothing happens
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("#cancel")
    assert asked and asked[0].startswith("Cancel round 1?")
    assert TrainingRound.objects.get(project=project).stage == Stage.COLLECTING
    assert page.locator("#retry").is_disabled()  # nothing failed or was cancelled
    page.click("#move-on")  # the researcher ends collecting early
    page.wait_for_selector("text=Collecting ended.")
    assert page.locator("#move-on").is_disabled()  # no longer collecting
    # exporting, then SFT: skipped, the snapshot has no demonstrations
    assert stages.drain(until_stage=Stage.RM) == ["succeeded", "succeeded"]
    training_round.refresh_from_db()
    assert training_round.stage == Stage.RM and training_round.snapshot_id
    page.wait_for_function(
        "document.getElementById('round-stage').dataset.stage === 'rm'", timeout=15_000
    )
    assert page.locator('#stage-bar li[data-stage="exporting"] small').inner_text() == "succeeded"
    assert page.locator('#stage-bar li[data-stage="sft"] small').inner_text() == "skipped"
    screenshot(page, "loop-round")

    page.click("#snapshot-link a")
    page.wait_for_url("**/research/snapshots/*/")
    screenshot(page, "loop-snapshot")
    with page.expect_download() as download_info:
        page.click("a.download:has-text('rankings.jsonl')")
    download = download_info.value
    lines = [json.loads(line) for line in Path(download.path()).read_text().splitlines()]
    assert len(lines) == training_round.snapshot.row_counts["rankings.jsonl"] >= 8
    assert set(lines[0]) >= {"prompt", "completions", "ranking", "rater", "weight"}


def test_a_finished_round_shows_what_it_learnt_with_each_n_and_ci(page, live_server, project):
    # the figures of a real cpu-demo draw (bench/results/2026-12-03-demo-round/seed2.json)
    base = PolicyVersion.objects.create(project=project, name="base", artifact_uri="/m/base")
    training_round = TrainingRound.objects.create(
        project=project, number=1, start_policy=base, stage=Stage.DONE, config={}
    )
    win = {"win_rate": 0.667, "ci_low": 0.542, "ci_high": 0.792, "n": 36}
    TrainingRun.objects.create(
        round=training_round,
        stage=Stage.PPO,
        status=TrainingRun.Status.SUCCEEDED,
        metrics={"score_first": -0.071, "score_last": 0.161, "kl_last": 2.79, "steps_done": 20},
    )
    learning = {
        "rm_accuracy": {"value": 0.636, "ci": [0.574, 0.698], "n_pairs": 162},
        "agreement_ceiling": {"value": 0.679, "ci": [0.593, 0.778], "n_rater_pairs": 162},
        "rm_vs_hidden_rule": {"accuracy": 0.714, "ci": [0.612, 0.818], "pairs": 49},
        "hidden_rule_on_rankings": {"accuracy": 0.710, "ci": [0.617, 0.790], "pairs": 162},
        # against the consensus: the figures of a 2026-12-04 draw's reward model
        "rm_accuracy_consensus": {"value": 0.657, "ci": [0.546, 0.75], "n_pairs": 108},
        "hidden_rule_on_consensus": {"accuracy": 0.769, "ci": [0.667, 0.861], "pairs": 108},
    }
    TrainingRun.objects.create(
        round=training_round,
        stage=Stage.EVALUATING,
        status=TrainingRun.Status.SUCCEEDED,
        metrics={
            "vs_parent": {"win_rate": {"overall": {**win, "win_rate": 0.708}}},
            "hidden_rule": {"win_rate": {"overall": win}},
            "learning": learning,
        },
    )
    ada = UserFactory(username="ada", roles=[Role.RESEARCHER])
    membership_add(project=project, user=ada, role=Role.RESEARCHER)
    log_in(page, live_server, "ada", next_url=f"/research/rounds/{training_round.pk}/")
    page.wait_for_selector("#results dd")
    shown = dict(
        zip(
            page.locator("#results dt").all_inner_texts(),
            page.locator("#results dd").all_inner_texts(),
            strict=True,
        )
    )
    assert shown["RM accuracy on held-out comparisons"] == "0.636 (95% CI 0.574–0.698, n=162 pairs)"
    assert shown["Raters' agreement on the same tasks (ceiling)"].endswith("n=162 rater pairs)")
    assert shown["PPO reward, first → last quarter"] == "-0.071 → 0.161 (KL 2.790 nats, n=20 steps)"
    assert "n=36" in shown["Win rate on the simulated raters' rule"]
    assert shown["The rule itself vs the raters (what a perfect RM would score)"] == (
        "0.710 (95% CI 0.617–0.790, n=162 pairs)"
    )
    assert shown["RM accuracy vs the raters' consensus (held-out tasks with overlap)"] == (
        "0.657 (95% CI 0.546–0.750, n=108 pairs)"
    )
    assert shown["The rule itself vs the raters' consensus"] == (
        "0.769 (95% CI 0.667–0.861, n=108 pairs)"
    )
