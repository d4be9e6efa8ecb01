"""Labeler pages through Django's test client: access, routing by kind, blindness, safety."""

import json
import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.collection import services
from apps.collection.models import Assignment, PolicyVersion, Task
from apps.core.roles import Role
from tests.factories import ProjectFactory, UserFactory, make_task

pytestmark = pytest.mark.django_db


def task_data(response) -> dict:
    match = re.search(
        r'<script id="task-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert match, "the page carries its task data"
    return json.loads(match.group(1))


def lease(client, project) -> Assignment:
    response = client.post(f"/projects/{project.pk}/work/")
    assert response.status_code == 302
    assignment_id = int(re.fullmatch(r"/assignments/(\d+)/", response["Location"]).group(1))
    return Assignment.objects.get(pk=assignment_id)


# --- home -----------------------------------------------------------------------------------


def test_home_needs_a_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_home_lists_the_labelers_projects_with_their_progress(client, labeler, project):
    done = make_task(project)
    make_task(project)
    make_task(project)
    assignment = Assignment.objects.create(
        task=done,
        rater=labeler,
        status=Assignment.Status.SUBMITTED,
        expires_at=timezone.now(),
        finished_at=timezone.now(),
    )
    Assignment.objects.create(
        task=make_task(project),
        rater=labeler,
        status=Assignment.Status.SUBMITTED,
        expires_at=timezone.now(),
        finished_at=timezone.now() - timedelta(days=2),
    )
    assert assignment.pk
    client.force_login(labeler)
    page = client.get("/").content.decode()
    assert project.name in page
    assert 'data-stat="done_today">1<' in page
    assert 'data-stat="done_total">2<' in page
    assert 'data-stat="tasks_left">2<' in page
    assert f'action="/projects/{project.pk}/work/"' in page
    assert ">Start</button>" in page


def test_home_offers_to_resume_a_held_task(client, labeler, project):
    make_task(project)
    client.force_login(labeler)
    lease(client, project)
    page = client.get("/").content.decode()
    assert 'data-stat="tasks_left">0<' in page
    assert ">Resume</button>" in page


def test_home_hides_projects_closed_to_the_labeler(client, labeler):
    ProjectFactory(name="Members only", open_to_all_labelers=False)
    client.force_login(labeler)
    assert "Members only" not in client.get("/").content.decode()


@pytest.mark.parametrize(
    ("roles", "shown", "hidden"),
    [
        ([Role.REVIEWER], ["/review/"], ["/research/"]),
        ([Role.RESEARCHER], ["/research/"], ["/review/"]),
        ([Role.REVIEWER, Role.RESEARCHER], ["/review/", "/research/"], []),
    ],
)
def test_home_points_non_labelers_to_their_pages(client, project, roles, shown, hidden):
    client.force_login(UserFactory(roles=roles))
    page = client.get("/").content.decode()
    assert project.name not in page
    for url in shown:
        assert f'href="{url}"' in page
    for url in hidden:
        assert f'href="{url}"' not in page


def test_nav_links_follow_roles(client, project):
    client.force_login(UserFactory(roles=[Role.LABELER, Role.REVIEWER]))
    page = client.get("/").content.decode()
    assert 'href="/review/"' in page
    assert 'href="/research/"' not in page


# --- work loop ------------------------------------------------------------------------------


def test_start_leases_a_task_and_opens_it(client, labeler, project):
    task = make_task(project)
    client.force_login(labeler)
    assignment = lease(client, project)
    assert (assignment.task_id, assignment.rater_id) == (task.pk, labeler.pk)
    assert lease(client, project).pk == assignment.pk, "a held lease comes back"


def test_start_with_nothing_left_goes_home_with_a_message(client, labeler, project):
    client.force_login(labeler)
    response = client.post(f"/projects/{project.pk}/work/", follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert "Nothing left for you" in response.content.decode()


def test_get_on_the_work_url_leases_nothing(client, labeler, project):
    make_task(project)
    client.force_login(labeler)
    response = client.get(f"/projects/{project.pk}/work/")
    assert response.status_code == 200
    assert not Assignment.objects.exists()


def test_work_on_a_closed_project_is_404(client, labeler):
    closed = ProjectFactory(open_to_all_labelers=False)
    make_task(closed)
    client.force_login(labeler)
    assert client.post(f"/projects/{closed.pk}/work/").status_code == 404
    assert not Assignment.objects.exists()


def test_non_labelers_cannot_work(client, project):
    make_task(project)
    client.force_login(UserFactory(roles=[Role.REVIEWER]))
    assert client.post(f"/projects/{project.pk}/work/").status_code == 403


# --- the assignment page --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "marker"),
    [
        (Task.Kind.RANKING, "js/ranking.js"),
        (Task.Kind.DEMONSTRATION, "js/demonstration.js"),
        (Task.Kind.EVALUATION, "js/evaluation.js"),
    ],
)
def test_the_page_follows_the_task_kind(client, labeler, project, kind, marker):
    make_task(project, kind=kind)
    client.force_login(labeler)
    assignment = lease(client, project)
    response = client.get(f"/assignments/{assignment.pk}/")
    assert response.status_code == 200
    assert marker in response.content.decode()
    data = task_data(response)
    assert data["kind"] == kind
    assert [c["id"] for c in data["completions"]] == assignment.display_order


def test_ranking_page_carries_what_the_rater_needs(client, labeler):
    project = ProjectFactory(k=5, likert_enabled=True, rationale_max_length=300)
    make_task(project)
    client.force_login(labeler)
    assignment = lease(client, project)
    data = task_data(client.get(f"/assignments/{assignment.pk}/"))
    assert len(data["completions"]) == 5
    assert data["flags"] == project.flag_set
    assert data["likertEnabled"] is True
    assert data["rationaleMaxLength"] == 300
    assert data["urls"]["submit"] == f"/api/assignments/{assignment.pk}/judgment/"
    assert data["urls"]["skip"] == f"/api/assignments/{assignment.pk}/skip/"
    assert data["urls"]["next"] == f"/projects/{project.pk}/work/"
    assert data["urls"]["login"] == f"/accounts/login/?next=/assignments/{assignment.pk}/"
    assert data["leaseExpiresAt"] == assignment.expires_at.isoformat()


def test_another_raters_assignment_is_404(client, labeler, other_labeler, project):
    make_task(project)
    client.force_login(other_labeler)
    theirs = lease(client, project)
    client.force_login(labeler)
    assert client.get(f"/assignments/{theirs.pk}/").status_code == 404


def test_a_missing_assignment_is_404(client, labeler):
    client.force_login(labeler)
    assert client.get("/assignments/999999/").status_code == 404


def test_an_anonymous_visit_goes_to_login_and_back(client, labeler, project):
    make_task(project)
    client.force_login(labeler)
    assignment = lease(client, project)
    client.logout()
    response = client.get(f"/assignments/{assignment.pk}/")
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/assignments/{assignment.pk}/"


def test_an_answered_assignment_shows_closed(client, labeler, project):
    make_task(project)
    client.force_login(labeler)
    assignment = lease(client, project)
    services.judgment_submit(
        assignment_id=assignment.pk,
        rater=labeler,
        client_key=uuid.uuid4(),
        ranking=[[cid] for cid in assignment.display_order],
    )
    page = client.get(f"/assignments/{assignment.pk}/").content.decode()
    assert "This task is closed" in page
    assert "task-data" not in page


def test_pages_are_blind(client, labeler, other_labeler, project):
    """No model names, no other rater's answer, on the home page or the task page."""
    task = make_task(project, overlap=2)
    policy = PolicyVersion.objects.create(project=project, name="secret-policy-v7")
    for tc in task.task_completions.all():
        tc.completion.policy_version = policy
        tc.completion.save()
    client.force_login(other_labeler)
    theirs = lease(client, project)
    services.judgment_submit(
        assignment_id=theirs.pk,
        rater=other_labeler,
        client_key=uuid.uuid4(),
        ranking=[[cid] for cid in theirs.display_order],
        rationale="OTHER-RATER-RATIONALE",
    )
    client.force_login(labeler)
    mine = lease(client, project)
    assert mine.task_id == task.pk
    for url in ("/", f"/assignments/{mine.pk}/"):
        page = client.get(url).content.decode()
        assert "secret-policy-v7" not in page
        assert "OTHER-RATER-RATIONALE" not in page
        assert other_labeler.username not in page


def test_completion_text_is_data_not_markup(client, labeler, project):
    task = make_task(project)
    completion = task.task_completions.first().completion
    completion.text = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    completion.save()
    task.prompt.text = "<b>bold?</b>"
    task.prompt.save()
    client.force_login(labeler)
    assignment = lease(client, project)
    response = client.get(f"/assignments/{assignment.pk}/")
    page = response.content.decode()
    assert "<script>alert(2)" not in page
    assert "<img src=x" not in page
    assert "&lt;b&gt;bold?&lt;/b&gt;" in page
    assert completion.text in [c["text"] for c in task_data(response)["completions"]]


def test_guidelines_are_rendered_and_sanitised(client, labeler):
    project = ProjectFactory(
        guidelines="# Be kind\n\n<script>alert('x')</script>\n\n[link](javascript:alert(1))"
        '\n\n<img src="x" onerror="alert(3)">'
    )
    make_task(project)
    client.force_login(labeler)
    assignment = lease(client, project)
    for url in (f"/assignments/{assignment.pk}/", f"/projects/{project.pk}/guidelines/"):
        page = client.get(url).content.decode()
        assert "<h1>Be kind</h1>" in page
        assert "alert('x')" not in page
        assert "javascript:" not in page
        assert "onerror" not in page


def test_every_task_page_has_csrf_and_the_lease(client, labeler, project):
    make_task(project)
    client.force_login(labeler)
    assignment = lease(client, project)
    page = client.get(f"/assignments/{assignment.pk}/").content.decode()
    assert 'name="csrf-token"' in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert 'role="timer"' in page


def test_the_home_start_form_is_csrf_protected(labeler, project):
    from django.test import Client

    make_task(project)
    client = Client(enforce_csrf_checks=True)
    client.force_login(labeler)
    assert client.post(f"/projects/{project.pk}/work/").status_code == 403
    assert not Assignment.objects.exists()
