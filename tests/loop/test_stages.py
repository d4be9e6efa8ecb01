"""The stage modules (apps/loop/stages/), called directly with a fake trainer.

Each stage is asked what it sends the trainer (every path set by the server, from the policy
registry and the round's folder) and what it makes of the trainer's outputs (tasks, a
snapshot, a registered policy, A/B tasks), in milliseconds: tests/loop/fake_trainer.py stands
in for `python -m trainer`. The real trainer runs in test_end_to_end.py and test_faults.py.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from apps.collection.leasing import assignment_next
from apps.collection.models import Demonstration, PolicyVersion, Prompt, Task
from apps.collection.services import judgment_submit
from apps.core.roles import Role
from apps.loop import runner
from apps.loop.artifacts import artifact_path, round_folder
from apps.loop.config import round_config
from apps.loop.errors import StageError
from apps.loop.models import Stage, TrainingRound, TrainingRun
from apps.loop.stages import HANDLERS, evaluating, exporting, sampling, training
from apps.loop.stages.base import StageResult
from tests.factories import ProjectFactory, UserFactory
from tests.loop.fake_trainer import FakeTrainer, write_model_dir
from trainer import contract

pytestmark = pytest.mark.django_db

TRAIN, TEST = 4, 2


@pytest.fixture
def fake(monkeypatch, settings, tmp_path) -> FakeTrainer:
    settings.ARTIFACT_ROOT = str(tmp_path / "artifacts")
    trainer = FakeTrainer()
    monkeypatch.setattr(runner, "run", trainer)
    return trainer


@pytest.fixture
def world(fake, tmp_path):
    project = ProjectFactory(k=2, overlap=1)
    for i in range(TRAIN + TEST):
        Prompt.objects.create(
            project=project, text=f"Question {i}?", split="train" if i < TRAIN else "test"
        )
    write_model_dir(tmp_path / "base")
    base = PolicyVersion.objects.create(
        project=project, name="base", kind="base", artifact_uri=str(tmp_path / "base")
    )
    training_round = TrainingRound.objects.create(
        project=project,
        number=1,
        start_policy=base,
        stage=Stage.SAMPLING,
        config=round_config(
            preset="tiny",
            overrides={
                "prompts_per_round": TRAIN + TEST,
                "sample_splits": ["train", "test"],
                "require_review": False,
                "sft_min_demonstrations": 2,
                "ab_tasks": 1,
                "eval_hidden_rule": True,
            },
        ),
    )
    return project, base, training_round


def _run(training_round: TrainingRound, stage: Stage) -> TrainingRun:
    training_round.stage = stage
    training_round.save(update_fields=["stage"])
    return TrainingRun.objects.create(
        round=training_round,
        stage=stage,
        status=TrainingRun.Status.RUNNING,
        attempt=1,
        out_dir=f"{round_folder(training_round)}/{stage}",
    )


def _finish(run: TrainingRun, result: StageResult) -> None:
    """What the executor records when a stage returns (the run row is read again: the stage
    may have linked the policy it registered)."""
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingRun.Status.SUCCEEDED, metrics=result.metrics, artifacts=result.artifacts
    )


def _rate_every_task(project) -> int:
    """One labeler ranks every open ranking task, canonical order (best first)."""
    rater = UserFactory(roles=[Role.LABELER])
    count = 0
    while (assignment := assignment_next(project=project, rater=rater)) is not None:
        ids = list(
            assignment.task.task_completions.order_by("position").values_list(
                "completion_id", flat=True
            )
        )
        judgment_submit(
            assignment_id=assignment.pk,
            rater=rater,
            client_key=uuid.uuid4(),
            ranking=[[i] for i in ids],
        )
        count += 1
    return count


def test_every_stage_that_runs_as_a_task_has_a_handler():
    assert set(HANDLERS) == {s for s in Stage if s not in (Stage.COLLECTING, Stage.DONE)} - {
        Stage.FAILED,
        Stage.CANCELLED,
    }


def test_the_stages_one_after_another(world, fake, tmp_path):
    project, base, training_round = world

    # sampling: K answers for each prompt of the round, one ranking task each
    run = _run(training_round, Stage.SAMPLING)
    result = sampling.execute(run)
    (config,) = fake.configs("sample")
    assert config["model"] == str(tmp_path / "base")  # from the policy registry
    assert Path(config["prompts"]).parent == artifact_path(run.out_dir)  # the round's folder
    assert (config["k"], config["seed"]) == (2, 1)  # the project's K; seed * 1000 + round
    assert result.metrics["tasks_created"] == TRAIN + TEST == result.metrics["tasks"]
    assert result.artifacts == {"samples": f"{run.out_dir}/samples/{contract.SAMPLES}"}
    assert Task.objects.filter(project=project, kind=Task.Kind.RANKING).count() == TRAIN + TEST
    _finish(run, result)

    # exporting: a snapshot of the judgments
    assert _rate_every_task(project) == TRAIN + TEST
    run = _run(training_round, Stage.EXPORTING)
    result = exporting.execute(run)
    training_round.refresh_from_db()
    snapshot = training_round.snapshot
    assert result.metrics == {"snapshot_id": snapshot.pk, **snapshot.row_counts}
    assert snapshot.row_counts[contract.RANKINGS] == TRAIN + TEST
    _finish(run, result)

    # sft: 3 demonstrations of train prompts to train on, 1 of a test prompt held out
    rater = UserFactory(roles=[Role.LABELER])
    for prompt in [
        *Prompt.objects.filter(split="train")[:3],
        Prompt.objects.get(text="Question 5?"),
    ]:
        Demonstration.objects.create(prompt=prompt, rater=rater, text=f"Ideal: {prompt.text}")
    training_round.snapshot = None  # export again, now with the demonstrations
    training_round.save()
    snapshot = exporting.execute(TrainingRun.objects.get(round=training_round, stage="exporting"))
    training_round.refresh_from_db()
    run = _run(training_round, Stage.SFT)
    result = training.sft(run)
    (config,) = fake.configs("sft")
    assert config["model"] == str(tmp_path / "base")
    assert len(contract.read_demonstrations(config["train"])) == 3
    assert [d.prompt for d in contract.read_demonstrations(config["valid"])] == ["Question 5?"]
    sft_policy = PolicyVersion.objects.get(name="round-1-sft")
    assert (sft_policy.kind, sft_policy.parent) == ("sft", base)
    assert result.metrics["policy_id"] == sft_policy.pk
    assert (result.metrics["demonstrations"], result.metrics["held_out_demonstrations"]) == (3, 1)
    _finish(run, result)

    # rm: from the SFT policy, on train prompts' rankings; test prompts' rankings held out
    run = _run(training_round, Stage.RM)
    result = training.rm(run)
    (config,) = fake.configs("rm")
    assert config["model"] == str(artifact_path(sft_policy.artifact_uri))
    assert len(contract.read_rankings(config["train"])) == TRAIN
    held_out = {r.prompt for r in contract.read_rankings(config["valid"])}
    assert held_out == {"Question 4?", "Question 5?"}
    assert result.metrics["held_out_source"] == "valid/test prompts"
    _finish(run, result)

    # ppo: from the SFT policy, KL measured from it, against this round's reward model
    run = _run(training_round, Stage.PPO)
    result = training.ppo(run)
    (config,) = fake.configs("ppo")
    sft_dir = str(artifact_path(sft_policy.artifact_uri))
    assert (config["policy"], config["reference"]) == (sft_dir, sft_dir)
    assert config["reward_model"] == str(artifact_path(f"{round_folder(training_round)}/rm/model"))
    assert (config["split"], config["resume"]) == ("train", True)
    assert config["total_steps"] == round_config(preset="tiny")["ppo"]["total_steps"]
    new_policy = PolicyVersion.objects.get(name="round-1-ppo")
    assert new_policy.parent == sft_policy
    assert training.ppo(run).metrics["policy_id"] == new_policy.pk  # again: the same policy
    assert PolicyVersion.objects.filter(kind="ppo").count() == 1
    _finish(run, result)

    # evaluating: win rates vs the parent and the root, the hidden rule, human A/B tasks
    run = _run(training_round, Stage.EVALUATING)
    result = evaluating.execute(run)
    by_label = {Path(c["out"]).name: c for c in fake.configs("eval")}
    assert set(by_label) == {
        "vs_parent",
        "vs_root",
        "hidden_rule",
        "hidden_rule_vs_root",
        "rm_heldout",
    }
    assert by_label["vs_parent"]["reference_policy"] == str(tmp_path / "base")
    assert by_label["vs_root"]["reference_policy"] == sft_dir
    assert by_label["hidden_rule"]["score_fn"] == "hidden_rule"
    assert by_label["hidden_rule"]["completions"].endswith(f"vs_parent/{contract.COMPLETIONS}")
    # the rule judges the answers against the root too, and the RM on the held-out rankings
    assert by_label["hidden_rule_vs_root"]["completions"].endswith(
        f"vs_root/{contract.COMPLETIONS}"
    )
    held = by_label["rm_heldout"]
    assert (held["score_fn"], held["reward_model"]) == ("hidden_rule", config["reward_model"])
    assert {r.prompt for r in contract.read_rankings(held["rankings"])} == held_out
    learning = result.metrics["learning"]
    assert set(learning) >= {
        "rm_accuracy",
        "rm_accuracy_consensus",
        "agreement_ceiling",
        "ppo",
        "win_rate_hidden_rule",
        "hidden_rule_on_consensus",
    }
    assert result.metrics["ab_tasks"] == 1  # ab_tasks: 1
    ab = Task.objects.get(project=project, kind=Task.Kind.EVALUATION)
    texts = sorted(ab.completions.values_list("text", flat=True))
    assert texts[0].startswith("new ") and texts[1].startswith("old ")
    new_policy.refresh_from_db()
    assert new_policy.metadata["win_rate_vs_parent"] == {"win_rate": 0.75, "n": 2}
    assert evaluating.execute(run).metrics["ab_tasks"] == 1  # again: no second set of tasks
    assert Task.objects.filter(kind=Task.Kind.EVALUATION).count() == 1


def test_sft_is_skipped_without_enough_demonstrations(world, fake):
    project, _, training_round = world
    sampling.execute(_run(training_round, Stage.SAMPLING))
    _rate_every_task(project)
    exporting.execute(_run(training_round, Stage.EXPORTING))
    training_round.refresh_from_db()
    result = training.sft(_run(training_round, Stage.SFT))
    assert result.metrics["skipped"] is True and result.metrics["demonstrations"] == 0
    assert "fewer than sft_min_demonstrations (2)" in result.metrics["reason"]
    assert fake.configs("sft") == [] and not PolicyVersion.objects.filter(kind="sft").exists()


def test_exporting_without_judgments_fails_with_the_filters_named(world, fake):
    _, _, training_round = world
    with pytest.raises(StageError, match=r"No judgments passed the snapshot's filters"):
        exporting.execute(_run(training_round, Stage.EXPORTING))


def test_a_reward_model_with_only_held_out_rankings_is_refused(world, fake):
    project, _, training_round = world
    Prompt.objects.filter(project=project).update(split="test")
    sampling.execute(_run(training_round, Stage.SAMPLING))
    _rate_every_task(project)
    exporting.execute(_run(training_round, Stage.EXPORTING))
    training_round.refresh_from_db()
    with pytest.raises(StageError, match="Every ranking is of a held-out prompt"):
        training.rm(_run(training_round, Stage.RM))
    assert fake.configs("rm") == []


def test_ppo_needs_the_reward_model_and_says_so(world, fake):
    _, _, training_round = world
    with pytest.raises(StageError, match="The reward model stage of this round has not succeeded"):
        training.ppo(_run(training_round, Stage.PPO))


def test_a_trainer_error_is_the_stage_error(world, fake):
    _, _, training_round = world
    fake.returncode, fake.output = 2, "loading...\nerror: prompts.jsonl:3: missing field 'prompt'\n"
    with pytest.raises(StageError, match="trainer sample: prompts.jsonl:3: missing field"):
        sampling.execute(_run(training_round, Stage.SAMPLING))
    assert not Task.objects.exists()  # the stage made no task


def _stage_done(training_round: TrainingRound, stage: Stage, handler) -> None:
    run = _run(training_round, stage)
    _finish(run, handler(run))
    training_round.refresh_from_db()


def _ready_for_ppo(project, training_round, demonstrations: int) -> None:
    """Sampled, rated, exported (with `demonstrations` of train prompts) and an RM trained."""
    _stage_done(training_round, Stage.SAMPLING, sampling.execute)
    _rate_every_task(project)
    rater = UserFactory(roles=[Role.LABELER])
    for prompt in Prompt.objects.filter(project=project, split="train")[:demonstrations]:
        Demonstration.objects.create(prompt=prompt, rater=rater, text=f"Ideal: {prompt.text}")
    _stage_done(training_round, Stage.EXPORTING, exporting.execute)
    _stage_done(training_round, Stage.RM, training.rm)


def test_ppo_ptx_reads_the_snapshots_demonstrations(world, fake):
    project, _, training_round = world
    training_round.config["ppo"]["ptx_coef"] = 0.5
    training_round.save(update_fields=["config"])
    _ready_for_ppo(project, training_round, demonstrations=3)
    training.ppo(_run(training_round, Stage.PPO))
    (config,) = fake.configs("ppo")
    assert config["ptx_coef"] == 0.5
    rows = contract.read_demonstrations(config["ptx"])
    assert sorted(d.completion for d in rows) == [f"Ideal: Question {i}?" for i in range(3)]


def test_ppo_ptx_without_demonstrations_is_refused_before_training(world, fake):
    project, _, training_round = world
    training_round.config["ppo"]["ptx_coef"] = 0.5
    training_round.save(update_fields=["config"])
    _ready_for_ppo(project, training_round, demonstrations=0)
    with pytest.raises(StageError, match=r"ptx_coef > 0 .* no demonstration of a train prompt"):
        training.ppo(_run(training_round, Stage.PPO))
    assert fake.configs("ppo") == []
    assert not PolicyVersion.objects.filter(kind="ppo").exists()


def test_ppo_without_ptx_sends_no_ptx_text(world, fake):
    project, _, training_round = world
    _ready_for_ppo(project, training_round, demonstrations=3)
    training.ppo(_run(training_round, Stage.PPO))
    (config,) = fake.configs("ppo")
    assert "ptx" not in config
