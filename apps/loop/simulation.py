"""Synthetic raters that work through the real REST API, as a person's script would.

Each rater ranks by the hidden rule of apps/loop/scoring.py plus Gaussian noise of its own
size (some raters are careful, some sloppy); an adversarial rater ranks by the *negated*
rule. Only 127.0.0.1 / localhost is accepted as a target, and every run is bounded by a
number of judgments and a number of seconds.

When no task is left the raters wait: without end while ``work_coming()`` says tasks are on
their way (a round of the project is sampling or collecting), then ``idle_wait_seconds`` more
before they stop, so raters started before a round, or between two rounds, rate it.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from apps.loop.scoring import score

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class SimulationError(Exception):
    pass


def check_local(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOCAL_HOSTS:
        raise SimulationError(
            f"Refusing to send synthetic judgments to {host!r}: only 127.0.0.1/localhost."
        )


@dataclass
class SimulatedRater:
    username: str
    noise: float
    adversarial: bool = False
    token: str = ""
    done: int = 0
    exhausted: bool = False
    rng: random.Random = field(default_factory=random.Random)

    def rank(self, prompt: str, completions: list[dict]) -> tuple[list[list[int]], dict]:
        """Best-first groups of completion ids, and a Likert score per completion."""
        sign = -1.0 if self.adversarial else 1.0
        noisy = {
            c["id"]: sign * score(prompt, c["text"]) + self.rng.gauss(0.0, self.noise)
            for c in completions
        }
        order = sorted(noisy, key=lambda cid: -noisy[cid])
        likert = {}
        for place, cid in enumerate(order):
            likert[str(cid)] = max(1, 7 - round(6 * place / max(len(order) - 1, 1)))
        return [[cid] for cid in order], likert


class ApiClient:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        check_local(base_url)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict | None = None, token: str = ""):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers={"Accept": "application/json"}
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Token {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                return response.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                payload = {"detail": raw[:200].decode(errors="replace")}
            return exc.code, payload


@dataclass
class SimulationResult:
    judgments: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    per_rater: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    stopped: str = ""
    """Why the raters stopped, in words."""


def simulate(
    *,
    client: ApiClient,
    raters: list[SimulatedRater],
    password: str,
    project_id: int,
    max_judgments: int,
    max_seconds: float,
    idle_wait_seconds: float = 0.0,
    work_coming: Callable[[], bool] | None = None,
    poll_seconds: float = 1.0,
    on_wait: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Raters take turns: lease the next task, rank it, submit. They stop at max_judgments,
    at max_seconds, or when no task is left, none is coming (``work_coming``) and
    ``idle_wait_seconds`` have passed like that."""
    result = SimulationResult()
    started = time.monotonic()
    for rater in raters:
        status, body = client.call(
            "POST", "/api/auth/token/", {"username": rater.username, "password": password}
        )
        if status != 200:
            raise SimulationError(f"{rater.username}: token refused ({status} {body}).")
        rater.token = body["token"]
    idle_since = None
    waiting_for = ""
    while True:
        if result.judgments >= max_judgments:
            result.stopped = f"reached --max-judgments ({max_judgments})"
            break
        if time.monotonic() - started >= max_seconds:
            result.stopped = f"reached --max-seconds ({max_seconds:g} s)"
            break
        active = [r for r in raters if not r.exhausted]
        if active:
            done_before = result.judgments + result.skipped
            for rater in active:
                if result.judgments >= max_judgments:
                    break
                _one_task(client, rater, project_id, result)
            if result.judgments + result.skipped > done_before:
                idle_since, waiting_for = None, ""  # work came: the idle clock starts again
            continue
        now = time.monotonic()
        if work_coming is not None and work_coming():
            idle_since, reason = None, "a round of the project is sampling or collecting"
        else:
            idle_since = idle_since or now
            if now - idle_since >= idle_wait_seconds:
                result.stopped = (
                    f"no task left and none coming for {idle_wait_seconds:g} s (--wait)"
                )
                break
            reason = f"no task left; waiting up to {idle_wait_seconds:g} s (--wait) for more"
        if on_wait is not None and reason != waiting_for:
            on_wait(reason)
        waiting_for = reason
        time.sleep(poll_seconds)
        for rater in raters:
            rater.exhausted = False
    result.seconds = round(time.monotonic() - started, 2)
    result.per_rater = {r.username: r.done for r in raters}
    return result


def _one_task(client: ApiClient, rater: SimulatedRater, project_id: int, result) -> None:
    status, lease = client.call(
        "POST", f"/api/projects/{project_id}/assignments/next/", {}, rater.token
    )
    if status == 204:
        rater.exhausted = True
        return
    if status != 200:
        result.errors.append(f"{rater.username} next: {status} {lease}")
        rater.exhausted = True
        return
    assignment = lease["assignment_id"]
    if lease["kind"] == "demonstration" or len(lease["completions"]) < 2:
        client.call(
            "POST",
            f"/api/assignments/{assignment}/skip/",
            {"reason": "simulated rater: writes no demonstrations"},
            rater.token,
        )
        result.skipped += 1
        return
    ranking, likert = rater.rank(lease["prompt"]["text"], lease["completions"])
    body = {
        "ranking": ranking,
        "likert": likert,
        "rationale": "simulated",
        "time_spent_ms": rater.rng.randint(4_000, 40_000),
        "client_key": str(uuid.uuid4()),
    }
    status, answer = client.call(
        "POST", f"/api/assignments/{assignment}/judgment/", body, rater.token
    )
    if status == 400 and answer and "likert" in (answer.get("fields") or {}):
        body.pop("likert")  # a project without Likert scores
        status, answer = client.call(
            "POST", f"/api/assignments/{assignment}/judgment/", body, rater.token
        )
    if status in (200, 201):
        result.judgments += 1
        rater.done += 1
    else:
        result.errors.append(f"{rater.username} judgment: {status} {answer}")
