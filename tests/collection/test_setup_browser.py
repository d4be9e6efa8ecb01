"""Setting up a project in a real browser: create it (with a guidelines preview, and dynamic
overlap with a bad maximum refused first), upload a file with a bad line (nothing stored, the
line named), upload good data (the report), add a member."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from apps.collection.models import Judgment, Project, ProjectMembership, Prompt
from apps.core.roles import Role
from tests.browser import log_in, screenshot
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _file(tmp_path, name: str, rows: list[dict], tail: str = "") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + tail, encoding="utf-8")
    return str(path)


def test_a_researcher_sets_up_a_project_in_the_browser(page, live_server, tmp_path):
    UserFactory(username="rosa", roles=[Role.RESEARCHER, Role.REVIEWER])
    UserFactory(username="lia", roles=[Role.LABELER])
    log_in(page, live_server, "rosa", next_url="/research/")
    page.get_by_test_id("new-project").click()

    page.fill("#name", "Kind answers")
    page.fill("#k", "3")
    page.fill("#overlap", "2")
    page.uncheck("input[name=kind_evaluation]")
    page.fill("#guidelines", "# Rank kindly\n\nPrefer the **kindest** correct answer.")
    page.get_by_test_id("preview-button").click()
    preview = page.get_by_test_id("guidelines-preview")
    expect(preview.locator("h1")).to_have_text("Rank kindly")
    expect(preview.locator("strong")).to_have_text("kindest")
    assert not Project.objects.exists()  # a preview saves nothing
    page.fill("#flags", "rude: Rude or dismissive\nwrong: Factually wrong")
    page.fill("#screening_size", "2")
    page.fill("#stats_max_age_seconds", "60")
    page.check("#dynamic_overlap")
    page.fill("#overlap_max", "4")
    page.fill("#confidence_target", "0.85")
    screenshot(page, "setup-new-project")
    # a maximum below the starting overlap: refused, named, nothing created
    page.fill("#overlap_max", "1")
    page.get_by_test_id("save-button").click()
    expect(page.get_by_test_id("form-errors")).to_contain_text("overlap_max")
    assert not Project.objects.exists()
    expect(page.locator("#dynamic_overlap")).to_be_checked()  # what was typed stays
    page.fill("#overlap_max", "4")
    page.get_by_test_id("save-button").click()
    page.wait_for_url(f"{live_server.url}/research/projects/*/data/")
    project = Project.objects.get(slug="kind-answers")
    assert (project.k, project.overlap) == (3, 2)
    assert project.dynamic_overlap and project.overlap_max == 4
    assert project.confidence_target == 0.85
    assert project.task_kinds == ["ranking", "demonstration"]
    assert project.flag_keys == ["rude", "wrong"]
    assert project.guidelines.startswith("# Rank kindly")
    assert project.quality_settings.screening_size == 2

    # a file with a bad line: nothing stored, the line named
    bad = _file(
        tmp_path, "prompts.jsonl", [{"prompt": "Fine?"}, {"prompt": "Fine too?"}], "{oops\n"
    )
    form = page.get_by_test_id("upload-prompts")
    form.locator("input[type=file]").set_input_files(bad)
    form.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    expect(page.locator(".messages")).to_contain_text("line 3")
    expect(page.locator(".messages")).to_contain_text("Nothing was stored")
    assert not Prompt.objects.filter(project=project).exists()

    # good data: a report
    good = _file(
        tmp_path, "good.jsonl", [{"prompt": f"How do I say thanks, take {i}?"} for i in range(4)]
    )
    form = page.get_by_test_id("upload-prompts")
    form.locator("input[type=file]").set_input_files(good)
    form.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    expect(page.locator(".messages")).to_contain_text("4 rows read, 4 added, 0 already there")
    pairs = _file(
        tmp_path,
        "pairs.jsonl",
        [{"prompt": "Greet me.", "chosen": "Hello, nice to see you!", "rejected": "What."}],
    )
    form = page.get_by_test_id("upload-preferences")
    form.locator("select").select_option("pairs")
    form.locator("input[type=file]").set_input_files(pairs)
    form.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("imports")).to_contain_text("1 added")
    assert Prompt.objects.filter(project=project).count() == 5
    assert Judgment.objects.filter(task__project=project, source="imported").count() == 1
    screenshot(page, "setup-data")

    # a member with a role
    page.get_by_role("link", name="Members").click()
    page.fill("#member-username", "lia")
    page.select_option("#member-role", "labeler")
    page.get_by_role("button", name="Add member").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("members")).to_contain_text("lia")
    assert ProjectMembership.objects.filter(
        project=project, user__username="lia", role="labeler"
    ).exists()
