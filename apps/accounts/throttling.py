"""Login throttling, shared by the API's token endpoint, the login page and the admin's.

After LOGIN_FAILURE_LIMIT failed logins for one username, or LOGIN_ADDRESS_FAILURE_LIMIT
from one client address, within LOGIN_FAILURE_WINDOW seconds of the first of them, every
login for that username or from that address is refused (429, with Retry-After) until the
window ends, the right password included. Counts live in the cache (Redis in production),
so every web process sees them. A successful login clears its username's count.
"""

from __future__ import annotations

import hashlib
import math
import time
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.shortcuts import render
from rest_framework.throttling import BaseThrottle


def client_address(request) -> str:
    """The client's address; behind REST_FRAMEWORK["NUM_PROXIES"] trusted proxies, read
    from X-Forwarded-For as DRF's throttles do."""
    return BaseThrottle().get_ident(request)


def _keys(username: str, address: str) -> list[tuple[str, int]]:
    name = hashlib.sha256(username.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()
    return [
        (f"login-failures:user:{name}", settings.LOGIN_FAILURE_LIMIT),
        (f"login-failures:addr:{address}", settings.LOGIN_ADDRESS_FAILURE_LIMIT),
    ]


def login_wait_seconds(*, username: str, address: str) -> int:
    """Seconds until a login for `username` from `address` may be tried again; 0: now."""
    wait = 0
    for key, limit in _keys(username, address):
        if (cache.get(key) or 0) >= limit:
            until = cache.get(f"{key}:until") or time.time() + settings.LOGIN_FAILURE_WINDOW
            wait = max(wait, math.ceil(until - time.time()), 1)
    return wait


def login_failed(*, username: str, address: str) -> None:
    window = settings.LOGIN_FAILURE_WINDOW
    for key, _ in _keys(username, address):
        # The first failure opens the window; later ones count in it.
        cache.add(f"{key}:until", time.time() + window, timeout=window)
        cache.add(key, 0, timeout=window)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window)


def login_succeeded(*, username: str) -> None:
    key, _ = _keys(username, "")[0]
    cache.delete_many([key, f"{key}:until"])


def too_many_message(wait: int) -> str:
    minutes = max(1, math.ceil(wait / 60))
    return f"Too many failed logins; try again in {minutes} minute{'s' if minutes > 1 else ''}."


def login_page_throttled(view):
    """Wrap a login page (Django's, the admin's): a POST while locked answers 429 with
    Retry-After and never reaches the password check; a POST that renders the form again
    counts as a failure, one that redirects as a success."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        username = request.POST.get("username", "")
        address = client_address(request)
        wait = login_wait_seconds(username=username, address=address)
        if wait:
            response = render(request, "429.html", {"message": too_many_message(wait)}, status=429)
            response["Retry-After"] = str(wait)
            return response
        response = view(request, *args, **kwargs)
        if response.status_code in (301, 302, 303):
            login_succeeded(username=username)
        elif response.status_code == 200:
            login_failed(username=username, address=address)
        return response

    return wrapper
