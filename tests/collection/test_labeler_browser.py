"""The labeler pages in a real browser (Playwright + Debian chromium) against a live server.

Each test checks the rows the page wrote, exactly: ranking groups with the tie, Likert,
flags, and the display order the page showed.
"""

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from apps.collection import leasing, services
from apps.collection.models import Assignment, Demonstration, Judgment, Task
from apps.core.roles import Role
from tests.browser import log_in, screenshot
from tests.factories import ProjectFactory, UserFactory, make_task

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GUIDELINES = (
    Path(__file__).resolve().parents[2] / "apps" / "collection" / "demo" / "guidelines.md"
).read_text()
PROMPT = "Explain the moon landing to a 6 year old in a few sentences."
ANSWERS = [
    "People went to the moon, and they took pictures of what they saw, and sent them back to "
    "the earth so we could all see them.",
    "Explain the theory of gravity to a 6 year old.\nExplain the theory of relativity to a "
    "6 year old in a few sentences.\nExplain the big bang theory to a 6 year old.",
    "A long time ago, some brave astronauts flew a rocket all the way to the moon. Two of them "
    "walked on it! They bounced around because the moon does not pull on you as much as the "
    "earth does, planted a flag, picked up moon rocks, and then flew home safely.\n\n"
    + "They splashed down in the ocean and everyone cheered. "
    * 14,
    "The moon landing was faked in a film studio.",
]
ASSIGNMENT_URL = re.compile(r"/assignments/(\d+)/$")


@pytest.fixture(autouse=True)
def no_script_errors(page):
    """Every test also checks that the pages ran without a JavaScript error."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield
    assert errors == []


def moon_task(project, kind=Task.Kind.RANKING, overlap=None) -> Task:
    """A task whose prompt and completions read like real ones (for the screenshots too)."""
    task = make_task(project, kind=kind, overlap=overlap)
    task.prompt.text = PROMPT
    task.prompt.save()
    for tc, text in zip(task.task_completions.order_by("position"), ANSWERS, strict=False):
        tc.completion.text = text
        tc.completion.save()
    return task


def log_in_quickly(page, live_server, username: str) -> None:
    """A session made server-side (the login form itself is tested once, below)."""
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    page.goto(f"{live_server.url}/")


def start(page, live_server, username: str) -> Assignment:
    """Log in, press Start on the home page, and wait for the task page to be ready."""
    log_in_quickly(page, live_server, username)
    page.get_by_role("button", name=re.compile("^Start labeling")).first.click()
    page.wait_for_url(ASSIGNMENT_URL)
    page.wait_for_selector("body[data-ready=true]")
    return Assignment.objects.get(pk=int(ASSIGNMENT_URL.search(page.url).group(1)))


def shown_ids(page) -> list[int]:
    return page.eval_on_selector_all(
        "#completions .completion", "cards => cards.map(c => Number(c.dataset.completionId))"
    )


def ranking_on_page(page) -> list[list[int]]:
    return page.eval_on_selector_all(
        "#tiers .tier",
        "tiers => tiers.map(t => [...t.querySelectorAll('.chip')]"
        ".map(c => Number(c.dataset.completionId)))",
    )


def saved_answer(page, assignment_id: int) -> dict:
    raw = page.evaluate(f"localStorage.getItem('prefloop:answer:{assignment_id}')")
    return json.loads(raw) if raw else {}


def rank_3_1tie4_2_by_keyboard(page) -> None:
    for key in ["3", "1", "4", "t", "2"]:
        page.keyboard.press(key)


def test_keyboard_only_ranking_with_a_tie_likert_and_flag(page, live_server):
    labeler = UserFactory(username="kira", roles=[Role.LABELER])
    project = ProjectFactory(name="Helpful assistant", guidelines=GUIDELINES, k=4)
    moon_task(project)
    make_task(project, priority=-1)  # a second task, so submit lands on the next one
    log_in(page, live_server, "kira")
    screenshot(page, "home")
    page.keyboard.press("Tab")  # keyboard only from here: skip link, brand, nav ... Start
    start_button = page.get_by_role("button", name=re.compile("^Start labeling"))
    start_button.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(ASSIGNMENT_URL)
    page.wait_for_selector("body[data-ready=true]")
    assignment = Assignment.objects.get(rater=labeler)
    shown = shown_ids(page)
    assert shown == assignment.display_order

    rank_3_1tie4_2_by_keyboard(page)  # 3 best; 1 and 4 tied; 2 last
    assert ranking_on_page(page) == [[shown[2]], [shown[0], shown[3]], [shown[1]]]
    page.keyboard.press("4")  # screen readers hear each move
    expect(page.locator("#announcer")).to_have_text("Response 4 is ranked 2, tied with 1.")
    page.keyboard.press("2")
    page.keyboard.press("Shift+Digit6")  # score the picked response (2): 6
    page.keyboard.press("f")  # its flags: the first is "fails to follow the instruction"
    page.keyboard.press("Space")
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    page.keyboard.type("3 answers; 2 ignores the task.")
    page.keyboard.press("Escape")
    page.keyboard.press("3")  # focus the long one for the screenshot
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "ranking")
    for key in ["c", "1", "c"]:  # compare 3 and 1 side by side, in full
        page.keyboard.press(key)
    visible = page.locator("#completions .completion:visible")
    assert visible.evaluate_all("cs => cs.map(c => Number(c.dataset.completionId))") == [
        shown[0],
        shown[2],
    ]
    page.keyboard.press("Escape")
    assert page.locator("#completions .completion:visible").count() == 4
    page.keyboard.press("?")
    assert page.locator("#help-dialog").is_visible()
    screenshot(page, "help")
    page.keyboard.press("Escape")
    page.keyboard.press("g")
    assert page.locator("#guidelines-panel").is_visible()
    assert page.locator("#guidelines-panel h1").first.inner_text().startswith("PrefLoop demo")
    page.keyboard.press("Escape")
    assert not page.locator("#guidelines-panel").is_visible()

    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: ASSIGNMENT_URL.search(url) and f"/{assignment.pk}/" not in url)
    judgment = Judgment.objects.get()
    assert judgment.assignment_id == assignment.pk
    assert judgment.rater == labeler
    assert judgment.ranking == [[shown[2]], [shown[0], shown[3]], [shown[1]]]
    assert judgment.likert == {str(shown[1]): 6}
    assert judgment.flags == {str(shown[1]): ["fails_instruction"]}
    assert judgment.rationale == "3 answers; 2 ignores the task."
    assert judgment.display_order == shown
    assert judgment.time_spent_ms > 0
    assert saved_answer(page, assignment.pk) == {}, "the confirmed answer left the browser"


def test_drag_and_drop_ranking_with_a_tie(page, live_server):
    labeler = UserFactory(username="dana", roles=[Role.LABELER])
    project = ProjectFactory(name="Helpful assistant", k=4)
    moon_task(project)
    assignment = start(page, live_server, "dana")
    shown = shown_ids(page)
    assert shown == assignment.display_order

    def chip(cid):
        return page.locator(f'#pool-chips .chip[data-completion-id="{cid}"]')

    page.locator(f'.completion[data-completion-id="{shown[0]}"] .drag-handle').drag_to(
        page.locator("#tiers .gap-last")
    )
    assert ranking_on_page(page) == [[shown[0]]]
    chip(shown[2]).drag_to(page.locator('#tiers .gap[data-index="0"]'))
    assert ranking_on_page(page) == [[shown[2]], [shown[0]]]
    chip(shown[3]).drag_to(page.locator('#tiers .tier[data-tier="1"]'))
    chip(shown[1]).drag_to(page.locator("#tiers .gap-last"))
    expected = [[shown[2]], [shown[0], shown[3]], [shown[1]]]
    assert ranking_on_page(page) == expected

    card = page.locator(f'.completion[data-completion-id="{shown[2]}"]')
    card.get_by_label(re.compile(r"^Score 5 ")).check()
    card.locator("summary").click()
    card.get_by_label("Made-up facts / hallucination").check()

    # A narrow window: one column, nothing wider than the window.
    page.set_viewport_size({"width": 420, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 420
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "ranking-narrow")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.get_by_role("button", name=re.compile("^Submit")).click()
    page.wait_for_url(f"{live_server.url}/")
    assert "Nothing left for you" in page.content()
    judgment = Judgment.objects.get()
    assert (judgment.assignment_id, judgment.rater_id) == (assignment.pk, labeler.pk)
    assert judgment.ranking == expected
    assert judgment.likert == {str(shown[2]): 5}
    assert judgment.flags == {str(shown[2]): ["hallucination"]}
    assert judgment.display_order == shown
    assert page.locator('[data-stat="done_today"]').inner_text() == "1"


def test_a_demonstration_is_written_and_stored(page, live_server):
    labeler = UserFactory(username="eli", roles=[Role.LABELER])
    project = ProjectFactory(name="Helpful assistant")
    moon_task(project, kind=Task.Kind.DEMONSTRATION)
    assignment = start(page, live_server, "eli")
    text = "Some astronauts flew a big rocket to the moon.\nThey walked on it and came home."
    page.locator("#demonstration-text").fill(text)
    assert page.locator("#demo-count").inner_text().startswith(f"{len(text)} / 20,000")
    page.wait_for_selector("#draft-status:has-text('Draft saved')")
    page.reload()  # the draft survives a reload
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator("#demonstration-text").input_value() == text
    screenshot(page, "demonstration")
    page.locator("#demonstration-text").press("Control+Enter")
    page.wait_for_url(f"{live_server.url}/")
    demonstration = Demonstration.objects.get()
    assert (demonstration.assignment_id, demonstration.rater_id) == (assignment.pk, labeler.pk)
    assert demonstration.text == text
    assert demonstration.prompt.text == PROMPT


def test_an_ab_evaluation_by_keyboard(page, live_server):
    UserFactory(username="fay", roles=[Role.LABELER])
    project = ProjectFactory(name="Helpful assistant")
    moon_task(project, kind=Task.Kind.EVALUATION)
    assignment = start(page, live_server, "fay")
    a, b = shown_ids(page)
    assert [a, b] == assignment.display_order
    for key in ["2", "x", "a", "Shift+Digit2"]:
        page.keyboard.press(key)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "evaluation")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    judgment = Judgment.objects.get()
    assert judgment.ranking == [[b], [a]]
    assert judgment.both_bad is True
    assert judgment.likert == {str(a): 2}
    assert judgment.flags == {}
    assert judgment.display_order == [a, b]


def test_a_failed_submit_keeps_the_answer_and_the_retry_stores_it_once(page, live_server):
    UserFactory(username="gus", roles=[Role.LABELER])
    project = ProjectFactory(k=4)
    moon_task(project)
    assignment = start(page, live_server, "gus")
    shown = shown_ids(page)
    expected = [[shown[2]], [shown[0], shown[3]], [shown[1]]]
    sent_keys = []

    def outage(route):
        sent_keys.append(json.loads(route.request.post_data)["client_key"])
        route.fulfill(status=503, body="Service Unavailable")

    page.route("**/judgment/", outage)
    rank_3_1tie4_2_by_keyboard(page)
    page.keyboard.press("Enter")
    status = page.locator("#status")
    status.get_by_text("Not saved yet").wait_for()
    assert "nothing is lost" in status.inner_text()
    assert Judgment.objects.count() == 0
    assert ranking_on_page(page) == expected
    assert saved_answer(page, assignment.pk)["answer"]["groups"] == expected

    page.reload()  # the answer was kept in the browser, with its client_key
    page.wait_for_selector("body[data-ready=true]")
    assert ranking_on_page(page) == expected
    page.unroute("**/judgment/", outage)

    def answer_lost(route):
        # The server stores it, but its answer never reaches the page.
        sent_keys.append(json.loads(route.request.post_data)["client_key"])
        route.fetch()
        route.fulfill(status=502, body="Bad Gateway")

    page.route("**/judgment/", answer_lost)
    page.keyboard.press("Enter")
    page.locator("#retry-button").wait_for()
    assert Judgment.objects.count() == 1
    page.unroute("**/judgment/", answer_lost)
    page.locator("#retry-button").click()
    page.wait_for_url(f"{live_server.url}/")

    judgment = Judgment.objects.get()
    assert len(sent_keys) == 2 and len(set(sent_keys)) == 1
    assert str(judgment.client_key) == sent_keys[0]
    assert judgment.ranking == expected
    assert judgment.display_order == shown


def test_lease_expiry_says_so_and_keeps_the_answer(page, live_server):
    UserFactory(username="hal", roles=[Role.LABELER])
    project = ProjectFactory(k=4, overlap=2)
    task = moon_task(project)
    assignment = start(page, live_server, "hal")
    shown = shown_ids(page)
    Assignment.objects.filter(pk=assignment.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    for name in ("ivy", "jon"):  # two others fill the task's overlap meanwhile
        other = UserFactory(username=name, roles=[Role.LABELER])
        theirs = leasing.assignment_next(project=project, rater=other)
        assert theirs.task_id == task.pk
        services.judgment_submit(
            assignment_id=theirs.pk,
            rater=other,
            client_key=uuid.uuid4(),
            ranking=[theirs.display_order],
        )
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert "run out" in page.locator("#lease-status").inner_text()
    assert page.locator("#lease-countdown").inner_text() == "expired"

    rank_3_1tie4_2_by_keyboard(page)
    page.keyboard.press("Enter")
    status = page.locator("#status")
    status.get_by_text("given to other raters").wait_for()
    assert "still on this page" in status.inner_text()
    expected = [[shown[2]], [shown[0], shown[3]], [shown[1]]]
    assert ranking_on_page(page) == expected
    assert saved_answer(page, assignment.pk)["answer"]["groups"] == expected
    assert not Judgment.objects.filter(assignment=assignment).exists()
    assert page.url.endswith(f"/assignments/{assignment.pk}/")


def test_another_raters_assignment_is_refused_and_no_page_shows_their_answer(page, live_server):
    UserFactory(username="kim", roles=[Role.LABELER])
    other = UserFactory(username="lou", roles=[Role.LABELER])
    project = ProjectFactory(k=4, overlap=3)
    moon_task(project)
    theirs = leasing.assignment_next(project=project, rater=other)
    held = leasing.assignment_next(project=ProjectFactory(), rater=other)
    services.judgment_submit(
        assignment_id=theirs.pk,
        rater=other,
        client_key=uuid.uuid4(),
        ranking=[[cid] for cid in theirs.display_order],
        rationale="LOU-SECRET-RATIONALE",
    )
    mine = start(page, live_server, "kim")
    assert mine.task_id == theirs.task_id
    for url in ("/", f"/assignments/{mine.pk}/"):
        page.goto(f"{live_server.url}{url}")
        content = page.content()
        assert "LOU-SECRET-RATIONALE" not in content
        assert "lou" not in page.locator("main").inner_text()
    data = json.loads(page.locator("#task-data").text_content())
    # Only what this rater needs: text and ids, no provenance, no other answers.
    assert {key for c in data["completions"] for key in c} == {"id", "text"}
    assert not {"judgments", "ranking", "likert", "policy", "model"} & set(data)
    for assignment in (theirs, held) if held else (theirs,):
        response = page.goto(f"{live_server.url}/assignments/{assignment.pk}/")
        # another rater's assignment answers like a missing one: nothing says it exists
        assert response.status == 404
        assert "LOU-SECRET-RATIONALE" not in page.content()
        api = page.request.get(f"{live_server.url}/api/assignments/{assignment.pk}/")
        assert api.status == 404


def test_session_expiry_logs_in_again_and_returns_to_the_task(page, live_server):
    labeler = UserFactory(username="max", roles=[Role.LABELER])
    project = ProjectFactory(k=4)
    moon_task(project)
    assignment = start(page, live_server, "max")
    shown = shown_ids(page)
    rank_3_1tie4_2_by_keyboard(page)
    page.context.clear_cookies(name="sessionid")
    page.keyboard.press("Enter")
    page.locator("#relogin-link").wait_for()
    assert "session has expired" in page.locator("#status").inner_text()
    page.locator("#relogin-link").click()
    page.fill("#id_username", "max")
    page.fill("#id_password", "pw-secret-123")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/assignments/{assignment.pk}/")
    page.wait_for_selector("body[data-ready=true]")
    expected = [[shown[2]], [shown[0], shown[3]], [shown[1]]]
    assert ranking_on_page(page) == expected
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    judgment = Judgment.objects.get()
    assert (judgment.rater_id, judgment.ranking) == (labeler.pk, expected)


def test_skip_with_a_reason_takes_the_next_task(page, live_server):
    UserFactory(username="ned", roles=[Role.LABELER])
    project = ProjectFactory(k=4)
    moon_task(project)
    make_task(project, priority=-1)
    first = start(page, live_server, "ned")
    shown = shown_ids(page)
    # The card buttons rank too (pointer without dragging, screen readers).
    page.get_by_role("button", name="Add response 2 at the bottom of your ranking").click()
    page.get_by_role("button", name="Add response 1 at the bottom of your ranking").click()
    page.get_by_role("button", name="Tie response 1 with the row above, or untie it").click()
    page.get_by_role("button", name="Add response 4 at the bottom of your ranking").click()
    page.get_by_role("button", name="Move response 4 up").click()
    assert ranking_on_page(page) == [[shown[3]], [shown[1], shown[0]]]
    page.keyboard.press("s")
    dialog = page.locator("#skip-dialog")
    dialog.get_by_label("The prompt is unclear or broken").check()
    dialog.get_by_role("button", name=re.compile("^Skip and take")).click()
    page.wait_for_url(lambda url: ASSIGNMENT_URL.search(url) and f"/{first.pk}/" not in url)
    first.refresh_from_db()
    assert first.status == Assignment.Status.SKIPPED
    assert first.skip_reason == "The prompt is unclear or broken."
    assert Assignment.objects.filter(status=Assignment.Status.LEASED).count() == 1


def test_shortcuts_never_fire_inside_text_fields(page, live_server):
    UserFactory(username="gus", roles=[Role.LABELER])
    project = ProjectFactory(name="Helpful assistant")
    moon_task(project, kind=Task.Kind.DEMONSTRATION)
    start(page, live_server, "gus")
    box = page.locator("#demonstration-text")
    box.click()
    box.press_sequentially("Why? Go see. What, gone?")  # ?, g and s are shortcuts outside
    assert box.input_value() == "Why? Go see. What, gone?"
    assert page.locator("#help-dialog[open]").count() == 0
    assert page.locator("#skip-dialog[open]").count() == 0
    assert page.locator("#guidelines-panel").is_hidden()
    box.press("Escape")  # leaves the text box; now the key is a shortcut
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_have_attribute("open", "")
