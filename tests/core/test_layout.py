"""The code stays in pieces a newcomer can find by name (issue 12)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 600


def test_no_python_file_under_apps_is_over_600_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in (ROOT / "apps").rglob("*.py")
        if "migrations" not in path.parts
        and (n := len(path.read_text(encoding="utf-8").splitlines())) > LIMIT
    }
    assert long == {}


def test_collection_does_not_import_quality():
    # the assignment engine asks screening through apps/collection/screening.py instead
    importing = re.compile(r"^\s*(from|import)\s+apps\.quality\b", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "apps" / "collection").rglob("*.py")
        if importing.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
