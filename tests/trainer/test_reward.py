import json
import math
from pathlib import Path

import pytest
import torch

from tests.trainer.conftest import count_rule_rankings, ranking_row
from trainer import models
from trainer.data import Ranking, read_hh_rlhf
from trainer.reward import (
    RewardConfig,
    batch_rewards,
    collate,
    encode_ranking,
    encode_scored,
    evaluate_rankings,
    fit_reward_bias,
    score_pairs,
    train_reward_model,
)

HH_RLHF = Path(__file__).resolve().parents[3] / "shared/data/hh-rlhf/harmless-base-test.jsonl.gz"


def assert_training_answers_centred(model, tokenizer, train, config, metrics):
    """The saved reward model, run whole, gives the training answers (the first
    reference_limit of them, the bias's reference) a mean reward of 0, and they differ."""
    answers = list(dict.fromkeys((r.prompt, c) for r in train for c in r.completions))
    scores = score_pairs(model, tokenizer, answers[: config.reference_limit], 64, 16, "fp32")
    assert sum(scores) / len(scores) == pytest.approx(0.0, abs=1e-4)
    assert metrics["reward_bias"] == pytest.approx(model.config.reward_bias)
    assert max(scores) - min(scores) > 0.1


def test_k_way_batch_scores_each_completion_like_a_lone_pass(tiny_dir):
    model, tokenizer = models.load_scalar_model(str(tiny_dir))
    rankings = [
        Ranking("Q:", ["a", "bbbbbb", "cc"], [[0], [1, 2]]),
        Ranking("Longer question:", ["x", "yy"], [[1], [0]]),
    ]
    encoded = [encode_ranking(tokenizer, r, 64) for r in rankings]
    batch = collate(encoded, tokenizer.pad_token_id)
    # 3 + 2 completions flattened into one trunk batch; ranks padded with -1
    assert batch["input_ids"].size(0) == 5
    assert batch["ranks"].tolist() == [[0, 1, 1], [1, 0, -1]]
    with torch.no_grad():
        rewards = batch_rewards(model, batch, torch.device("cpu"))
        for b, item in enumerate(encoded):
            for i, row in enumerate(item.rows):
                ids = torch.tensor([row])
                alone = models.reward_scores(model, ids, torch.ones_like(ids))
                assert rewards[b, i].item() == pytest.approx(alone.item(), abs=1e-5)
    # the reward is read at the final EOS token of each row
    assert all(row[-1] == tokenizer.eos_token_id for item in encoded for row in item.rows)


def test_bias_makes_reference_completions_score_zero(tiny_dir):
    model, tokenizer = models.load_scalar_model(str(tiny_dir))
    torch.nn.init.normal_(models.scalar_head(model).weight, std=1.0)
    pairs = [("Q:", "abc"), ("Q:", "zzzzzz"), ("Other:", "1 2 3")]
    bias = fit_reward_bias(model, tokenizer, pairs, 64)
    assert model.config.reward_bias == bias
    rows = [encode_ranking(tokenizer, Ranking(p, [c, c], [[0, 1]]), 64).rows[0] for p, c in pairs]
    scores = []
    for row in rows:
        ids = torch.tensor([row])
        scores.append(models.reward_scores(model, ids, torch.ones_like(ids)).item())
    assert sum(scores) / 3 == pytest.approx(0.0, abs=1e-5)
    assert max(abs(s) for s in scores) > 1e-3  # the scores differ, only their mean is 0


def test_held_out_accuracy_against_the_consensus_ignores_an_inverted_rater(tiny_dir):
    with torch.random.fork_rng():  # leave the global generator to the tests after this one
        torch.manual_seed(0)
        model, tokenizer = models.load_scalar_model(str(tiny_dir))
        torch.nn.init.normal_(models.scalar_head(model).weight, std=1.0)
    honest = count_rule_rankings(6, k=4, seed=5)
    rankings = []
    for task_id, ranking in enumerate(honest):
        inverted = list(reversed(ranking.ranking))
        rankings += [
            Ranking(ranking.prompt, ranking.completions, ranking.ranking, 1.0, "a", task_id),
            Ranking(ranking.prompt, ranking.completions, ranking.ranking, 1.0, "b", task_id),
            Ranking(ranking.prompt, ranking.completions, inverted, 0.0, "adversary", task_id),
        ]
    alone = evaluate_rankings(model, tokenizer, honest, 64)
    held_out = evaluate_rankings(model, tokenizer, rankings, 64)
    # the consensus of each task is the honest ranking: the same hits, one task per ranking
    assert held_out["consensus_accuracy"] == pytest.approx(alone["accuracy"])
    assert held_out["consensus_pairs"] == alone["pairs"] > 20
    assert held_out["consensus_tasks"] == 6
    # against every rater, the inverted rankings count: accuracy is (2a + (1 - a)) / 3
    assert held_out["accuracy"] == pytest.approx((1 + alone["accuracy"]) / 3)
    assert alone["accuracy"] != pytest.approx(0.5)  # the two figures differ


def test_held_out_scoring_reads_each_distinct_answer_once(tiny_dir, monkeypatch):
    from trainer import reward

    with torch.random.fork_rng():  # leave the global generator to the tests after this one
        torch.manual_seed(0)
        model, tokenizer = models.load_scalar_model(str(tiny_dir))
        torch.nn.init.normal_(models.scalar_head(model).weight, std=1.0)
    scored = []
    score_texts = reward.score_texts

    def counting(model, tokenizer, prompts, completions, *args, **kwargs):
        scored.extend(zip(prompts, completions, strict=True))
        return score_texts(model, tokenizer, prompts, completions, *args, **kwargs)

    monkeypatch.setattr(reward, "score_texts", counting)
    task = count_rule_rankings(1, k=4, seed=5)[0]
    rankings = [
        Ranking(task.prompt, task.completions, task.ranking, 1.0, rater, 0)
        for rater in ("a", "b", "c")
    ]
    result = evaluate_rankings(model, tokenizer, rankings, 64)
    assert sorted(scored) == sorted((task.prompt, c) for c in task.completions)  # 4, not 12
    # three identical rankings: each one's accuracy is the task's, its strict pairs thrice
    lone = evaluate_rankings(model, tokenizer, rankings[:1], 64)
    assert result["pairs"] == 3 * lone["pairs"] == 3 * len(task.strict_pairs()) > 0
    assert result["accuracy"] == pytest.approx(lone["accuracy"])
    assert result["loss"] == pytest.approx(lone["loss"])


@pytest.mark.slow
def test_reward_model_learns_synthetic_preference_rule(tiny_dir, tmp_path):
    train = count_rule_rankings(240, k=4, seed=1)
    valid = count_rule_rankings(40, k=4, seed=2) + count_rule_rankings(40, k=3, seed=3)
    (tmp_path / "rankings.jsonl").write_text(
        "".join(json.dumps(ranking_row(r)) + "\n" for r in train)
    )
    config = RewardConfig(
        model=str(tiny_dir),
        train=str(tmp_path / "rankings.jsonl"),
        out=str(tmp_path / "rm"),
        epochs=3,
        batch_size=8,
        lr=3e-3,
        device="cpu",
        seed=0,
    )
    with torch.random.fork_rng():  # the fresh head's draw, whatever ran before this test
        torch.manual_seed(0)
        untrained = models.load_scalar_model(str(tiny_dir))[0]
    before = evaluate_rankings(untrained, models.load_tokenizer(str(tiny_dir)), valid, 64)
    metrics = train_reward_model(config, valid=valid)
    assert before["accuracy"] < 0.75
    assert metrics["valid_accuracy"] >= 0.9
    assert set(metrics["valid_accuracy_by_k"]) == {"3", "4"}
    assert min(metrics["valid_accuracy_by_k"].values()) >= 0.85
    assert metrics["steps"] == 3 * 30
    steps = [json.loads(line) for line in (tmp_path / "rm/metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 90 and steps[-1]["loss"] < steps[0]["loss"]
    assert steps[0]["total_steps"] == 90
    # the saved directory loads with from_pretrained and reproduces the held-out accuracy
    reloaded, tokenizer = models.load_scalar_model(str(tmp_path / "rm"))
    again = evaluate_rankings(reloaded, tokenizer, valid, 64)
    assert again["accuracy"] == pytest.approx(metrics["valid_accuracy"])
    # fine-tuned: the bias came from scoring the training answers with the trained model
    assert_training_answers_centred(reloaded, tokenizer, train, config, metrics)
    assert reloaded.config.reward_bias == pytest.approx(metrics["reward_bias"])
    saved_config = json.loads((tmp_path / "rm" / models.TRAINER_CONFIG_FILE).read_text())
    assert saved_config["lr"] == 3e-3


def test_one_reward_model_step_on_real_hh_rlhf_pairs(tiny_dir, tmp_path):
    rankings, _ = read_hh_rlhf(HH_RLHF, limit=12)
    config = RewardConfig(
        model=str(tiny_dir),
        train="hh-rlhf",
        out=str(tmp_path / "rm"),
        batch_size=8,
        max_steps=1,
        lr=1e-3,
        max_length=192,
        device="cpu",
        reference_limit=8,
    )
    metrics = train_reward_model(config, train=rankings[:8], valid=rankings[8:])
    (step,) = [
        json.loads(line) for line in (tmp_path / "rm/metrics.jsonl").read_text().splitlines()
    ]
    assert metrics["steps"] == 1 and metrics["train_rankings"] == 8
    # a fresh head gives rewards near 0, so the pairwise loss starts near log 2
    assert step["loss"] == pytest.approx(math.log(2), abs=0.05)
    assert metrics["valid_pairs"] == 4
    before = models.load_scalar_model(str(tiny_dir))[0].state_dict()
    after = models.load_scalar_model(str(tmp_path / "rm"))[0].state_dict()
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(before[key], after[key])


def test_lora_reward_model_merges_into_a_plain_directory(tiny_dir, tmp_path):
    train = count_rule_rankings(16, k=3, seed=5)
    metrics = train_reward_model(
        RewardConfig(
            model=str(tiny_dir),
            train="synthetic",
            out=str(tmp_path / "rm"),
            max_steps=2,
            batch_size=4,
            lr=1e-2,
            lora_r=4,
            device="cpu",
            valid_fraction=0.25,
        ),
        train=train,
    )
    assert metrics["steps"] == 2
    merged, _ = models.load_scalar_model(str(tmp_path / "rm"))
    base, _ = models.load_scalar_model(str(tiny_dir))
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not any("lora" in k for k in merged.state_dict())
    assert not torch.equal(merged.state_dict()[key], base.state_dict()[key])
    assert merged.config.reward_bias == pytest.approx(metrics["reward_bias"])


def test_head_fit_on_frozen_mean_features_learns_the_rule_without_fine_tuning(tiny_dir, tmp_path):
    train = count_rule_rankings(160, k=4, seed=1)
    valid = count_rule_rankings(60, k=4, seed=2)
    config = RewardConfig(
        model=str(tiny_dir),
        train="unused",
        out=str(tmp_path / "rm"),
        epochs=0,
        head_fit=True,
        pooling="mean",
        feature_layers=[1, 2],
        head_l2=[0.001, 0.1],
        device="cpu",
    )
    metrics = train_reward_model(config, train=train, valid=valid)
    assert metrics["steps"] == 0
    # every depth × penalty was cross-validated, and the chosen one is the table's best
    assert set(metrics["head_cv"]) == {"1/0.001", "1/0.1", "2/0.001", "2/0.1"}
    best = max(metrics["head_cv"].values())
    assert metrics["head_cv_accuracy"] == best
    assert metrics["head_depth"] in (1, 2) and metrics["head_l2"] in (0.001, 0.1)
    # a random tiny trunk's mean state counts the x's: the frozen head ranks well
    assert metrics["valid_accuracy"] >= 0.9
    low, high = metrics["valid_accuracy_ci"]
    assert low < metrics["valid_accuracy"] < high or low == high == 1.0
    assert metrics["valid_pairs"] == sum(len(r.strict_pairs()) for r in valid)
    # the saved model keeps the chosen blocks only, reads mean states, and reproduces it
    reloaded, tokenizer = models.load_scalar_model(str(tmp_path / "rm"))
    assert reloaded.config.num_hidden_layers == metrics["head_depth"]
    assert reloaded.config.reward_pooling == "mean"
    again = evaluate_rankings(reloaded, tokenizer, valid, 64)
    assert again["accuracy"] == pytest.approx(metrics["valid_accuracy"])
    # the head alone: the bias came from its features, without another pass
    assert_training_answers_centred(reloaded, tokenizer, train, config, metrics)


def test_mean_pooling_reads_the_completion_tokens_only(tiny_dir):
    model, tokenizer = models.load_scalar_model(str(tiny_dir))
    model.config.reward_pooling = "mean"
    torch.nn.init.normal_(models.scalar_head(model).weight, std=1.0)
    row, (start, end) = encode_scored(tokenizer, "Question?", "abc", 64)
    # the span covers "abc" and not the prompt or the appended EOS
    assert tokenizer.decode(row[start:end]) == "abc" and row[end] == tokenizer.eos_token_id
    ids = torch.tensor([row])
    mask = torch.ones_like(ids)
    completion = models.span_mask(len(row), [start], [end])
    with torch.no_grad():
        states = models.trunk_states(model, ids, mask)[0]
        by_hand = models.scalar_head(model)(states[start:end].mean(0)).item()
        assert models.reward_scores(model, ids, mask, completion).item() == pytest.approx(
            by_hand, abs=1e-5
        )
    # an empty completion keeps its EOS to read
    assert models.completion_span(5, 6, ends_with_eos=True) == (5, 6)
    assert models.completion_span(5, 9, ends_with_eos=False) == (5, 9)
