"""A round's config is refused when it is unsafe or wrong, and the trainer never sees it.

Regression tests for the security review of turn 2 (issue 12): a researcher could name code
for the GPU worker to import and run (`score_fn`), any file on the worker (`eval.rankings:
/etc/passwd`, `ppo.ptx`, ...), unbounded sizes and mistyped values. Each attack is refused at
start with a 400 naming the field's path; no round, no run, no published task and no run.json
exists afterwards; a config stored before the contract existed fails its stage before the
trainer starts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from apps.collection.models import PolicyVersion, Prompt
from apps.core.errors import InvalidInput
from apps.loop import executor, runner
from apps.loop.config import STAGE_SECTIONS, RoundSettings, round_config
from apps.loop.models import Stage, TrainingRound, TrainingRun
from apps.loop.stages import sampling
from trainer.contract import server_fields

pytestmark = pytest.mark.django_db

#: every field of every stage that the server sets (paths, devices, seeds, scorers, resuming)
SERVER_SET = [
    (section, name)
    for section, cls in STAGE_SECTIONS.items()
    for name in sorted(server_fields(cls))
]

ATTACKS = [
    ({"ppo": {"score_fn": "os:system"}}, "config.ppo.score_fn"),
    ({"eval": {"score_fn": "pty:spawn"}}, "config.eval.score_fn"),
    # a registered scorer is still the server's choice (eval_hidden_rule), not the request's
    ({"eval": {"score_fn": "hidden_rule"}}, "config.eval.score_fn"),
    ({"eval": {"rankings": "/etc/passwd"}}, "config.eval.rankings"),
    ({"ppo": {"ptx": "/etc/shadow"}}, "config.ppo.ptx"),
    ({"ppo": {"value_model": "/root/.ssh"}}, "config.ppo.value_model"),
    ({"rm": {"valid": "/etc/passwd"}}, "config.rm.valid"),
    ({"rm": {"reference": "../../secrets.jsonl"}}, "config.rm.reference"),
    ({"ppo": {"total_steps": 10**9}}, "config.ppo.total_steps"),
    ({"sample": {"batch_size": 10**9}}, "config.sample.batch_size"),
    ({"seed": "abc"}, "config.seed"),
    ({"seed": 1.5}, "config.seed"),
    ({"nonsense": 1}, "config.nonsense"),
    ({"ppo": {"kl_coff": 0.1}}, "config.ppo.kl_coff"),
    ({"eval": {"train_categories": ["../../etc"]}}, "config.eval.train_categories"),
    ({"ppo": "python -c 'import os'"}, "config.ppo"),
]


@pytest.fixture(autouse=True)
def own_artifact_root(settings, tmp_path):
    settings.ARTIFACT_ROOT = str(tmp_path / "artifacts")


@pytest.fixture
def base(project):
    return PolicyVersion.objects.create(project=project, name="base", artifact_uri="/models/base")


def _refused(api, project, config) -> dict:
    response = api.post(f"/api/projects/{project.pk}/rounds/", {"config": config}, format="json")
    assert response.status_code == 400, response.content
    return response.json()


def _nothing_happened(stages, tmp_root: Path) -> None:
    assert not TrainingRound.objects.exists()
    assert not TrainingRun.objects.exists()
    assert stages.sent == []  # no task published for a worker
    assert not list(tmp_root.glob("rounds/**/*.run.json"))  # no config written for a trainer


@pytest.mark.parametrize(("config", "path"), ATTACKS, ids=[a[1] for a in ATTACKS])
def test_each_attack_is_refused_with_its_field_path_and_nothing_is_stored(
    config, path, project, base, researcher, api_as, stages, settings
):
    body = _refused(api_as(researcher), project, config)
    assert path in body["fields"], body
    assert path in body["detail"]
    _nothing_happened(stages, Path(settings.ARTIFACT_ROOT))


@pytest.mark.parametrize(("section", "name"), SERVER_SET, ids=[f"{s}.{n}" for s, n in SERVER_SET])
def test_every_field_the_server_sets_is_refused_from_a_request(
    section, name, project, base, researcher, api_as, stages, settings
):
    body = _refused(api_as(researcher), project, {section: {name: "/etc/passwd"}})
    assert body["fields"] == {
        f"config.{section}.{name}": [body["fields"][f"config.{section}.{name}"][0]]
    }
    assert "set by the server" in body["fields"][f"config.{section}.{name}"][0]
    _nothing_happened(stages, Path(settings.ARTIFACT_ROOT))


def test_the_round_page_form_refuses_the_same_way(project, base, researcher, client, stages):
    client.force_login(researcher)
    response = client.post(
        f"/research/projects/{project.pk}/rounds/start/",
        {"preset": "tiny", "target_judgments": "99999999999"},
        follow=True,
    )
    assert response.status_code == 200
    assert "config.target_judgments" in response.content.decode()
    assert not TrainingRound.objects.exists() and stages.sent == []


def test_a_config_stored_before_the_contract_never_reaches_the_trainer(
    project, base, monkeypatch, stages, settings
):
    """A round row whose config predates the checks (or was written by hand) fails its stage
    with the contract's message; the trainer is never started and no run.json is written."""
    Prompt.objects.create(project=project, text="Say hi.", split="train")
    config = round_config(preset="tiny")
    config["sample"] = {**config["sample"], "model": "/etc/passwd"}
    training_round = TrainingRound.objects.create(
        project=project, number=1, start_policy=base, stage=Stage.SAMPLING, config=config
    )
    run = TrainingRun.objects.create(
        round=training_round,
        stage=Stage.SAMPLING,
        status=TrainingRun.Status.QUEUED,
        out_dir="rounds/stored-config/sampling",
    )
    launched = []
    monkeypatch.setattr(runner, "run", lambda *a, **k: launched.append(a))
    monkeypatch.setattr(sampling, "policy_model", lambda policy: "/models/base")

    assert executor.run_execute(run_id=run.pk, task_id="t") == "failed"
    run.refresh_from_db()
    assert "config.sample.model" in run.error and "set by the server" in run.error
    assert launched == []
    assert not list(Path(settings.ARTIFACT_ROOT).glob("rounds/stored-config/**/*.run.json"))
    training_round.refresh_from_db()
    assert training_round.stage == Stage.FAILED


def test_a_number_that_is_no_number_is_refused():
    # JSON has no NaN (the API's parser refuses it), but a Python caller might pass one
    for value in (float("nan"), float("inf")):
        with pytest.raises(InvalidInput) as refused:
            round_config(overrides={"ppo": {"lr": value}})
        assert "expected a number" in refused.value.fields["config.ppo.lr"][0]


DECLARED = {"server", "bounds", "choices", "flag", "subset_of", "max_items", "item_bounds"}


@pytest.mark.parametrize("cls", [*STAGE_SECTIONS.values(), RoundSettings])
def test_every_setting_is_declared_with_who_sets_it_and_its_bounds(cls):
    # a new setting reaches a round only through the contract's helpers (bounded, flag,
    # choice, server, ...), never as a bare field a request could fill with anything
    bare = [f.name for f in dataclasses.fields(cls) if not DECLARED & set(f.metadata)]
    assert bare == []


def test_a_list_of_numbers_is_checked_item_by_item():
    round_config(overrides={"rm": {"feature_layers": [10, 20], "head_l2": [0.1, 1]}})
    for value, problem in (
        (["10"], "expected a list of whole numbers"),
        ([10.5], "expected a list of whole numbers"),
        ([0], "each between 1 and 1024"),
        (list(range(1, 70)), "at most 64 numbers"),
        ([True], "expected a list of whole numbers"),
    ):
        with pytest.raises(InvalidInput) as refused:
            round_config(overrides={"rm": {"feature_layers": value}})
        assert problem in refused.value.fields["config.rm.feature_layers"][0]
    with pytest.raises(InvalidInput) as refused:
        round_config(overrides={"rm": {"head_l2": [float("nan")]}})
    assert "expected a list of numbers" in refused.value.fields["config.rm.head_l2"][0]
    with pytest.raises(InvalidInput) as refused:
        round_config(overrides={"rm": {"epochs": 0}})
    assert "head_fit" in refused.value.fields["config.rm.epochs"][0]
    with pytest.raises(InvalidInput) as refused:
        round_config(overrides={"ppo": {"advantage": "rloo", "samples_per_prompt": 1}})
    assert "samples_per_prompt >= 2" in refused.value.fields["config.ppo.advantage"][0]
