"""The rater REST API: every endpoint, every refusal, and nothing stored on bad input."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.collection.models import Assignment, Demonstration, Judgment, Task
from apps.collection.services import membership_add
from apps.core.roles import Role
from tests.factories import ProjectFactory, UserFactory, make_task

pytestmark = pytest.mark.django_db


def lease(api, project) -> dict:
    response = api.post(f"/api/projects/{project.pk}/assignments/next/")
    assert response.status_code == 200, response.content
    return response.json()


def best_first(payload) -> list[list[int]]:
    return [[c["id"]] for c in payload["completions"]]


# --- auth ---------------------------------------------------------------------------------


def test_token_endpoint_gives_a_working_token(labeler):
    response = APIClient().post(
        "/api/auth/token/", {"username": labeler.username, "password": "pw-secret-123"}
    )
    assert response.status_code == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/projects/").status_code == 200


def test_token_endpoint_refuses_a_wrong_password(labeler):
    response = APIClient().post("/api/auth/token/", {"username": labeler.username, "password": "x"})
    assert response.status_code == 400


def test_session_auth_works_for_the_api(client, labeler, project):
    client.force_login(labeler)
    assert [p["id"] for p in client.get("/api/projects/").json()] == [project.pk]


def test_anonymous_is_refused():
    assert APIClient().get("/api/projects/").status_code in (401, 403)


# --- projects -----------------------------------------------------------------------------


def test_projects_lists_open_and_joined_projects_only(api_as, labeler):
    open_project = ProjectFactory(name="A open")
    closed = ProjectFactory(name="B closed", open_to_all_labelers=False)
    joined = ProjectFactory(name="C joined", open_to_all_labelers=False)
    membership_add(project=joined, user=labeler, role=Role.LABELER)
    ProjectFactory(name="D inactive", is_active=False)
    body = api_as(labeler).get("/api/projects/").json()
    assert [(p["name"], p["roles"]) for p in body] == [
        (open_project.name, ["labeler"]),
        (joined.name, ["labeler"]),
    ]
    assert closed.name not in [p["name"] for p in body]


def test_next_on_a_closed_project_is_404(api_as, labeler):
    closed = ProjectFactory(open_to_all_labelers=False)
    make_task(closed)
    assert api_as(labeler).post(f"/api/projects/{closed.pk}/assignments/next/").status_code == 404


def test_next_needs_the_labeler_role(api_as, project, reviewer):
    make_task(project)
    assert api_as(reviewer).post(f"/api/projects/{project.pk}/assignments/next/").status_code == 403
    assert not Assignment.objects.exists()


# --- next ---------------------------------------------------------------------------------


def test_next_returns_the_contract_shape(api_as, project, labeler):
    task = make_task(project, k=4)
    payload = lease(api_as(labeler), project)
    assert set(payload) >= {
        "assignment_id",
        "task_id",
        "kind",
        "prompt",
        "completions",
        "lease_expires_at",
    }
    assert payload["task_id"] == task.pk and payload["kind"] == "ranking"
    assert payload["prompt"] == {"id": task.prompt_id, "text": task.prompt.text}
    stored = Assignment.objects.get(pk=payload["assignment_id"])
    assert [c["id"] for c in payload["completions"]] == stored.display_order
    assert "is_gold" not in payload and "policy_version" not in str(payload)


def test_next_with_nothing_left_is_204(api_as, project, labeler):
    assert api_as(labeler).post(f"/api/projects/{project.pk}/assignments/next/").status_code == 204


def test_assignment_detail_is_private(api_as, project, labeler, other_labeler):
    make_task(project)
    payload = lease(api_as(labeler), project)
    url = f"/api/assignments/{payload['assignment_id']}/"
    assert api_as(labeler).get(url).json()["assignment_id"] == payload["assignment_id"]
    assert api_as(other_labeler).get(url).status_code == 404
    assert api_as(labeler).get("/api/assignments/999999/").status_code == 404


# --- judgment -----------------------------------------------------------------------------


def test_submit_stores_exactly_what_was_sent(api_as, project, labeler, client_key):
    make_task(project, k=4)
    api = api_as(labeler)
    payload = lease(api, project)
    ids = [c["id"] for c in payload["completions"]]
    body = {
        "ranking": [[ids[2]], [ids[0], ids[3]], [ids[1]]],
        "likert": {str(ids[2]): 7, str(ids[1]): 2},
        "flags": {str(ids[1]): ["hallucination", "harmful_advice"]},
        "rationale": "Third is accurate; the second invents a date.",
        "time_spent_ms": 41000,
        "client_key": client_key,
    }
    response = api.post(
        f"/api/assignments/{payload['assignment_id']}/judgment/", body, format="json"
    )
    assert response.status_code == 201, response.content
    judgment = Judgment.objects.get(pk=response.json()["judgment_id"])
    assert judgment.ranking == [[ids[2]], [ids[0], ids[3]], [ids[1]]]
    assert judgment.likert == {str(ids[2]): 7, str(ids[1]): 2}
    assert judgment.flags == {str(ids[1]): ["hallucination", "harmful_advice"]}
    assert judgment.rationale == body["rationale"]
    assert judgment.time_spent_ms == 41000
    assert judgment.display_order == ids
    assert judgment.rater == labeler and str(judgment.client_key) == client_key
    assert judgment.guidelines_version == project.guidelines_version
    assert Assignment.objects.get(pk=payload["assignment_id"]).status == "submitted"


def test_the_next_payload_is_what_the_documented_serializer_gives(project, labeler):
    from apps.collection.api import AssignmentOutputSerializer, assignment_payload
    from apps.collection.leasing import assignment_next
    from apps.collection.selectors import assignment_view

    make_task(project)
    view = assignment_view(assignment=assignment_next(project=project, rater=labeler))
    assert assignment_payload(view) == AssignmentOutputSerializer(view).data
    assert assignment_payload(view)["lease_expires_at"].endswith("Z")


def test_the_same_client_key_twice_gives_one_row_and_the_same_id(
    api_as, project, labeler, client_key
):
    make_task(project)
    api = api_as(labeler)
    payload = lease(api, project)
    url = f"/api/assignments/{payload['assignment_id']}/judgment/"
    body = {"ranking": best_first(payload), "client_key": client_key}
    first = api.post(url, body, format="json")
    second = api.post(url, body, format="json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert Judgment.objects.count() == 1


def test_a_retry_is_replayed_even_after_the_project_changed_its_rules(
    api_as, project, labeler, client_key
):
    """The answer was valid when stored; its retry must not turn into a 400 later."""
    make_task(project)
    api = api_as(labeler)
    payload = lease(api, project)
    first_id = payload["completions"][0]["id"]
    url = f"/api/assignments/{payload['assignment_id']}/judgment/"
    body = {"ranking": best_first(payload), "likert": {str(first_id): 6}, "client_key": client_key}
    first = api.post(url, body, format="json")
    project.likert_enabled = False
    project.save()
    retry = api.post(url, body, format="json")
    assert (first.status_code, retry.status_code) == (201, 200)
    assert retry.json() == first.json()
    assert Judgment.objects.count() == 1
    # A new key with the same, now invalid, body is refused and stores nothing.
    refused = api.post(url, {**body, "client_key": str(uuid.uuid4())}, format="json")
    assert refused.status_code == 400 and "likert" in refused.json()["fields"]
    assert Judgment.objects.count() == 1


def test_a_second_answer_with_a_new_key_is_409(api_as, project, labeler):
    make_task(project)
    api = api_as(labeler)
    payload = lease(api, project)
    url = f"/api/assignments/{payload['assignment_id']}/judgment/"
    assert (
        api.post(
            url, {"ranking": best_first(payload), "client_key": str(uuid.uuid4())}, format="json"
        ).status_code
        == 201
    )
    again = api.post(
        url, {"ranking": best_first(payload), "client_key": str(uuid.uuid4())}, format="json"
    )
    assert again.status_code == 409
    assert Judgment.objects.count() == 1


def test_a_client_key_reused_on_another_assignment_is_400(api_as, project, labeler, client_key):
    make_task(project)
    make_task(project)
    api = api_as(labeler)
    first = lease(api, project)
    api.post(
        f"/api/assignments/{first['assignment_id']}/judgment/",
        {"ranking": best_first(first), "client_key": client_key},
        format="json",
    )
    second = lease(api, project)
    response = api.post(
        f"/api/assignments/{second['assignment_id']}/judgment/",
        {"ranking": best_first(second), "client_key": client_key},
        format="json",
    )
    assert response.status_code == 400
    assert "client_key" in response.json()["fields"]
    assert Judgment.objects.count() == 1


def _bad_bodies(ids, key):
    a, b, c, d = ids
    return {
        "missing ranking": ({"client_key": key}, "ranking"),
        "ranking not a list": ({"ranking": "a>b", "client_key": key}, "ranking"),
        "empty ranking": ({"ranking": [], "client_key": key}, "ranking"),
        "empty group": ({"ranking": [[a, b], [], [c, d]], "client_key": key}, "ranking"),
        "completion missing": ({"ranking": [[a], [b], [c]], "client_key": key}, "ranking"),
        "completion twice": ({"ranking": [[a], [b, a], [c], [d]], "client_key": key}, "ranking"),
        "foreign completion": (
            {"ranking": [[a], [b], [c], [d], [999999]], "client_key": key},
            "ranking",
        ),
        "not an id": ({"ranking": [[a], [b], [c], ["x"]], "client_key": key}, "ranking"),
        "likert 0": (
            {"ranking": [[a], [b], [c], [d]], "likert": {str(a): 0}, "client_key": key},
            "likert",
        ),
        "likert 8": (
            {"ranking": [[a], [b], [c], [d]], "likert": {str(a): 8}, "client_key": key},
            "likert",
        ),
        "likert text": (
            {"ranking": [[a], [b], [c], [d]], "likert": {str(a): "good"}, "client_key": key},
            "likert",
        ),
        "likert foreign": (
            {"ranking": [[a], [b], [c], [d]], "likert": {"999999": 3}, "client_key": key},
            "likert",
        ),
        "unknown flag": (
            {"ranking": [[a], [b], [c], [d]], "flags": {str(a): ["rude"]}, "client_key": key},
            "flags",
        ),
        "flags not a list": (
            {
                "ranking": [[a], [b], [c], [d]],
                "flags": {str(a): "hallucination"},
                "client_key": key,
            },
            "flags",
        ),
        "rationale too long": (
            {"ranking": [[a], [b], [c], [d]], "rationale": "x" * 2001, "client_key": key},
            "rationale",
        ),
        "negative time": (
            {"ranking": [[a], [b], [c], [d]], "time_spent_ms": -5, "client_key": key},
            "time_spent_ms",
        ),
        "no client key": ({"ranking": [[a], [b], [c], [d]]}, "client_key"),
        "bad client key": ({"ranking": [[a], [b], [c], [d]], "client_key": "123"}, "client_key"),
        "both_bad on ranking": (
            {"ranking": [[a], [b], [c], [d]], "both_bad": True, "client_key": key},
            "both_bad",
        ),
    }


@pytest.mark.parametrize("case", list(_bad_bodies([1, 2, 3, 4], "k")))
def test_malformed_judgments_are_400_with_field_messages_and_store_nothing(
    api_as, project, labeler, case
):
    make_task(project, k=4)
    api = api_as(labeler)
    payload = lease(api, project)
    ids = [c["id"] for c in payload["completions"]]
    body, field = _bad_bodies(ids, str(uuid.uuid4()))[case]
    response = api.post(
        f"/api/assignments/{payload['assignment_id']}/judgment/", body, format="json"
    )
    assert response.status_code == 400, response.content
    data = response.json()
    assert field in data["fields"] and data["fields"][field], data
    assert Judgment.objects.count() == 0
    assert Assignment.objects.get(pk=payload["assignment_id"]).status == "leased"


def test_likert_is_refused_when_the_project_disables_it(api_as, labeler, client_key):
    project = ProjectFactory(likert_enabled=False)
    make_task(project, k=2)
    api = api_as(labeler)
    payload = lease(api, project)
    ids = [c["id"] for c in payload["completions"]]
    body = {"ranking": [[ids[0]], [ids[1]]], "likert": {str(ids[0]): 5}, "client_key": client_key}
    response = api.post(
        f"/api/assignments/{payload['assignment_id']}/judgment/", body, format="json"
    )
    assert response.status_code == 400 and "likert" in response.json()["fields"]


def test_flags_follow_the_project_flag_set(api_as, labeler, client_key):
    project = ProjectFactory(flag_set=[{"key": "off_topic", "label": "Off topic"}])
    make_task(project, k=2)
    api = api_as(labeler)
    payload = lease(api, project)
    ids = [c["id"] for c in payload["completions"]]
    url = f"/api/assignments/{payload['assignment_id']}/judgment/"
    refused = api.post(
        url,
        {
            "ranking": [[ids[0]], [ids[1]]],
            "flags": {str(ids[0]): ["hallucination"]},
            "client_key": client_key,
        },
        format="json",
    )
    assert refused.status_code == 400
    accepted = api.post(
        url,
        {
            "ranking": [[ids[0]], [ids[1]]],
            "flags": {str(ids[0]): ["off_topic"]},
            "client_key": client_key,
        },
        format="json",
    )
    assert accepted.status_code == 201
    assert Judgment.objects.get().flags == {str(ids[0]): ["off_topic"]}


def test_another_raters_assignment_is_404_and_stores_nothing(
    api_as, project, labeler, other_labeler, client_key
):
    make_task(project)
    payload = lease(api_as(labeler), project)
    response = api_as(other_labeler).post(
        f"/api/assignments/{payload['assignment_id']}/judgment/",
        {"ranking": best_first(payload), "client_key": client_key},
        format="json",
    )
    assert response.status_code == 404
    assert Judgment.objects.count() == 0


def test_expired_lease_is_accepted_while_the_task_has_room(api_as, project, labeler, client_key):
    make_task(project, overlap=2)
    payload = lease(api_as(labeler), project)
    Assignment.objects.filter(pk=payload["assignment_id"]).update(
        expires_at=timezone.now() - timedelta(minutes=5)
    )
    response = api_as(labeler).post(
        f"/api/assignments/{payload['assignment_id']}/judgment/",
        {"ranking": best_first(payload), "client_key": client_key},
        format="json",
    )
    assert response.status_code == 201


def test_expired_lease_on_a_filled_task_is_409(api_as, project, labeler, client_key):
    task = make_task(project, overlap=1)
    payload = lease(api_as(labeler), project)
    Assignment.objects.filter(pk=payload["assignment_id"]).update(
        expires_at=timezone.now() - timedelta(minutes=5)
    )
    other = UserFactory(roles=[Role.LABELER])
    taken = lease(api_as(other), project)
    assert taken["task_id"] == task.pk
    response = api_as(labeler).post(
        f"/api/assignments/{payload['assignment_id']}/judgment/",
        {"ranking": best_first(payload), "client_key": client_key},
        format="json",
    )
    assert response.status_code == 409
    assert "expired" in response.json()["detail"]
    assert Judgment.objects.count() == 0


def test_evaluation_task_takes_a_tie_and_both_bad(api_as, project, labeler, client_key):
    make_task(project, kind=Task.Kind.EVALUATION)
    api = api_as(labeler)
    payload = lease(api, project)
    assert payload["kind"] == "evaluation" and len(payload["completions"]) == 2
    ids = [c["id"] for c in payload["completions"]]
    response = api.post(
        f"/api/assignments/{payload['assignment_id']}/judgment/",
        {"ranking": [ids], "both_bad": True, "client_key": client_key},
        format="json",
    )
    assert response.status_code == 201
    judgment = Judgment.objects.get()
    assert judgment.both_bad and judgment.ranking == [ids]


# --- demonstration and skip ---------------------------------------------------------------


def test_demonstration_is_stored_once(api_as, project, labeler, client_key):
    task = make_task(project, kind=Task.Kind.DEMONSTRATION)
    api = api_as(labeler)
    payload = lease(api, project)
    assert payload["kind"] == "demonstration" and payload["completions"] == []
    url = f"/api/assignments/{payload['assignment_id']}/demonstration/"
    first = api.post(
        url, {"text": "  The ideal answer.  ", "client_key": client_key}, format="json"
    )
    second = api.post(
        url, {"text": "  The ideal answer.  ", "client_key": client_key}, format="json"
    )
    assert (first.status_code, second.status_code) == (201, 200)
    demo = Demonstration.objects.get()
    assert demo.text == "The ideal answer." and demo.prompt_id == task.prompt_id
    assert first.json() == {"demonstration_id": demo.pk}


@pytest.mark.parametrize("text", ["", "   ", "x" * 20001])
def test_bad_demonstrations_are_400(api_as, project, labeler, client_key, text):
    make_task(project, kind=Task.Kind.DEMONSTRATION)
    api = api_as(labeler)
    payload = lease(api, project)
    response = api.post(
        f"/api/assignments/{payload['assignment_id']}/demonstration/",
        {"text": text, "client_key": client_key},
        format="json",
    )
    assert response.status_code == 400 and "text" in response.json()["fields"]
    assert Demonstration.objects.count() == 0


def test_judgment_on_a_demonstration_task_is_400(api_as, project, labeler, client_key):
    make_task(project, kind=Task.Kind.DEMONSTRATION)
    api = api_as(labeler)
    payload = lease(api, project)
    response = api.post(
        f"/api/assignments/{payload['assignment_id']}/judgment/",
        {"ranking": [[1]], "client_key": client_key},
        format="json",
    )
    assert response.status_code == 400
    assert Judgment.objects.count() == 0


def test_skip_needs_a_reason_and_is_idempotent(api_as, project, labeler):
    make_task(project)
    api = api_as(labeler)
    payload = lease(api, project)
    url = f"/api/assignments/{payload['assignment_id']}/skip/"
    assert api.post(url, {"reason": ""}, format="json").status_code == 400
    assert Assignment.objects.get(pk=payload["assignment_id"]).status == "leased"
    assert (
        api.post(url, {"reason": "I cannot judge code"}, format="json").json()["status"]
        == "skipped"
    )
    assert api.post(url, {"reason": "I cannot judge code"}, format="json").status_code == 200
    assert (
        api.post(
            f"/api/assignments/{payload['assignment_id']}/judgment/",
            {"ranking": best_first(payload), "client_key": str(uuid.uuid4())},
            format="json",
        ).status_code
        == 409
    )


def test_skip_of_another_raters_assignment_is_404(api_as, project, labeler, other_labeler):
    make_task(project)
    payload = lease(api_as(labeler), project)
    response = api_as(other_labeler).post(
        f"/api/assignments/{payload['assignment_id']}/skip/", {"reason": "x"}, format="json"
    )
    assert response.status_code == 404
    assert Assignment.objects.get(pk=payload["assignment_id"]).status == "leased"


# --- schema, docs, health -----------------------------------------------------------------


def test_openapi_schema_lists_the_rater_endpoints(api_as, labeler):
    response = api_as(labeler).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/projects/",
        "/api/projects/{project_id}/assignments/next/",
        "/api/assignments/{assignment_id}/judgment/",
        "/api/assignments/{assignment_id}/demonstration/",
        "/api/assignments/{assignment_id}/skip/",
    ):
        assert path in paths


def test_api_docs_page_serves_without_a_cdn(client, labeler):
    client.force_login(labeler)
    html = client.get("/api/docs/").content.decode()
    assert "swagger" in html.lower() and "cdn.jsdelivr" not in html


def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_healthz_is_503_when_the_broker_is_down(client, settings):
    from annotation_site.celery import app

    old = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = old
    assert response.status_code == 503
    assert response.json()["database"] == "ok" and response.json()["broker"] != "ok"


def test_openapi_schema_builds_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert "JudgmentSubmitInput" in (tmp_path / "schema.yml").read_text()
