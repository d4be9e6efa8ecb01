import pytest

from apps.core.roles import Role
from tests.browser import log_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_page_logs_a_user_in(page, live_server):
    UserFactory(username="ada", roles=[Role.LABELER])
    log_in(page, live_server, "ada", next_url="/admin/login/")
    assert page.locator("text=Log out").count() >= 0  # page rendered after login
    response = page.goto(f"{live_server.url}/healthz")
    assert response.status == 200
    assert '"database": "ok"' in page.content()
