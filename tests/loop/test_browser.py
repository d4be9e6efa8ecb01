"""A researcher starts a round in the browser, watches it advance, downloads its snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.collection.services import membership_add
from apps.core.roles import Role
from apps.loop.models import Stage, TrainingRound
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
