"""Schemathesis over the OpenAPI schema: every API operation, as each role (anonymous,
labeler, reviewer, researcher), on PostgreSQL. No answer may be a 5xx, and every answer must
be one the schema describes: its status code, its content type and its body.

Each role works in project A and holds no role in project B; the objects the generated ids
hit now and then (both projects' tasks, assignments, judgments, rounds) are made below, and
every operation gets the same bounded number of examples (FUZZ_EXAMPLES), derandomized so a
failure replays. About 50 s on this 2-core machine beside other work (29 operations).
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.accounts.tokens import api_token_create
from apps.collection.leasing import assignment_next
from apps.collection.models import PolicyVersion
from apps.collection.services import judgment_submit, membership_add
from apps.core.roles import Role
from apps.loop.models import Stage, TrainingRound
from tests.factories import ProjectFactory, UserFactory, make_task

pytestmark = [pytest.mark.django_db, pytest.mark.fuzz]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture
def same_connection():
    """Requests reach Django through its WSGI app, whose request_started/finished signals
    would close the test's database connection (and with it the test's transaction); the
    test client unhooks them the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def tokens(db, same_connection) -> dict[str, str | None]:
    """A token for each role, members of project A; project B is nobody's; data in both."""
    a, b = ProjectFactory(name="A", k=2, overlap=2), ProjectFactory(name="B", k=2, overlap=2)
    keys: dict[str, str | None] = {"anonymous": None}
    for role in Role:
        user = UserFactory(roles=[role])
        membership_add(project=a, user=user, role=role)
        keys[role.value] = api_token_create(user=user)
    for project in (a, b):
        base = PolicyVersion.objects.create(project=project, name="base", artifact_uri="/m")
        TrainingRound.objects.create(
            project=project, number=1, start_policy=base, stage=Stage.COLLECTING, config={}
        )
        for _ in range(3):
            make_task(project)
        rater = UserFactory(roles=[Role.LABELER])
        lease = assignment_next(project=project, rater=rater)
        judgment_submit(
            assignment_id=lease.pk,
            rater=rater,
            client_key=f"00000000-0000-4000-8000-{lease.pk:012d}",
            ranking=[[cid] for cid in lease.display_order],
        )
    return keys


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_a_5xx_or_an_undocumented_answer(case, tokens):
    for key in tokens.values():
        headers = {"Authorization": f"Token {key}"} if key else {}
        case.call_and_validate(headers=headers, checks=CHECKS)
