"""trainer/contract.py: the records, the checks, the scorers, and that it stays torch-free."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import contract
from trainer.contract import (
    ConfigError,
    DataError,
    Demonstration,
    FileEntry,
    Manifest,
    Pair,
    PPOConfig,
    Prompt,
    Ranking,
    check_settings,
    load_scorer,
)

ROOT = Path(__file__).resolve().parents[2]


def _modules_after(code: str, env_extra: dict | None = None) -> set[str]:
    script = code + "\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env_extra or {})},
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_contract_imports_without_torch_or_django():
    modules = _modules_after("import trainer.contract, trainer.data, trainer.scorers")
    assert not {m for m in modules if m.split(".")[0] in ("torch", "django", "transformers")}


def test_the_web_process_never_imports_torch():
    modules = _modules_after(
        "import django; django.setup()\n"
        "import annotation_site.urls, apps.loop.services, apps.loop.tasks, apps.loop.exports\n"
        "import apps.collection.importing, apps.loop.config",
        {"DJANGO_SETTINGS_MODULE": "annotation_site.settings.local"},
    )
    assert "trainer.contract" in modules
    assert not {m for m in modules if m.split(".")[0] in ("torch", "transformers")}


def test_records_round_trip_through_their_json():
    ranking = Ranking("p", ["a", "b", "c"], [[1], [0, 2]], 0.5, "rater-1", 3, 9, ["base"])
    assert Ranking.from_json(json.loads(json.dumps(ranking.to_json())), "x") == ranking
    assert list(ranking.to_json()) == [
        "prompt",
        "completions",
        "ranking",
        "rater",
        "task_id",
        "judgment_id",
        "policy_versions",
        "weight",
    ]
    assert ranking.pairs() == [Pair("p", "b", "a"), Pair("p", "b", "c")]
    assert ranking.strict_pairs() == [(1, 0), (1, 2)]
    prompt = Prompt("7", "Hi?", "chat", "test", reference="Hello.")
    assert Prompt.from_json(prompt.to_json(), "x") == prompt
    assert Prompt.from_json({"id": 7, "prompt": "Hi?"}, "x").id == "7"  # hand-written ints
    demo = Demonstration("Q", "A")
    assert Demonstration.from_json(demo.to_json(), "x") == demo


def test_manifest_round_trip_and_verify(tmp_path):
    rows = [Pair("p", "a", "b"), Pair("p", "a", "c")]
    count = contract.write_rows(tmp_path / contract.PAIRS, rows)
    entry = contract.file_entry(tmp_path / contract.PAIRS, count)
    manifest = Manifest("uid", "2026-12-01T00:00:00", {contract.PAIRS: entry}, project_id=1)
    contract.write_manifest(tmp_path, manifest)
    assert contract.read_manifest(tmp_path) == manifest
    assert contract.read_pairs(tmp_path / contract.PAIRS) == rows
    assert contract.verify_folder(tmp_path, manifest) == []
    (tmp_path / contract.PAIRS).write_text("{}\n")
    assert contract.verify_folder(tmp_path, manifest) == [
        f"pairs.jsonl in {tmp_path} does not match its sha256 in the manifest"
    ]
    broken = Manifest("uid", "now", {"gone.jsonl": FileEntry("0", 0, 0)})
    assert contract.verify_folder(tmp_path, broken) == [f"gone.jsonl is missing from {tmp_path}"]


def test_check_settings_names_every_problem_by_path():
    with pytest.raises(ConfigError) as refused:
        check_settings(
            PPOConfig,
            {"total_steps": 0, "lr": "fast", "reward_model": "/x", "bogus": 1},
            path="config.ppo",
            from_round=True,
            partial=True,
        )
    assert set(refused.value.problems) == {
        "config.ppo.total_steps",
        "config.ppo.lr",
        "config.ppo.reward_model",
        "config.ppo.bogus",
    }
    # the operator may give paths on the command line; the bounds hold there too
    values = {"policy": "a", "prompts": "p", "out": "o", "reward_model": "/x", "kl_coef": 1}
    checked = check_settings(PPOConfig, values, path="", from_round=False)
    assert checked["kl_coef"] == 1.0 and isinstance(checked["kl_coef"], float)
    with pytest.raises(ConfigError, match="policy: required"):
        check_settings(PPOConfig, {"prompts": "p", "out": "o"}, path="", from_round=False)


def test_only_registered_scorers_load():
    assert load_scorer("length")(["p"], ["abc"]) == [3.0]
    assert load_scorer("hidden_rule")(["Tell me about cats."], ["Cats purr."])[0] > 0
    for name in ("os:system", "pty:spawn", "apps.loop.scoring:hidden_score", ""):
        with pytest.raises(DataError, match="not a registered scorer"):
            load_scorer(name)
