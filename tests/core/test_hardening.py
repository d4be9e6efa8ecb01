"""Every input issue 13 found making a 500, answered as a 4xx that changes nothing."""

from __future__ import annotations

import io
import logging
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from apps.collection.leasing import assignment_next
from apps.collection.models import Judgment
from apps.collection.services import membership_add
from apps.core.ids import IdConverter
from apps.core.roles import Role
from tests.factories import UserFactory, make_task

pytestmark = pytest.mark.django_db

HUGE = "9" * 23  # beyond a bigint
DIGITS_5000 = "7" * 5000


@pytest.fixture
def lease(project, labeler):
    make_task(project)
    return assignment_next(project=project, rater=labeler)


def submit(api_as, labeler, lease, **body):
    body.setdefault("client_key", str(uuid.uuid4()))
    return api_as(labeler).post(f"/api/assignments/{lease.pk}/judgment/", body, format="json")


def assert_refused(response, status=400, field=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) >= {"detail", "code"}
    if field:
        assert field in body["fields"]


@pytest.mark.parametrize("bad", ["²", DIGITS_5000, "١٢", "-3", 2**70, True])
def test_a_ranking_with_a_non_id_is_400(api_as, labeler, lease, bad):
    ranking = [[bad], *[[cid] for cid in lease.display_order[1:]]]
    assert_refused(submit(api_as, labeler, lease, ranking=ranking), field="ranking")
    assert not Judgment.objects.exists()


def test_a_likert_key_that_is_no_id_is_400(api_as, labeler, lease):
    ranking = [[cid] for cid in lease.display_order]
    response = submit(api_as, labeler, lease, ranking=ranking, likert={"²": 3})
    assert_refused(response, field="likert")
    assert not Judgment.objects.exists()


def test_deeply_nested_json_is_400_even_unauthenticated(client):
    response = client.post("/api/auth/token/", "[" * 100_000, content_type="application/json")
    assert_refused(response)
    assert "JSON" in response.json()["detail"]


def test_deeply_nested_json_is_400_on_the_raters_path(api_as, labeler, lease):
    response = api_as(labeler).post(
        f"/api/assignments/{lease.pk}/judgment/", "[" * 100_000, content_type="application/json"
    )
    assert_refused(response)


def test_json_deeper_than_the_limit_is_400(api_as, labeler, lease):
    ranking = [[cid] for cid in lease.display_order]
    deep: list = []
    for _ in range(40):
        deep = [deep]
    response = submit(api_as, labeler, lease, ranking=ranking, flags={"x": deep})
    assert_refused(response)
    assert not Judgment.objects.exists()


def test_json_numbers_too_long_for_python_are_400(api_as, labeler, lease):
    body = '{"ranking": [[' + DIGITS_5000 + ']], "client_key": "' + str(uuid.uuid4()) + '"}'
    response = api_as(labeler).post(
        f"/api/assignments/{lease.pk}/judgment/", body, content_type="application/json"
    )
    assert_refused(response)


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_body_over_the_upload_limit_is_400_in_the_api_shape(
    api_as, researcher, project, settings, content_type
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"username": "' + "x" * 2000 + '"}' if "json" in content_type else "a=" + "x" * 2000
    response = api_as(researcher).post(
        f"/api/projects/{project.pk}/members/", body, content_type=content_type
    )
    assert_refused(response)
    assert response.json()["code"] == "too_large"


@pytest.mark.parametrize(
    "url",
    [
        f"/api/projects/{HUGE}/assignments/next/",
        f"/api/assignments/{HUGE}/",
        "/api/assignments/0/",
        "/api/projects/１/assignments/next/",
    ],
)
def test_ids_beyond_a_bigint_or_not_ascii_are_404(api_as, labeler, url):
    client = api_as(labeler)
    response = client.post(url) if url.endswith("next/") else client.get(url)
    assert response.status_code == 404


def test_every_url_takes_bounded_ids():
    """No `<int:...>` left in the URLs (it accepts a 5,000-digit id): `<id:...>` instead."""

    def patterns(resolver, prefix=""):
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                yield from patterns(entry, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield prefix + str(entry.pattern), entry.pattern.converters

    project_urls = [
        (route, converters)
        for route, converters in patterns(get_resolver())
        if not route.startswith("admin/")
    ]
    with_ids = [route for route, converters in project_urls if converters]
    assert len(with_ids) > 20
    for route, converters in project_urls:
        for name, converter in converters.items():
            if name.endswith("_id"):
                assert isinstance(converter, IdConverter), route


@pytest.mark.parametrize("rater", ["²", HUGE, "abc", ""])
def test_review_queue_ignores_a_rater_filter_that_is_no_id(client, reviewer, project, rater):
    client.force_login(reviewer)
    assert client.get(f"/review/projects/{project.pk}/queue/?rater={rater}").status_code == 200


@pytest.mark.parametrize("ids", [["²"], [HUGE], ["1", "x"]])
def test_bulk_review_page_refuses_ids_that_are_not_ids(client, reviewer, project, ids):
    client.force_login(reviewer)
    response = client.post(
        f"/review/projects/{project.pk}/queue/bulk/",
        {"judgment_ids": ids, "decision": "approve"},
        follow=True,
    )
    assert response.status_code == 200
    assert "not ids; nothing was changed" in response.content.decode()


@pytest.mark.parametrize("ids", [["²"], [HUGE], [0], "1"])
def test_bulk_review_api_refuses_ids_that_are_not_ids(api_as, reviewer, project, ids):
    response = api_as(reviewer).post(
        f"/api/projects/{project.pk}/judgments/review/",
        {"judgment_ids": ids, "decision": "approve"},
        format="json",
    )
    assert_refused(response, field="judgment_ids")


def test_an_expected_403_logs_one_line_without_a_traceback(client):
    client.force_login(UserFactory(roles=[Role.LABELER]))
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        assert client.get("/review/").status_code == 403
        assert client.get("/research/rounds/99999/").status_code == 403
    finally:
        handler.setStream(previous)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and all("Forbidden" in line for line in lines)
    assert "Traceback" not in stream.getvalue()


def test_a_labeler_member_without_the_group_reaches_the_rater_api(api_as, project):
    project.open_to_all_labelers = False
    project.save()
    make_task(project)
    member = UserFactory(roles=[])
    membership_add(project=project, user=member, role=Role.LABELER)
    assert api_as(member).post(f"/api/projects/{project.pk}/assignments/next/").status_code == 200


def test_the_api_error_shape_has_a_code_for_drf_refusals():
    response = APIClient().get("/api/projects/")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
