"""Role × endpoint: every API operation and every page, asked by each kind of user about two
projects: A, where each role holder is a member, and B, where nobody is (staff aside).

What each answer must be (SECURITY.md):
- anonymous: 401 from the API, the login page from pages;
- a user who holds the operation's role nowhere: 403;
- a holder of the role, about B: 404, as if B's objects did not exist;
- a holder of the role about A, and staff about either: let through (2xx, or a 400/409 about
  the request or the data, never 401/403/404).
Assignments belong to their rater: anyone else, staff included, gets 404.
The operation lists are checked against the OpenAPI schema and the URL patterns, so a new
endpoint without a row here fails this test.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from apps.accounts.tokens import api_token_create
from apps.collection.leasing import assignment_next
from apps.collection.models import ImportJob, PolicyVersion
from apps.collection.services import judgment_submit, membership_add
from apps.core.roles import Role
from apps.loop.models import DatasetSnapshot, TrainingRound
from apps.loop.services import round_start
from apps.quality.services import quality_snapshot_refresh
from tests.factories import ProjectFactory, UserFactory, make_task

pytestmark = pytest.mark.django_db

LABELER, REVIEWER, RESEARCHER = Role.LABELER, Role.REVIEWER, Role.RESEARCHER
OWNER = "owner"  # the assignment's rater only (labeler role)
ANY = "any"  # any logged-in user
REVIEW_INDEX, RESEARCH_INDEX = (REVIEWER, "index"), (RESEARCHER, "index")  # no project in the URL

# (method, path, role or OWNER/ANY, body)
API = [
    ("GET", "/api/projects/", ANY, None),
    ("POST", "/api/projects/", (RESEARCHER, "index"), "project"),
    ("GET", "/api/projects/{project_id}/", RESEARCHER, None),
    ("PATCH", "/api/projects/{project_id}/", RESEARCHER, {"description": "matrix"}),
    ("POST", "/api/projects/{project_id}/prompts/", RESEARCHER, {"file": "not a file"}),
    ("POST", "/api/projects/{project_id}/preferences/", RESEARCHER, {"file": "not a file"}),
    ("POST", "/api/projects/{project_id}/gold/", RESEARCHER, {"file": "not a file"}),
    ("GET", "/api/projects/{project_id}/export/?format=pairs", RESEARCHER, None),
    ("GET", "/api/imports/{import_id}/", RESEARCHER, None),
    ("POST", "/api/auth/logout/", ANY, None),
    ("POST", "/api/projects/{project_id}/assignments/next/", LABELER, None),
    ("GET", "/api/assignments/{assignment_id}/", OWNER, None),
    ("POST", "/api/assignments/{assignment_id}/judgment/", OWNER, "ranking"),
    ("POST", "/api/assignments/{assignment_id}/demonstration/", OWNER, "demonstration"),
    ("POST", "/api/assignments/{assignment_id}/skip/", OWNER, {"reason": "unclear"}),
    ("GET", "/api/projects/{project_id}/quality/", REVIEWER, None),
    ("POST", "/api/projects/{project_id}/quality/refresh/", REVIEWER, None),
    ("GET", "/api/projects/{project_id}/raters/", REVIEWER, None),
    (
        "POST",
        "/api/projects/{project_id}/judgments/review/",
        REVIEWER,
        "bulk",
    ),
    (
        "POST",
        "/api/projects/{project_id}/judgments/approve-reliable/",
        REVIEWER,
        {"min_agreement": 0.5},
    ),
    ("GET", "/api/judgments/{judgment_id}/", REVIEWER, None),
    ("POST", "/api/judgments/{judgment_id}/review/", REVIEWER, {"decision": "approve"}),
    ("POST", "/api/raters/{user_id}/suspend/", REVIEWER, {"reason": "matrix"}),
    ("POST", "/api/raters/{user_id}/reinstate/", REVIEWER, {"reason": "matrix"}),
    ("GET", "/api/tasks/{task_id}/consensus/", REVIEWER, None),
    ("GET", "/api/projects/{project_id}/overlap/", REVIEWER, None),
    ("PATCH", "/api/projects/{project_id}/overlap/", RESEARCHER, {"confidence_target": 0.9}),
    ("GET", "/api/projects/{project_id}/rounds/", RESEARCHER, None),
    ("POST", "/api/projects/{project_id}/rounds/", RESEARCHER, {"preset": "tiny"}),
    ("GET", "/api/projects/{project_id}/policies/", RESEARCHER, None),
    ("GET", "/api/rounds/{round_id}/", RESEARCHER, None),
    ("POST", "/api/rounds/{round_id}/cancel/", RESEARCHER, None),
    ("POST", "/api/rounds/{round_id}/retry/", RESEARCHER, None),
    ("POST", "/api/rounds/{round_id}/move-on/", RESEARCHER, None),
    ("GET", "/api/snapshots/{snapshot_id}/", RESEARCHER, None),
    ("GET", "/api/snapshots/{snapshot_id}/files/{name}", RESEARCHER, None),
    ("GET", "/api/projects/{project_id}/members/", RESEARCHER, None),
    ("POST", "/api/projects/{project_id}/members/", RESEARCHER, "member"),
    ("DELETE", "/api/projects/{project_id}/members/?username=newcomer", RESEARCHER, None),
]
PUBLIC_API = {("POST", "/api/auth/token/")}  # tests/accounts/test_login.py

PAGES = [
    ("GET", "/", ANY, None),
    ("GET", "/projects/{project_id}/work/", LABELER, None),
    ("POST", "/projects/{project_id}/work/", LABELER, {}),
    ("GET", "/projects/{project_id}/guidelines/", LABELER, None),
    ("GET", "/assignments/{assignment_id}/", OWNER, None),
    ("GET", "/review/", REVIEW_INDEX, None),
    ("GET", "/review/projects/{project_id}/", REVIEWER, None),
    ("GET", "/review/projects/{project_id}/raters/", REVIEWER, None),
    ("GET", "/review/projects/{project_id}/raters/{user_id}/", REVIEWER, None),
    ("GET", "/review/projects/{project_id}/queue/", REVIEWER, None),
    ("POST", "/review/projects/{project_id}/queue/bulk/", REVIEWER, "bulk"),
    ("POST", "/review/projects/{project_id}/queue/approve-reliable/", REVIEWER, {}),
    ("POST", "/review/projects/{project_id}/refresh/", REVIEWER, {}),
    ("GET", "/review/judgments/{judgment_id}/", REVIEWER, None),
    ("POST", "/review/judgments/{judgment_id}/review/", REVIEWER, {"decision": "approve"}),
    ("POST", "/review/raters/{user_id}/suspend/", REVIEWER, {"reason": "matrix"}),
    ("POST", "/review/raters/{user_id}/reinstate/", REVIEWER, {"reason": "matrix"}),
    ("GET", "/research/", RESEARCH_INDEX, None),
    ("GET", "/research/projects/new/", RESEARCH_INDEX, None),
    ("POST", "/research/projects/new/", RESEARCH_INDEX, {"action": "preview"}),
    ("GET", "/research/projects/{project_id}/settings/", RESEARCHER, None),
    ("POST", "/research/projects/{project_id}/settings/", RESEARCHER, {"action": "preview"}),
    ("GET", "/research/projects/{project_id}/data/", RESEARCHER, None),
    ("POST", "/research/projects/{project_id}/data/upload/", RESEARCHER, {}),
    ("GET", "/research/projects/{project_id}/members/", RESEARCHER, None),
    ("POST", "/research/projects/{project_id}/members/", RESEARCHER, "member"),
    ("POST", "/research/projects/{project_id}/rounds/start/", RESEARCHER, {"preset": "tiny"}),
    ("GET", "/research/projects/{project_id}/lineage/", RESEARCHER, None),
    ("GET", "/research/projects/{project_id}/collection/", RESEARCHER, None),
    ("POST", "/research/projects/{project_id}/collection/", RESEARCHER, {"overlap": "2"}),
    ("GET", "/research/rounds/{round_id}/", RESEARCHER, None),
    ("POST", "/research/rounds/{round_id}/cancel/", RESEARCHER, {}),
    ("POST", "/research/rounds/{round_id}/retry/", RESEARCHER, {}),
    ("POST", "/research/rounds/{round_id}/move-on/", RESEARCHER, {}),
    ("GET", "/research/snapshots/{snapshot_id}/", RESEARCHER, None),
    ("GET", "/research/snapshots/{snapshot_id}/files/{name}", RESEARCHER, None),
]

USERS = ["anonymous", "nobody", "labeler", "reviewer", "researcher", "staff"]


@dataclass
class Objects:
    """One project's ids, by the names the paths use."""

    ids: dict

    def path(self, template: str) -> str:
        return template.format(**self.ids)


@pytest.fixture
def world(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path
    users = {"nobody": UserFactory(roles=[]), "staff": UserFactory(roles=[], is_staff=True)}
    projects = {}
    for name in ("A", "B"):
        project = ProjectFactory(name=name, k=2, overlap=2, open_to_all_labelers=False)
        rater = UserFactory(roles=[Role.LABELER])
        membership_add(project=project, user=rater, role=Role.LABELER)
        for _ in range(2):
            make_task(project)
        done = assignment_next(project=project, rater=rater)
        judgment, _ = judgment_submit(
            assignment_id=done.pk,
            rater=rater,
            client_key=uuid.uuid4(),
            ranking=[[cid] for cid in done.display_order],
        )
        if name == "A":  # the "labeler" user is A's rater and holds a live lease there
            users["labeler"] = rater
        lease = assignment_next(project=project, rater=rater)
        quality_snapshot_refresh(project_id=project.pk)
        base = PolicyVersion.objects.create(project=project, name="base", artifact_uri="/m")
        folder = tmp_path / f"snapshot-{name}"
        folder.mkdir()
        (folder / "manifest.json").write_text(json.dumps({"files": {}}))
        snapshot = DatasetSnapshot.objects.create(
            project=project,
            uid=uuid.uuid4().hex,
            path=folder.name,
            manifest={"files": {}},
            manifest_sha256="0" * 64,
        )
        training_round = round_start(
            project=project, user=users["staff"], start_policy=base, preset="tiny", config={}
        )
        TrainingRound.objects.filter(pk=training_round.pk).update(snapshot=snapshot)
        projects[name] = Objects(
            {
                "project_id": project.pk,
                "assignment_id": lease.pk,
                "judgment_id": judgment.pk,
                "task_id": judgment.task_id,
                "user_id": rater.pk,
                "round_id": training_round.pk,
                "snapshot_id": snapshot.pk,
                "import_id": ImportJob.objects.create(
                    project=project, kind="prompts", format="prompts", stored_path="-"
                ).pk,
                "name": "manifest.json",
                "completions": lease.display_order,
            }
        )
    a = ProjectFactory._meta.model.objects.get(name="A")
    for role in (Role.REVIEWER, Role.RESEARCHER):
        users[role.value] = UserFactory(roles=[role])
        membership_add(project=a, user=users[role.value], role=role)
    UserFactory(username="newcomer", roles=[])
    return users, projects


def body_for(kind, objects: Objects):
    if kind == "ranking":
        return {
            "ranking": [[cid] for cid in objects.ids["completions"]],
            "client_key": str(uuid.uuid4()),
        }
    if kind == "demonstration":
        return {"text": "An answer.", "client_key": str(uuid.uuid4())}
    if kind == "bulk":
        return {"judgment_ids": [objects.ids["judgment_id"]], "decision": "approve"}
    if kind == "member":
        return {"username": "newcomer", "role": "labeler"}
    if kind == "project":
        return {"name": f"Matrix {uuid.uuid4().hex[:8]}"}
    return kind


def expected(user: str, role, project: str) -> str:
    """'through', 401, 403 or 404."""
    if user == "anonymous":
        return "login"
    if role == ANY:
        return "through"
    if isinstance(role, tuple):  # an index page: for any holder of the role
        return "through" if user in (role[0].value, "staff") else "403"
    if role == OWNER:
        if user == "labeler":
            return "through" if project == "A" else "404"
        return "404" if user in ("staff",) else "403"
    if user == "staff":
        return "through"
    if user != role.value:
        return "403"
    return "through" if project == "A" else "404"


def api_client(user, users) -> APIClient:
    client = APIClient()
    if user != "anonymous":
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=users[user])}")
    return client


def check(status: int, want: str, *, page: bool, location: str = "") -> bool:
    if want == "login":
        return status == 302 and "/accounts/login/" in location if page else status == 401
    if want == "through":
        return status not in (401, 403, 404)
    return status == int(want)


@pytest.mark.parametrize(("method", "template", "role", "body"), API, ids=lambda v: str(v))
def test_every_api_operation_answers_each_role_as_the_table_says(
    world, method, template, role, body
):
    users, projects = world
    wrong = []
    for user in USERS:
        for name in ("A", "B"):
            want = expected(user, role, name)
            client = api_client(user, users)
            objects = projects[name]
            data = body_for(body, objects)
            response = getattr(client, method.lower())(objects.path(template), data, format="json")
            if not check(response.status_code, want, page=False):
                wrong.append(f"{user} on {name}: {response.status_code}, wanted {want}")
    assert not wrong, wrong


@pytest.mark.parametrize(("method", "template", "role", "body"), PAGES, ids=lambda v: str(v))
def test_every_page_answers_each_role_as_the_table_says(
    world, client, method, template, role, body
):
    users, projects = world
    wrong = []
    for user in USERS:
        for name in ("A", "B"):
            want = expected(user, role, name)
            client.logout()
            if user != "anonymous":
                client.force_login(users[user])
            objects = projects[name]
            data = body_for(body, objects)
            url = objects.path(template)
            response = client.post(url, data) if method == "POST" else client.get(url)
            location = response.get("Location", "")
            if not check(response.status_code, want, page=True, location=location):
                wrong.append(f"{user} on {name}: {response.status_code}, wanted {want}")
    assert not wrong, wrong


def test_lists_show_only_the_users_projects(world):
    users, projects = world
    for user, names in {
        "labeler": ["A"],
        "reviewer": ["A"],
        "researcher": ["A"],
        "nobody": [],
        "staff": ["A", "B"],
    }.items():
        listed = api_client(user, users).get("/api/projects/").json()
        assert [p["name"] for p in listed] == names, user
    client = APIClient()
    for user, page in [("reviewer", "/review/"), ("researcher", "/research/")]:
        client.force_login(users[user])
        html = client.get(page).content.decode()
        assert f"/projects/{projects['A'].ids['project_id']}/" in html
        assert f"/projects/{projects['B'].ids['project_id']}/" not in html


def test_the_tables_cover_every_operation_and_page():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    covered = {(m, t.split("?")[0]) for m, t, _, _ in API} | PUBLIC_API
    assert operations == covered

    def routes(resolver, prefix=""):
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                yield from routes(entry, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield "/" + prefix + str(entry.pattern)

    pages = {
        route.replace("<id:", "{").replace("<str:", "{").replace(">", "}")
        for route in routes(get_resolver())
        if not route.startswith(("/api/", "/admin/", "/accounts/", "/healthz"))
    }
    assert pages == {template for _, template, _, _ in PAGES}
