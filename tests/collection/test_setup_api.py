"""Project setup through the API: create and edit, upload prompts, preferences and gold
items with a report, big files as jobs, downloads; each endpoint with each role."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.collection import uploads
from apps.collection.models import ImportJob, Judgment, Project, Prompt, ReviewStatus, Task
from apps.collection.services import membership_add
from apps.collection.uploads import import_run
from apps.core.roles import Role
from apps.quality.models import ProjectQualitySettings
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

HH_RLHF = Path(__file__).resolve().parents[3] / "shared/data/hh-rlhf/harmless-base-test.jsonl.gz"


def jsonl(rows) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def upload(client, project, endpoint, name, content, fmt=None):
    data = {"file": SimpleUploadedFile(name, content)}
    if fmt:
        data["format"] = fmt
    return client.post(f"/api/projects/{project.pk}/{endpoint}/", data, format="multipart")


@pytest.fixture
def researcher_of(db):
    def make(project):
        user = UserFactory(roles=[Role.RESEARCHER])
        membership_add(project=project, user=user, role=Role.RESEARCHER)
        return user

    return make


# --- create and edit --------------------------------------------------------------------------


def test_a_researcher_creates_a_project_and_becomes_its_researcher(api_as):
    researcher = UserFactory(roles=[Role.RESEARCHER, Role.REVIEWER])
    response = api_as(researcher).post(
        "/api/projects/",
        {
            "name": "Summaries",
            "k": 3,
            "overlap": 4,
            "lease_seconds": 1200,
            "task_kinds": ["ranking", "demonstration"],
            "guidelines": "# Rank\\n\\nThe *shortest* faithful summary first.",
            "flag_set": [{"key": "unfaithful", "label": "Says what the text does not"}],
            "gold_rate": 0.05,
            "screening": {"size": 5, "threshold": 0.8, "stats_max_age_seconds": 60},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    project = Project.objects.get(pk=body["id"])
    assert (project.slug, project.k, project.overlap, project.lease_seconds) == (
        "summaries",
        3,
        4,
        1200,
    )
    assert project.task_kinds == ["ranking", "demonstration"]
    assert project.flag_keys == ["unfaithful"] and project.gold_rate == 0.05
    quality = ProjectQualitySettings.objects.get(project=project)
    assert (quality.screening_size, quality.screening_threshold) == (5, 0.8)
    assert quality.stats_max_age_seconds == 60
    roles = set(project.memberships.filter(user=researcher).values_list("role", flat=True))
    assert roles == {"researcher", "reviewer"}
    assert body["screening"]["size"] == 5


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "X", "k": 12}, "k"),
        ({"name": "X", "overlap": 0}, "overlap"),
        ({"name": "X", "gold_rate": 1.5}, "gold_rate"),
        ({"name": "X", "task_kinds": []}, "task_kinds"),
        ({"name": "X", "flag_set": [{"key": "Bad Key", "label": "x"}]}, "flag_set"),
        ({"name": "X", "screening": {"threshold": 2}}, "screening.threshold"),
        ({"name": "X", "slug": "Not a slug!"}, "slug"),
        ({"name": "X", "owner": "me"}, "owner"),
        ({"name": "X", "dynamic_overlap": "maybe"}, "dynamic_overlap"),
        ({"name": "X", "overlap_max": 16}, "overlap_max"),
        ({"name": "X", "overlap_max": 0}, "overlap_max"),
        ({"name": "X", "overlap_max": 2.5}, "overlap_max"),
        ({"name": "X", "confidence_target": 1.0}, "confidence_target"),
        ({"name": "X", "confidence_target": 0.49}, "confidence_target"),
        ({"name": "X", "confidence_target": "NaN"}, "confidence_target"),
        ({"name": "X", "dynamic_overlap": True, "overlap": 4, "overlap_max": 3}, "overlap_max"),
        # one unmeasured rater already reaches 0.75: nobody would ever get a second rater
        (
            {"name": "X", "dynamic_overlap": True, "overlap": 1, "confidence_target": 0.75},
            "confidence_target",
        ),
    ],
)
def test_bad_settings_answer_400_naming_the_field_and_create_nothing(api_as, values, field):
    response = api_as(UserFactory(roles=[Role.RESEARCHER])).post(
        "/api/projects/", values, format="json"
    )
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert not Project.objects.exists()


def test_only_researchers_and_staff_create_projects(api_as, client):
    for role in (Role.LABELER, Role.REVIEWER):
        refused = api_as(UserFactory(roles=[role])).post("/api/projects/", {"name": "X"})
        assert refused.status_code == 403, role
    assert client.post("/api/projects/", {"name": "X"}).status_code == 401
    staff = UserFactory(roles=[], is_staff=True)
    assert api_as(staff).post("/api/projects/", {"name": "X"}, format="json").status_code == 201
    again = api_as(staff).post("/api/projects/", {"name": "X"}, format="json")
    assert again.status_code == 400 and "slug" in again.json()["fields"]
    assert Project.objects.count() == 1


def test_a_researcher_edits_their_project_only(api_as, researcher_of):
    project = ProjectFactory(guidelines="Old.")
    client = api_as(researcher_of(project))
    changed = client.patch(
        f"/api/projects/{project.pk}/",
        {"guidelines": "New.", "overlap": 5, "screening": {"size": 2}},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    project.refresh_from_db()
    assert project.guidelines == "New." and project.guidelines_version == 2
    assert project.overlap == 5 and project.quality_settings.screening_size == 2
    assert client.get(f"/api/projects/{project.pk}/").json()["guidelines"] == "New."
    other = ProjectFactory()
    assert client.patch(f"/api/projects/{other.pk}/", {"k": 3}, format="json").status_code == 404
    labeler = UserFactory(roles=[Role.LABELER])
    membership_add(project=project, user=labeler, role=Role.LABELER)
    refused = api_as(labeler).patch(f"/api/projects/{project.pk}/", {"k": 3}, format="json")
    assert refused.status_code == 403
    bad = client.patch(f"/api/projects/{project.pk}/", {"k": 1, "overlap": 9}, format="json")
    assert bad.status_code == 400
    project.refresh_from_db()
    assert project.k == 4 and project.overlap == 5  # nothing of a bad request is saved


def test_dynamic_overlap_is_a_project_setting(api_as, researcher_of):
    """Off by default; on with its maximum and target through create and PATCH; a maximum
    below where tasks start is refused with nothing saved, whichever request brings it."""
    researcher = UserFactory(roles=[Role.RESEARCHER])
    created = api_as(researcher).post("/api/projects/", {"name": "Plain"}, format="json")
    body = created.json()
    assert (body["dynamic_overlap"], body["overlap_max"], body["confidence_target"]) == (
        False,
        5,
        0.9,
    )
    project = ProjectFactory(overlap=3)
    client = api_as(researcher_of(project))
    url = f"/api/projects/{project.pk}/"
    on = client.patch(
        url,
        {"dynamic_overlap": True, "overlap": 1, "overlap_max": 4, "confidence_target": 0.85},
        format="json",
    )
    assert on.status_code == 200, on.content
    project.refresh_from_db()
    assert (project.dynamic_overlap, project.overlap, project.overlap_max) == (True, 1, 4)
    assert project.confidence_target == 0.85
    assert client.get(url).json()["confidence_target"] == 0.85
    # raising the start above the maximum, with dynamic overlap on: refused, nothing saved
    bad = client.patch(url, {"overlap": 6, "guidelines": "New."}, format="json")
    assert bad.status_code == 400 and list(bad.json()["fields"]) == ["overlap_max"]
    project.refresh_from_db()
    assert (project.overlap, project.guidelines_version) == (1, 1)
    # with dynamic overlap off, the maximum does not bind the fixed overlap
    off = client.patch(url, {"dynamic_overlap": False, "overlap": 6}, format="json")
    assert off.status_code == 200, off.content
    again = client.patch(url, {"dynamic_overlap": True}, format="json")
    assert again.status_code == 400 and "overlap_max" in again.json()["fields"]
    project.refresh_from_db()
    assert (project.dynamic_overlap, project.overlap, project.overlap_max) == (False, 6, 4)


# --- uploads ------------------------------------------------------------------------------------


def test_prompts_upload_reports_and_is_idempotent(api_as, researcher_of):
    project = ProjectFactory(task_kinds=["ranking", "demonstration"])
    client = api_as(researcher_of(project))
    rows = [{"prompt": f"Question {i}?", "category": "Open QA"} for i in range(5)]
    rows.append({"prompt": "Question 0?"})  # the same text again
    first = upload(client, project, "prompts", "prompts.jsonl", jsonl(rows))
    assert first.status_code == 201, first.content
    report = first.json()
    assert report["rows_read"] == 6 and report["added"] == 5 and report["already_there"] == 1
    assert report["demonstration_tasks_created"] == 5
    assert Prompt.objects.filter(project=project, category="open_qa").count() == 5
    again = upload(client, project, "prompts", "prompts.jsonl", jsonl(rows)).json()
    assert again["added"] == 0 and again["already_there"] == 6
    csv = gzip.compress(b"prompt,split\nA new one?,test\n")
    third = upload(client, project, "prompts", "more.csv.gz", csv).json()
    assert third["added"] == 1 and third["demonstration_tasks_created"] == 0  # test split


def test_a_malformed_file_stores_nothing_and_names_the_line(api_as, researcher_of):
    project = ProjectFactory()
    client = api_as(researcher_of(project))
    content = jsonl([{"prompt": "Fine."}, {"prompt": "Also fine."}]) + b'{"prompt": 3}\n'
    response = upload(client, project, "prompts", "prompts.jsonl", content)
    assert response.status_code == 400
    assert "line 3" in response.json()["detail"]
    assert not Prompt.objects.filter(project=project).exists()
    wrong_type = upload(client, project, "prompts", "prompts.txt", b"hello")
    assert wrong_type.status_code == 400 and "file" in wrong_type.json()["fields"]
    no_format = upload(client, project, "preferences", "p.jsonl", jsonl([{"a": 1}]))
    assert no_format.status_code == 400 and "format" in no_format.json()["fields"]


def test_hh_rlhf_preferences_upload(api_as, researcher_of):
    project = ProjectFactory()
    client = api_as(researcher_of(project))
    response = upload(client, project, "preferences", HH_RLHF.name, HH_RLHF.read_bytes(), "hh-rlhf")
    assert response.status_code == 201, response.content
    report = response.json()
    # the README's figures for this file: 2,312 rows, 2,303 imported, 9 skipped by reason
    assert report["rows_read"] == 2312 and report["added"] == 2303
    assert report["skipped"] == {"diverging_context": 5, "empty_completion": 4}
    assert len(report["skipped_lines"]["diverging_context"]) == 5
    assert Judgment.objects.filter(task__project=project, source="imported").count() == 2303
    again = upload(client, project, "preferences", HH_RLHF.name, HH_RLHF.read_bytes(), "hh-rlhf")
    assert again.json()["added"] == 0 and again.json()["already_there"] == 2303


def test_rankings_round_trip_through_the_export(api_as, researcher_of):
    source = ProjectFactory()
    client = api_as(researcher_of(source))
    rows = [
        {
            "prompt": "Name a colour.",
            "completions": ["Red.", "Blue.", "A car."],
            "ranking": [[1], [0], [2]],
        },
        {"prompt": "Name a fruit.", "completions": ["Apple.", "Stone."], "ranking": [[0, 1]]},
        {"prompt": "Twice.", "completions": ["Same.", "Same."], "ranking": [[0], [1]]},
    ]
    imported = upload(client, source, "preferences", "rankings.jsonl", jsonl(rows), "rankings")
    assert imported.status_code == 201, imported.content
    assert imported.json()["added"] == 2
    assert imported.json()["skipped"] == {"identical_completions": 1}
    judgment = Judgment.objects.get(task__prompt__text="Name a colour.")
    texts = dict(judgment.task.task_completions.values_list("completion_id", "completion__text"))
    assert [[texts[c] for c in group] for group in judgment.ranking] == [
        ["Blue."],
        ["Red."],
        ["A car."],
    ]
    assert judgment.review_status == ReviewStatus.APPROVED
    exported = client.get(f"/api/projects/{source.pk}/export/?format=rankings")
    assert exported.status_code == 200
    assert exported["Content-Type"] == "application/x-ndjson"
    assert f"{source.slug}-rankings.jsonl" in exported["Content-Disposition"]
    lines = [json.loads(line) for line in exported.content.decode().splitlines()]
    assert {line["prompt"] for line in lines} == {"Name a colour.", "Name a fruit."}
    copy = ProjectFactory()
    copy_client = api_as(researcher_of(copy))
    again = upload(copy_client, copy, "preferences", "rankings.jsonl", exported.content, "rankings")
    assert again.json()["added"] == 2  # an export reads back in


def test_exports_in_each_format(api_as, researcher_of):
    project = ProjectFactory()
    client = api_as(researcher_of(project))
    pairs = [{"prompt": f"P{i}", "chosen": "Good.", "rejected": "Bad."} for i in range(3)]
    assert (
        upload(client, project, "preferences", "pairs.jsonl", jsonl(pairs), "pairs").status_code
        == 201
    )
    counts = {}
    for fmt in ("rankings", "pairs", "demonstrations", "prompts"):
        response = client.get(f"/api/projects/{project.pk}/export/?format={fmt}")
        assert response.status_code == 200, fmt
        counts[fmt] = len(response.content.decode().splitlines())
    assert counts == {"rankings": 3, "pairs": 3, "demonstrations": 0, "prompts": 3}
    assert client.get(f"/api/projects/{project.pk}/export/?format=zip").status_code == 400
    labeler = UserFactory(roles=[Role.LABELER])
    membership_add(project=project, user=labeler, role=Role.LABELER)
    assert (
        api_as(labeler).get(f"/api/projects/{project.pk}/export/?format=pairs").status_code == 403
    )


def test_gold_items_become_gold_tasks(api_as, researcher_of):
    project = ProjectFactory()
    client = api_as(researcher_of(project))
    items = [{"prompt": "2 + 2?", "completions": ["4", "5", "22"], "ranking": [[0], [2], [1]]}]
    response = upload(client, project, "gold", "gold.jsonl", jsonl(items))
    assert response.status_code == 201 and response.json()["added"] == 1
    task = Task.objects.get(project=project, is_gold=True)
    texts = dict(task.task_completions.values_list("completion_id", "completion__text"))
    assert [[texts[c] for c in g] for g in task.gold_ranking] == [["4"], ["22"], ["5"]]
    assert task.status == Task.Status.OPEN
    assert upload(client, project, "gold", "gold.jsonl", jsonl(items)).json()["already_there"] == 1


def test_uploads_refuse_labelers_and_other_projects(api_as, researcher_of):
    project, other = ProjectFactory(), ProjectFactory()
    labeler = UserFactory(roles=[Role.LABELER])
    membership_add(project=project, user=labeler, role=Role.LABELER)
    content = jsonl([{"prompt": "Hi?"}])
    for endpoint in ("prompts", "preferences", "gold"):
        assert upload(api_as(labeler), project, endpoint, "a.jsonl", content).status_code == 403
        outsider = api_as(researcher_of(other))
        assert upload(outsider, project, endpoint, "a.jsonl", content).status_code == 404
    assert not Prompt.objects.filter(project=project).exists()


# --- big files: a job with progress -----------------------------------------------------------


def test_a_big_upload_is_a_job_with_progress_and_a_report(
    api_as, researcher_of, monkeypatch, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.ARTIFACT_ROOT = tmp_path
    monkeypatch.setattr(uploads, "INLINE_MAX_BYTES", 1000)
    queued = []
    monkeypatch.setattr("apps.collection.tasks.import_run_task.delay", queued.append)
    project = ProjectFactory()
    client = api_as(researcher_of(project))
    rows = [{"prompt": f"Prompt number {i}?"} for i in range(5000)]
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, project, "prompts", "big.jsonl", jsonl(rows))
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["status"] == "queued" and queued == [job["id"]]
    assert not Prompt.objects.filter(project=project).exists()
    done = import_run(job_id=job["id"])
    assert done.status == ImportJob.Status.SUCCEEDED
    assert import_run(job_id=job["id"]) is None  # run once
    follow = client.get(f"/api/imports/{job['id']}/").json()
    assert follow["status"] == "succeeded" and follow["lines_read"] == 5000
    assert follow["report"]["added"] == 5000
    assert Prompt.objects.filter(project=project).count() == 5000
    assert not list((tmp_path / "uploads").rglob("*.jsonl"))  # the file is gone


def test_a_big_malformed_upload_fails_naming_the_line_and_stores_nothing(
    api_as, researcher_of, monkeypatch, settings, tmp_path
):
    settings.ARTIFACT_ROOT = tmp_path
    monkeypatch.setattr(uploads, "INLINE_MAX_BYTES", 1000)
    monkeypatch.setattr("apps.collection.tasks.import_run_task.delay", lambda job_id: None)
    project = ProjectFactory()
    client = api_as(researcher_of(project))
    content = jsonl([{"prompt": f"P{i}"} for i in range(3000)]) + b"not json\n"
    job = upload(client, project, "prompts", "big.jsonl", content).json()
    failed = import_run(job_id=job["id"])
    assert failed.status == ImportJob.Status.FAILED and failed.error_line == 3001
    assert "line 3001" in client.get(f"/api/imports/{job['id']}/").json()["error"]
    assert not Prompt.objects.filter(project=project).exists()
    other = api_as(researcher_of(ProjectFactory()))
    assert other.get(f"/api/imports/{job['id']}/").status_code == 404


def test_a_hundred_thousand_rows_in_one_job(api_as, researcher_of, monkeypatch, settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path
    monkeypatch.setattr("apps.collection.tasks.import_run_task.delay", lambda job_id: None)
    project = ProjectFactory(task_kinds=["ranking"])
    client = api_as(researcher_of(project))
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as handle:
        for i in range(100_000):
            handle.write(
                json.dumps({"prompt": f"Prompt {i}: what is {i} squared?"}).encode() + b"\n"
            )
    monkeypatch.setattr(uploads, "INLINE_MAX_BYTES", 1000)
    job = upload(client, project, "prompts", "big.jsonl.gz", buffer.getvalue()).json()
    done = import_run(job_id=job["id"])
    assert done.status == ImportJob.Status.SUCCEEDED, done.error
    assert done.report["added"] == 100_000
    assert Prompt.objects.filter(project=project).count() == 100_000
