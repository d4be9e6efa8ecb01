"""Two complete rounds on CPU with tiny models and simulated raters through the REST API."""

from __future__ import annotations

import os
import random
import time

import pytest
from django.core.management import call_command

from apps.collection import leasing
from apps.collection.models import Completion, Demonstration, PolicyVersion, Prompt, Task
from apps.collection.services import membership_add
from apps.core.roles import Role
from apps.loop import models, policies, selectors, watchdog
from apps.loop.models import DatasetSnapshot, Stage, TrainingRound, TrainingRun
from tests.factories import UserFactory
from tests.loop.conftest import make_loop_project

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TRAIN_PROMPTS, TEST_PROMPTS, K = 48, 32, 6
# Round 1 carries the claim: ~100 rankings (48 prompts × overlap 2) of K = 6 answers, so
# C(6, 2) = 15 pairs each, for the reward model; 32 test prompts for the hidden-rule win rate.
# Round 2 only has to close the loop (sample from round 1's policy, train, register), so it
# is lighter; raters have written demonstrations by then, so it fine-tunes an SFT policy
# first (round 1 has none and skips the stage).
ROUND1 = {
    "prompts_per_round": TRAIN_PROMPTS,
    "target_judgments": 96,
    "eval_hidden_rule": True,
    "ab_tasks": 6,
}
ROUND2 = {
    "prompts_per_round": TRAIN_PROMPTS,
    "target_judgments": 48,
    # round 1's reward model scores 8 samples per prompt; each task shows the K it is least
    # sure of, the most uncertain prompts first
    "selection": "uncertainty",
    "samples_per_prompt": K + 2,
    "ab_tasks": 6,
    "rm": {"epochs": 1},
    "ppo": {"total_steps": 2},
}


def _rate(live_server, project, max_judgments: int) -> None:
    # 8 raters of noise σ in [0.05, 0.3] on the rule's scale; 1 of them adversarial
    call_command(
        "simulate_raters",
        url=live_server.url,
        project=project.pk,
        raters=8,
        adversarial=1,
        max_judgments=max_judgments,
        max_seconds=90,
        noise_min=0.05,
        noise_max=0.3,
        seed=7,
    )


@pytest.fixture
def e2e_project(db, tiny_model_dir):
    project = make_loop_project(train=TRAIN_PROMPTS, test=TEST_PROMPTS, k=K)
    base = PolicyVersion.objects.create(
        project=project, name="tiny-base", kind="base", artifact_uri=str(tiny_model_dir)
    )
    return project, base


def test_two_rounds_close_the_loop(e2e_project, stages, live_server, api_as, monkeypatch):
    # Sampling, the simulated raters (who take turns), RM and PPO are seeded and deterministic
    # on CPU; the per-rater display order (leasing._rng) is the one thing left to chance, so
    # each run draws other rankings, as production would. The claim must hold for any draw
    # (docs/loop.md, "Tests": 16 of 16 draws passed, lowest 0.72); the draw's seed is printed
    # so that PREFLOOP_E2E_SEED=N replays a failing run exactly.
    seed = int(os.environ.get("PREFLOOP_E2E_SEED") or random.SystemRandom().randrange(2**32))
    print(f"display-order seed {seed} (PREFLOOP_E2E_SEED={seed} replays this draw)")
    monkeypatch.setattr(leasing, "_rng", random.Random(seed))
    project, base = e2e_project
    researcher = UserFactory(roles=[Role.RESEARCHER])
    membership_add(project=project, user=researcher, role=Role.RESEARCHER)
    api = api_as(researcher)
    started = time.monotonic()

    # round 1: start through the API, sample from the base policy
    response = api.post(
        f"/api/projects/{project.pk}/rounds/",
        {"preset": "tiny", "config": ROUND1},
        format="json",
    )
    assert response.status_code == 201, response.content
    round1 = TrainingRound.objects.get(pk=response.json()["id"])
    assert stages.drain() == ["succeeded"]
    round1.refresh_from_db()
    assert round1.stage == Stage.COLLECTING
    sampled = Completion.objects.filter(round_number=1, policy_version=base)
    assert sampled.count() == TRAIN_PROMPTS * project.k
    assert all(c.sampling_params.get("temperature") == 1.0 and c.seed for c in sampled)

    # collecting: simulated raters over HTTP, then the watchdog advances the round
    _rate(live_server, project, max_judgments=96)
    assert selectors.collecting_judgments(training_round=round1) >= 96
    watchdog.rounds_watch()
    round1.refresh_from_db()
    assert round1.stage == Stage.EXPORTING
    assert stages.drain() == ["succeeded"] * 5  # exporting, sft (skipped), rm, ppo, evaluating
    round1.refresh_from_db()
    assert round1.stage == Stage.DONE, round1.message

    sft1 = TrainingRun.objects.get(round=round1, stage=Stage.SFT)
    assert sft1.metrics["skipped"] is True and sft1.produced_policy is None
    assert sft1.metrics["demonstrations"] == 0
    ppo1 = TrainingRun.objects.get(round=round1, stage=Stage.PPO)
    policy1 = ppo1.produced_policy
    assert policy1.parent == base and policy1.kind == "ppo"
    assert ppo1.metric_rows.count() == ppo1.metrics["steps_done"]  # streamed, step by step
    evaluation = TrainingRun.objects.get(round=round1, stage=Stage.EVALUATING).metrics
    hidden = evaluation["hidden_rule"]["win_rate"]["overall"]
    rm_metrics = TrainingRun.objects.get(round=round1, stage=Stage.RM).metrics
    print(
        f"round 1: hidden-rule win rate {hidden}, RM held-out accuracy "
        f"{evaluation['rm_accuracy']} on {evaluation['rm_accuracy_pairs']} pairs, "
        f"PPO score {ppo1.metrics.get('score_first')} -> {ppo1.metrics.get('score_last')}, "
        f"RM steps {rm_metrics.get('steps')}, {time.monotonic() - started:.0f}s"
    )
    # judged by the raters' hidden rule itself (apps/loop/scoring.py), not by the RM
    assert hidden["n"] == TEST_PROMPTS
    assert hidden["win_rate"] > 0.6, f"display-order seed {seed}: {hidden}"
    # the round page's 'learning' summary says so with its n and CIs (issue 11's checks, at
    # this model's size: bench/demo_round.py --check asserts them on SmolLM2)
    learning = evaluation["learning"]
    print(f"learning: {learning}")
    assert learning["win_rate_hidden_rule"]["n"] == TEST_PROMPTS
    assert learning["win_rate_hidden_rule"]["ci_low"] > 0.5, f"seed {seed}: {learning}"
    assert learning["win_rate_reward_model"]["n"] == TEST_PROMPTS
    ppo_learnt = learning["ppo"]
    assert ppo_learnt["score_last_quarter"] > ppo_learnt["score_first_quarter"]
    assert (
        ppo_learnt["kl_last_quarter"] is not None
        and ppo_learnt["steps"] == ppo1.metrics["steps_done"]
    )
    rm_learnt = learning["rm_accuracy"]
    assert rm_learnt["n_pairs"] >= 100 and rm_learnt["ci"][0] <= rm_learnt["value"]
    # (this project has no "valid" prompts, so the reward model holds out a share of the train
    # prompts itself and the snapshot has no held-out tasks to measure the raters' agreement
    # on; the demo project has them, and the bench checks RM accuracy against that ceiling)
    assert learning["agreement_ceiling"]["value"] is None
    assert evaluation["vs_parent"]["win_rate"]["by_category"]
    assert evaluation["rm_accuracy"] is not None
    assert Task.objects.filter(kind=Task.Kind.EVALUATION, round_number=1).count() == 6

    # demonstrations written meanwhile (the demonstration page is tested on its own):
    # 20 of train prompts, 4 of test prompts (held out for SFT's validation loss)
    rater = UserFactory(roles=[Role.LABELER])
    for split, count in (("train", 20), ("test", 4)):
        for prompt in Prompt.objects.filter(project=project, split=split)[:count]:
            Demonstration.objects.create(
                prompt=prompt, rater=rater, text=f"A short, kind answer about {prompt.text[14:]}"
            )

    # round 2 samples from round 1's policy
    response = api.post(
        f"/api/projects/{project.pk}/rounds/",
        {"preset": "tiny", "config": ROUND2},
        format="json",
    )
    assert response.status_code == 201, response.content
    round2 = TrainingRound.objects.get(pk=response.json()["id"])
    assert round2.start_policy == policy1
    assert stages.drain() == ["succeeded"]
    assert Completion.objects.filter(round_number=2, policy_version=policy1).exists()
    sampling2 = TrainingRun.objects.get(round=round2, stage=Stage.SAMPLING)
    rm1 = TrainingRun.objects.get(round=round1, stage=Stage.RM)
    assert sampling2.config["sample"]["reward_model"].endswith(rm1.artifacts["model"])
    assert sampling2.config["sample"]["k"] == K + 2
    chosen = sampling2.metrics["selection"]
    assert (chosen["strategy"], chosen["used"]) == ("uncertainty", "uncertainty")
    assert chosen["reward_model"] == f"run {rm1.pk} (round 1)"
    tasks2 = {t.pk: t for t in Task.objects.filter(round_number=2, kind=Task.Kind.RANKING)}
    assert len(chosen["tasks"]) == len(tasks2) == TRAIN_PROMPTS
    priorities = [row["priority"] for row in chosen["tasks"]]
    assert priorities == sorted(priorities, reverse=True) and len(set(priorities)) > 1
    for row in chosen["tasks"]:
        task = tasks2[row["task_id"]]
        assert task.priority == row["priority"]
        assert abs(row["priority"] - row["uncertainty"] * 30000) <= 2  # the card keeps 4 digits
        shown = task.task_completions.order_by("position")
        assert [tc.completion.sampling_params["index"] for tc in shown] == row["shown"]
        assert len(row["shown"]) == K and all(
            "reward" in tc.completion.sampling_params for tc in shown
        )
    _rate(live_server, project, max_judgments=60)  # some go to the A/B tasks
    watchdog.rounds_watch()
    assert stages.drain() == ["succeeded"] * 5
    round2.refresh_from_db()
    assert round2.stage == Stage.DONE, round2.message
    assert round2.snapshot.data_card["selection"]["used"] == "uncertainty"
    assert len(round2.snapshot.data_card["selection"]["tasks"]) == TRAIN_PROMPTS
    assert selectors.round_detail(training_round=round2)["selection"]["mean_uncertainty"] > 0
    # SFT: round 1's policy fine-tuned on the 20 train-prompt demonstrations
    sft2 = TrainingRun.objects.get(round=round2, stage=Stage.SFT)
    sft_policy = sft2.produced_policy
    assert sft_policy.kind == "sft" and sft_policy.parent == policy1
    assert sft2.metrics["demonstrations"] == 20 and sft2.metrics["held_out_demonstrations"] == 4
    assert sft2.config["sft"]["model"] == policies.policy_location(policy1)
    assert sft2.metrics["steps"] == 15  # 3 epochs × ceil(20 / 4)
    # RM and PPO start from the SFT policy, and PPO's KL penalty is measured from it
    assert TrainingRun.objects.get(round=round2, stage=Stage.RM).config["rm"][
        "model"
    ] == policies.policy_location(sft_policy)
    ppo2 = TrainingRun.objects.get(round=round2, stage=Stage.PPO)
    policy2 = ppo2.produced_policy
    assert ppo2.config["ppo"]["policy"] == policies.policy_location(sft_policy)
    assert ppo2.config["ppo"]["reference"] == policies.policy_location(sft_policy)
    evaluation2 = TrainingRun.objects.get(round=round2, stage=Stage.EVALUATING).metrics
    assert evaluation2["vs_parent"]["reference_policy"] == policy1.name
    assert evaluation2["vs_root"]["reference_policy"] == sft_policy.name

    # lineage: policy2 → round 2 → snapshot → judgments; policy2 → SFT → policy1 → base
    assert [p.name for p in selectors.policy_ancestry(policy=policy2)] == [
        policy2.name,
        sft_policy.name,
        policy1.name,
        base.name,
    ]
    assert (
        round2.snapshot.row_counts["rankings.jsonl"] > round1.snapshot.row_counts["rankings.jsonl"]
    )
    assert PolicyVersion.objects.filter(project=project, kind="ppo").count() == 2
    assert DatasetSnapshot.objects.filter(project=project).count() == 2
    lineage = api.get(f"/api/projects/{project.pk}/policies/").json()
    by_name = {row["name"]: row for row in lineage}
    assert by_name[policy2.name]["parent_id"] == sft_policy.pk
    assert by_name[sft_policy.name]["parent_id"] == policy1.pk
    assert by_name[sft_policy.name]["round_id"] == round2.pk
    assert by_name[sft_policy.name]["ab_evaluation"] is None  # the A/B tasks judge PPO's
    assert by_name[policy2.name]["snapshot_id"] == round2.snapshot_id
    assert set(by_name[policy2.name]["runs"]) == {s.value for s in models.STAGE_ORDER}
    assert by_name[policy1.name]["win_rate_vs_parent"]["n"] == TEST_PROMPTS
    print(f"two rounds in {time.monotonic() - started:.0f}s")
