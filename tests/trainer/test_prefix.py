"""The frozen prefix: the layers below the adapters once, the adapted ones on top, the same
numbers as a whole forward pass; PPO runs the prefix once per step and learns the same."""

import json

import pytest
import torch

from trainer import models, ppo, prefix
from trainer.data import write_jsonl
from trainer.ppo import PPOConfig, policy_logits, train_ppo
from trainer.scorers import digit_count


def lora_policy(tiny_dir, last_layers: int):
    """The tiny Llama (2 layers) with adapters on its last layers, their B matrices drawn so
    that switching them off changes the output."""
    torch.manual_seed(0)
    policy = models.apply_lora(
        models.load_policy(str(tiny_dir))[0], 4, 8, 0.0, "CAUSAL_LM", last_layers=last_layers
    )
    for name, param in policy.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.2)
    return policy


def left_padded_batch():
    """Two rows, the second left-padded by 3 (as PPO's queries are) and right-padded by 2 (as
    its responses are)."""
    ids = torch.randint(3, 90, (2, 14), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    mask[1, -2:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    return ids, mask


def test_frozen_layers_are_those_below_the_first_adapter(tiny_dir):
    assert prefix.frozen_layers(lora_policy(tiny_dir, last_layers=1)) == 1
    assert prefix.frozen_layers(lora_policy(tiny_dir, last_layers=2)) == 0  # all adapted
    assert prefix.frozen_layers(models.load_policy(str(tiny_dir))[0]) == 0  # all train
    frozen = models.load_policy(str(tiny_dir))[0].requires_grad_(False)
    assert prefix.frozen_layers(frozen) == 0  # nothing trains: nothing to split


def test_prefix_then_suffix_is_the_whole_forward_pass_with_and_without_adapters(tiny_dir):
    policy = lora_policy(tiny_dir, last_layers=1)
    ids, mask = left_padded_batch()
    keep = 6
    states = prefix.prefix_states(policy, ids, mask, cut=1)
    assert states.shape == (2, 14, policy.config.hidden_size) and not states.requires_grad

    whole = policy_logits(policy, ids, mask, keep)
    split = prefix.suffix_logits(policy, states, mask, 1, keep)
    assert split.shape == whole.shape == (2, keep, policy.config.vocab_size)
    torch.testing.assert_close(split, whole, rtol=0, atol=1e-5)
    with policy.disable_adapter():
        reference = policy_logits(policy, ids, mask, keep)
        torch.testing.assert_close(prefix.suffix_logits(policy, states, mask, 1, keep), reference)
    assert (reference - whole).abs().max() > 1e-2  # the adapters did change the output
    # the decoder is whole again afterwards
    assert len(models.unwrap_peft(policy).model.layers) == 2
    assert isinstance(models.unwrap_peft(policy).model.norm, torch.nn.Module)


def test_the_adapters_get_the_same_gradient_through_the_suffix(tiny_dir):
    policy = lora_policy(tiny_dir, last_layers=1)
    ids, mask = left_padded_batch()
    trainable = [p for p in policy.parameters() if p.requires_grad]

    def gradients(logits):
        policy.zero_grad()
        logits.float().logsumexp(-1).sum().backward()
        return [p.grad.clone() for p in trainable]

    whole = gradients(policy_logits(policy, ids, mask, 4))
    states = prefix.prefix_states(policy, ids, mask, cut=1)
    split = gradients(prefix.suffix_logits(policy, states, mask, 1, 4))
    assert len(whole) == len(split) > 0
    for a, b in zip(whole, split, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in split)


@pytest.fixture
def prompts_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    write_jsonl(
        path,
        [{"id": str(i), "prompt": f"Q{i}: say", "split": "train"} for i in range(8)],
    )
    return path


def ppo_run(tiny_dir, prompts_file, out, precision):
    config = PPOConfig(
        policy=str(tiny_dir),
        prompts=str(prompts_file),
        out=str(out),
        batch_size=8,
        mini_batch_size=4,
        samples_per_prompt=4,
        advantage="rloo",
        ppo_epochs=2,
        lr=1e-2,
        max_new_tokens=10,
        lora_r=8,
        lora_layers=1,
        total_steps=3,
        precision=precision,
        device="cpu",
        save_every=0,
        seed=3,
    )
    calls = []
    original = prefix.prefix_states

    def counted(*args, **kwargs):
        calls.append(args[1].shape)
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prefix, "prefix_states", counted)
        train_ppo(config, score_fn=digit_count)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return metrics, calls


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_ppo_with_the_cached_prefix_learns_what_whole_passes_learn(
    tiny_dir, prompts_file, tmp_path, precision
):
    cached, calls = ppo_run(tiny_dir, prompts_file, tmp_path / "cached", precision)
    assert len(calls) == 3  # once per step, on the step's whole batch
    assert all(shape[0] == 8 for shape in calls)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ppo, "CACHE_FROZEN_PREFIX", False)
        whole, none = ppo_run(tiny_dir, prompts_file, tmp_path / "whole", precision)
    assert none == []
    assert len(cached) == len(whole) == 3
    tolerance = 1e-4 if precision == "fp32" else 2e-2
    for a, b in zip(cached, whole, strict=True):
        assert a["score"] == b["score"]  # the same rollouts: the same answers
        for key in ("kl", "policy_loss", "approx_kl", "ratio", "entropy"):
            assert a[key] == pytest.approx(b[key], abs=tolerance), (a["step"], key)
    # the adapters start at zero, so the reference is the policy: in bf16 the old log-probs
    # come from the same cached pass (KL exactly 0), in fp32 from the rollout's decoding
    assert cached[0]["kl"] == (0.0 if precision == "bf16" else pytest.approx(0.0, abs=1e-5))
