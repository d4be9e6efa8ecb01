import pytest
from playwright.sync_api import expect

from apps.core.roles import Role
from tests.browser import log_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_page_logs_a_user_in(page, live_server):
    UserFactory(username="ada", roles=[Role.LABELER])
    log_in(page, live_server, "ada", password="not-the-password")
    assert "/accounts/login/" in page.url  # a wrong password logs nobody in
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)

    log_in(page, live_server, "ada", next_url="/")
    assert page.url == f"{live_server.url}/"  # sent on to where they were going
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    response = page.goto(f"{live_server.url}/healthz")
    assert response.status == 200
    assert '"database": "ok"' in page.content()
