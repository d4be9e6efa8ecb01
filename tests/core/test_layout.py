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


def test_every_section_of_docs_design_md_the_code_cites_exists():
    sections = set(
        re.findall(r"^## (.+)$", (ROOT / "docs/design.md").read_text(encoding="utf-8"), re.M)
    )
    cited = re.compile(r'docs/design\.md,\s+(?:#\s*)?"([^"]+)"')
    citations = [
        (str(path.relative_to(ROOT)), section)
        for folder in ("apps", "trainer")
        for path in (ROOT / folder).rglob("*.py")
        for section in cited.findall(" ".join(path.read_text(encoding="utf-8").split()))
    ]
    assert len(citations) >= 10  # the docstrings do cite it
    assert [c for c in citations if c[1] not in sections] == []
