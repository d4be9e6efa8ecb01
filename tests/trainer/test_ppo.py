import json
import math

import pytest
import torch

from tests.trainer.conftest import count_rule_rankings
from trainer import models
from trainer.data import write_jsonl
from trainer.ppo import PPOConfig, step_prompts, train_ppo
from trainer.reward import RewardConfig, train_reward_model
from trainer.scorers import brevity, digit_count


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    write_jsonl(
        path,
        [
            {"id": str(i), "prompt": f"Q{i}: say", "category": "generation", "split": "train"}
            for i in range(16)
        ]
        + [{"id": "t", "prompt": "held out", "category": "chat", "split": "test"}],
    )
    return path


def rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def base_config(tiny_dir, prompts_file, out, **overrides):
    settings = dict(
        policy=str(tiny_dir),
        prompts=str(prompts_file),
        out=str(out),
        batch_size=8,
        mini_batch_size=4,
        ppo_epochs=4,
        lr=3e-3,
        max_new_tokens=12,
        kl_coef=0.05,
        missing_eos_penalty=None,
        device="cpu",
        save_every=0,
    )
    settings.update(overrides)
    return PPOConfig(**settings)


@pytest.mark.slow
def test_ppo_raises_a_synthetic_reward_with_bounded_kl(tiny_dir, prompts_file, tmp_path):
    out = tmp_path / "ppo"
    metrics = train_ppo(
        base_config(tiny_dir, prompts_file, out, total_steps=40), score_fn=digit_count
    )
    # A random 98-token policy writes ~1.2 digits in 12 tokens (score ~0.3 per response);
    # the reward caps at 3.0 (12 digits).
    assert metrics["score_first"] < 1.0
    assert metrics["score_last"] > metrics["score_first"] + 1.5
    # beta = 0.05 holds the summed per-token KL to the reference below 30 nats per response
    assert metrics["kl_last"] < 30.0
    steps = rows(out)
    assert [r["step"] for r in steps] == list(range(1, 41))
    assert {r["total_steps"] for r in steps} == {40}
    assert steps[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # first rollout: policy == reference
    for key in (
        "approx_kl",
        "clip_fraction",
        "entropy",
        "kl",
        "score",
        "non_score_reward",
        "response_length",
        "value_loss",
        "policy_loss",
    ):
        assert steps[-1][key] is not None
    # non-score reward is -beta * KL summed over the response
    assert steps[-1]["non_score_reward"] == pytest.approx(-0.05 * steps[-1]["kl"], rel=1e-4)
    # the trained policy is a save_pretrained directory that writes more digits greedily
    policy, tokenizer = models.load_policy(str(out))
    assert (out / "value_model" / "config.json").is_file()
    ids = torch.tensor([tokenizer("Q3: say")["input_ids"]])
    generated = policy.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=12,
        pad_token_id=tokenizer.pad_token_id,
    )
    text = tokenizer.decode(generated[0, ids.size(1) :], skip_special_tokens=True)
    assert sum(ch.isdigit() for ch in text) >= 6


def _kill_mid_save(out) -> None:
    """What a kill leaves between a save's two renames: the last whole checkpoint stepped
    aside to checkpoint.old, a half-written checkpoint.tmp, and a metrics row cut in half."""
    (out / "checkpoint").rename(out / "checkpoint.old")
    (out / "checkpoint.tmp/policy").mkdir(parents=True)
    (out / "checkpoint.tmp/policy/config.json").write_text("{}")
    with (out / "metrics.jsonl").open("a") as metrics:
        metrics.write('{"step": 3, "sco')


@pytest.mark.slow
@pytest.mark.parametrize("killed_mid_save", [False, True], ids=["stopped", "killed-mid-save"])
def test_resume_matches_an_uninterrupted_run(tiny_dir, prompts_file, tmp_path, killed_mid_save):
    straight = tmp_path / "straight"
    train_ppo(base_config(tiny_dir, prompts_file, straight, total_steps=4), score_fn=digit_count)
    resumed = tmp_path / "resumed"
    first = train_ppo(
        base_config(tiny_dir, prompts_file, resumed, total_steps=4, stop_after=2),
        score_fn=digit_count,
    )
    assert first["finished"] is False and first["steps_done"] == 2
    assert (resumed / "checkpoint/policy/config.json").is_file()
    assert not (resumed / "model.safetensors").exists()
    if killed_mid_save:
        _kill_mid_save(resumed)
    second = train_ppo(
        base_config(tiny_dir, prompts_file, resumed, total_steps=4, resume=True),
        score_fn=digit_count,
    )
    assert second["start_step"] == 2 and second["finished"] is True
    a = models.load_policy(str(straight))[0].state_dict()
    b = models.load_policy(str(resumed))[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["step"] for r in rows(resumed)] == [1, 2, 3, 4]
    assert [r["score"] for r in rows(resumed)] == [r["score"] for r in rows(straight)]
    assert [r["kl"] for r in rows(resumed)] == [r["kl"] for r in rows(straight)]
    assert not (resumed / "checkpoint.old").exists() and not (resumed / "checkpoint.tmp").exists()


@pytest.mark.slow
def test_min_new_tokens_stops_a_collapse_to_empty_answers(tiny_dir, prompts_file, tmp_path):
    # a reward for stopping early (the shortcut a tiny reward model can learn): unconstrained
    # PPO ends at EOS as the first token, i.e. empty answers
    free = tmp_path / "free"
    train_ppo(base_config(tiny_dir, prompts_file, free, total_steps=20), score_fn=brevity)
    assert rows(free)[-1]["response_length"] <= 2.0
    kept = tmp_path / "kept"
    train_ppo(
        base_config(tiny_dir, prompts_file, kept, total_steps=20, min_new_tokens=4),
        score_fn=brevity,
    )
    steps = rows(kept)
    # four tokens, then EOS at the earliest (the EOS counts in the length)
    assert all(r["response_length"] >= 5.0 for r in steps)
    assert steps[-1]["response_length"] < 8.0  # it still learns to be brief within the rule
    # the reference is masked the same way: the first rollout has zero KL to it
    assert steps[0]["kl"] == pytest.approx(0.0, abs=1e-4)
    assert all(math.isfinite(r["entropy"]) for r in steps)


def test_step_prompts_cycle_through_shuffled_epochs():
    prompts = list(range(5))
    seen = [p for step in range(5) for p in step_prompts(prompts, step, 2, seed=3)]
    assert sorted(seen[:5]) == prompts and sorted(seen[5:10]) == prompts
    assert step_prompts(prompts, 1, 2, seed=3) == step_prompts(prompts, 1, 2, seed=3)
    # groups: 6 responses, 3 per prompt -> 2 prompts, each three times in a row
    grouped = step_prompts(prompts, 0, 6, seed=3, samples_per_prompt=3)
    assert grouped == [seen[0]] * 3 + [seen[1]] * 3


@pytest.mark.slow
def test_rloo_in_bf16_raises_a_synthetic_reward_without_a_value_model(
    tiny_dir, prompts_file, tmp_path
):
    out = tmp_path / "rloo"
    rloo = dict(
        batch_size=16, mini_batch_size=8, samples_per_prompt=4, advantage="rloo", precision="bf16"
    )
    config = base_config(tiny_dir, prompts_file, out, total_steps=30, **rloo)
    metrics = train_ppo(config, score_fn=digit_count)
    # ~0.4 at the start (a random policy's digits); the cap is 3.0 (12 digits)
    assert metrics["score_last"] > metrics["score_first"] + 1.5
    assert rows(out)[-1]["value_loss"] is None  # no value model at all
    assert not (out / "value_model").exists()

    # LoRA on the last block only: with the adapters off as the reference, the first rollout's
    # KL is exactly 0 (same bf16 computation), and only that block's weights change
    lora = tmp_path / "lora"
    config = base_config(
        tiny_dir, prompts_file, lora, total_steps=2, lora_r=8, lora_layers=1, lr=1e-2, **rloo
    )
    train_ppo(config, score_fn=digit_count)
    steps = rows(lora)
    assert steps[0]["kl"] == 0.0
    assert steps[0]["ratio"] == pytest.approx(1.0, abs=0.01)  # an average over 4 updates
    base = models.load_policy(str(tiny_dir))[0].state_dict()
    trained = models.load_policy(str(lora))[0].state_dict()
    changed = {k.split(".")[2] for k in base if not torch.equal(base[k], trained[k])}
    assert changed == {"1"}  # model.layers.1.*


def test_sampling_copy_follows_the_lora_policy(tiny_dir):
    policy = models.apply_lora(
        models.load_policy(str(tiny_dir))[0], 4, 8, 0.0, "CAUSAL_LM", last_layers=1
    )
    for name, param in policy.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.1)
    copy = models.SamplingCopy(policy, str(tiny_dir)).sync()
    assert next(copy.parameters()).dtype == torch.bfloat16
    ids = torch.randint(3, 90, (2, 12))
    with torch.no_grad():
        expected = policy(input_ids=ids).logits
        got = copy(input_ids=ids).logits.float()
    assert (expected - got).abs().max() < 0.05 * expected.abs().max()  # bf16 rounding only
    with pytest.raises(Exception, match="rloo"):
        train_ppo(
            PPOConfig(policy=str(tiny_dir), prompts="x", out="y", advantage="rloo", score_fn="a:b")
        )


@pytest.mark.slow
def test_ppo_with_reward_model_ptx_lora_adaptive_kl_and_eos_penalty(
    tiny_dir, prompts_file, tmp_path
):
    rankings = tmp_path / "rankings.jsonl"
    write_jsonl(
        rankings,
        [
            {"prompt": r.prompt, "completions": r.completions, "ranking": r.ranking}
            for r in count_rule_rankings(16, 3, seed=4)
        ],
    )
    rm_dir = tmp_path / "rm"
    train_reward_model(
        RewardConfig(
            model=str(tiny_dir),
            train=str(rankings),
            out=str(rm_dir),
            max_steps=2,
            lr=1e-3,
            device="cpu",
            valid_fraction=0.25,
        )
    )
    ptx = tmp_path / "ptx.jsonl"
    write_jsonl(ptx, [{"text": "The quick brown fox."}, {"prompt": "Q:", "completion": "A."}])
    out = tmp_path / "ppo"
    metrics = train_ppo(
        base_config(
            tiny_dir,
            prompts_file,
            out,
            reward_model=str(rm_dir),
            total_steps=2,
            ptx=str(ptx),
            ptx_coef=0.5,
            lora_r=4,
            adaptive_kl=True,
            kl_coef=0.1,
            kl_target=1.0,
            kl_horizon=100,
            missing_eos_penalty=2.0,
            max_new_tokens=6,
            lr=1e-3,
        )
    )
    steps = rows(out)
    assert all(r["ptx_loss"] is not None and r["ptx_loss"] > 0 for r in steps)
    for r in steps:
        # a response without EOS loses 2.0
        expected = r["score"] - 2.0 * (1.0 - r["eos_fraction"])
        assert r["score_with_penalty"] == pytest.approx(expected, abs=1e-5)
    # adaptive beta: beta_2 = beta_1 * (1 + clip(KL_1 / 1 - 1, -0.2, 0.2) * 8 / 100)
    error = max(min(steps[0]["kl"] / 1.0 - 1.0, 0.2), -0.2)
    assert steps[1]["beta"] == pytest.approx(0.1 * (1 + error * 8 / 100))
    # LoRA adapters are merged: the output loads as a plain causal LM with changed weights
    policy = models.load_policy(str(out))[0].state_dict()
    base = models.load_policy(str(tiny_dir))[0].state_dict()
    key = "model.layers.0.self_attn.q_proj.weight"
    assert policy.keys() == base.keys() and not torch.equal(policy[key], base[key])
    assert metrics["finished"] is True


def test_value_model_starts_as_the_reward_model(tiny_dir, prompts_file, tmp_path):
    rankings = tmp_path / "rankings.jsonl"
    write_jsonl(
        rankings,
        [
            {"prompt": r.prompt, "completions": r.completions, "ranking": r.ranking}
            for r in count_rule_rankings(8, 3, seed=6)
        ],
    )
    rm_dir = tmp_path / "rm"
    train_reward_model(
        RewardConfig(
            model=str(tiny_dir),
            train=str(rankings),
            out=str(rm_dir),
            max_steps=1,
            lr=1e-2,
            device="cpu",
            valid_fraction=0.25,
        )
    )
    out = tmp_path / "ppo"
    # lr 0: nothing moves, so the saved value model is its initialisation
    metrics = train_ppo(
        base_config(tiny_dir, prompts_file, out, reward_model=str(rm_dir), total_steps=1, lr=0.0)
    )
    value = models.load_scalar_model(str(out / "value_model"))[0].state_dict()
    reward = models.load_scalar_model(str(rm_dir))[0].state_dict()
    assert value.keys() == reward.keys()
    assert all(torch.equal(value[k], reward[k]) for k in reward)
    assert torch.count_nonzero(reward["score.weight"]) > 0
    assert metrics["steps_done"] == 1


def test_a_separate_reference_is_the_kl_anchor(tiny_dir, prompts_file, tmp_path):
    # A reference with sharpened output logits: a tiny random model is nearly uniform, so a
    # second random one would sit almost on top of it.
    other = tmp_path / "sharp-reference"
    model, tokenizer = models.load_policy(str(tiny_dir))
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(50.0)
    model.save_pretrained(other)
    tokenizer.save_pretrained(other)
    same = train_ppo(
        base_config(tiny_dir, prompts_file, tmp_path / "same", total_steps=1), score_fn=digit_count
    )
    anchored = train_ppo(
        base_config(
            tiny_dir, prompts_file, tmp_path / "anchored", total_steps=1, reference=str(other)
        ),
        score_fn=digit_count,
    )
    # The first rollout's KL is zero against the policy itself, and clearly not zero against
    # a differently initialised reference.
    assert rows(tmp_path / "same")[0]["kl"] == pytest.approx(0.0, abs=1e-4)
    assert rows(tmp_path / "anchored")[0]["kl"] > 0.5
    assert same["steps_done"] == anchored["steps_done"] == 1
