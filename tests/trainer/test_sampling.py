import json

import pytest
import torch

from trainer import models
from trainer.data import DataError
from trainer.ops import entropy_from_logits, pad_sequences, position_ids_from_mask
from trainer.sampling import (
    SampleConfig,
    decode_completion,
    generate,
    make_generators,
    sample,
)


def encode(tokenizer, texts):
    return pad_sequences(
        [tokenizer(t)["input_ids"] for t in texts], tokenizer.pad_token_id, side="left"
    )


def test_greedy_batched_left_padded_matches_transformers_generate(tiny_dir):
    model, tokenizer = models.load_policy(str(tiny_dir))
    texts = ["Hello there, how are", "Hi"]
    ids, mask = encode(tokenizer, texts)
    ours, _ = generate(
        model,
        ids,
        mask,
        max_new_tokens=10,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        temperature=0.0,
    )
    for row, text in enumerate(texts):
        single = torch.tensor([tokenizer(text)["input_ids"]])
        reference = model.generate(
            single,
            attention_mask=torch.ones_like(single),
            do_sample=False,
            max_new_tokens=10,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        expected = reference[0, single.size(1) :].tolist()
        assert ours[row, : len(expected)].tolist() == expected


def nucleus_settings(tokenizer) -> dict:
    """generate()'s settings for the per-row sampling tests: 12 tokens, T 1.0, top-p 0.9."""
    return dict(
        max_new_tokens=12,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        temperature=1.0,
        top_p=0.9,
    )


def test_per_row_seed_makes_a_completion_independent_of_its_batch(tiny_dir):
    model, tokenizer = models.load_policy(str(tiny_dir))
    kwargs = nucleus_settings(tokenizer)
    alone_ids, alone_mask = encode(tokenizer, ["Tell me"])
    alone, _ = generate(model, alone_ids, alone_mask, generators=make_generators([7]), **kwargs)
    batch_ids, batch_mask = encode(tokenizer, ["A much longer prompt goes first", "Tell me"])
    batch, _ = generate(model, batch_ids, batch_mask, generators=make_generators([3, 7]), **kwargs)
    width = min(alone.size(1), batch.size(1))
    assert batch[1, :width].tolist() == alone[0, :width].tolist()
    other, _ = generate(model, alone_ids, alone_mask, generators=make_generators([8]), **kwargs)
    assert other[0].tolist() != alone[0].tolist()


def test_copies_of_a_prompt_share_one_prefill_and_sample_as_if_alone(tiny_dir):
    model, tokenizer = models.load_policy(str(tiny_dir))
    kwargs = nucleus_settings(tokenizer)
    prompts = ["A much longer prompt goes first"] * 3 + ["Tell me"] * 3
    seeds = [1, 2, 3, 4, 5, 6]
    batch_ids, batch_mask = encode(tokenizer, prompts)
    prefill_rows = []
    forward = model.forward

    def counting_forward(*args, **kw):
        if not prefill_rows:
            prefill_rows.append(kw["input_ids"].size(0))
        return forward(*args, **kw)

    model.forward = counting_forward
    batch, logprobs = generate(
        model, batch_ids, batch_mask, generators=make_generators(seeds), **kwargs
    )
    model.forward = forward
    assert prefill_rows == [2]  # one forward pass over the two distinct prompts
    for row, (prompt, seed) in enumerate(zip(prompts, seeds, strict=True)):
        ids, mask = encode(tokenizer, [prompt])
        alone, alone_logprobs = generate(
            model, ids, mask, generators=make_generators([seed]), **kwargs
        )
        width = min(alone.size(1), batch.size(1))
        assert batch[row, :width].tolist() == alone[0, :width].tolist()
        assert torch.allclose(logprobs[row, :width], alone_logprobs[0, :width], atol=1e-4)
    assert len({tuple(batch[row].tolist()) for row in range(3)}) > 1  # copies still differ


def test_rollout_logprobs_are_at_the_sampling_temperature(tiny_dir):
    model, tokenizer = models.load_policy(str(tiny_dir))
    ids, mask = encode(tokenizer, ["abc", "a longer one"])
    temperature = 0.7
    tokens, logprobs = generate(
        model,
        ids,
        mask,
        max_new_tokens=6,
        temperature=temperature,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        generators=make_generators([1, 2]),
    )
    full = torch.cat([ids, tokens], 1)
    full_mask = torch.cat([mask, torch.ones_like(tokens)], 1)
    with torch.no_grad():
        logits = model(
            full, attention_mask=full_mask, position_ids=position_ids_from_mask(full_mask)
        ).logits
    step_logits = logits[:, ids.size(1) - 1 : -1] / temperature
    expected = step_logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(logprobs, expected, atol=1e-4)


def test_decode_stops_at_first_eos(tiny_dir):
    tokenizer = models.load_tokenizer(str(tiny_dir))
    a, b = tokenizer.convert_tokens_to_ids(["a", "b"])
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    assert decode_completion(tokenizer, [a, b, eos, a, a]) == ("ab", "eos")
    assert decode_completion(tokenizer, [a, b, a]) == ("aba", "length")
    assert decode_completion(tokenizer, [a, pad, pad]) == ("a", "length")


def test_sample_command_writes_the_contract(tiny_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": "p1", "prompt": "Say hi", "category": "chat", "split": "train"},
                {
                    "id": "p2",
                    "prompt": "Count to three",
                    "category": "generation",
                    "split": "train",
                },
            ]
        )
        + "\n"
    )
    config = SampleConfig(
        model=str(tiny_dir),
        prompts=str(prompts),
        out=str(tmp_path / "out"),
        k=3,
        max_new_tokens=8,
        temperature=0.9,
        top_p=0.95,
        seed=5,
    )
    metrics = sample(config)
    rows = [json.loads(line) for line in (tmp_path / "out/samples.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    assert sorted((r["prompt_id"], r["index"]) for r in rows) == [
        ("p1", 0),
        ("p1", 1),
        ("p1", 2),
        ("p2", 0),
        ("p2", 1),
        ("p2", 2),
    ]
    for row in rows:
        assert set(row) >= {
            "prompt_id",
            "prompt",
            "index",
            "completion",
            "seed",
            "sampling",
            "model",
            "finish_reason",
        }
        assert row["sampling"] == {"temperature": 0.9, "top_p": 0.95, "max_new_tokens": 8}
        assert row["model"] == str(tiny_dir)
        assert row["finish_reason"] in ("eos", "length")
        assert (row["finish_reason"] == "length") == (row["num_tokens"] == 8)
    assert len({r["seed"] for r in rows}) == 6
    assert metrics["completions"] == 6
    assert metrics["new_tokens"] == sum(r["num_tokens"] for r in rows)
    progress_rows = [
        json.loads(x) for x in (tmp_path / "out/metrics.jsonl").read_text().splitlines()
    ]
    assert progress_rows[-1]["completions_done"] == progress_rows[-1]["completions_total"] == 6
    again = sample(config)
    assert again["reused"] is True
    with prompts.open("a") as handle:  # new inputs at the same path: sample again
        handle.write(json.dumps({"id": "p3", "prompt": "More", "category": "chat"}) + "\n")
    third = sample(config)
    assert "reused" not in third and third["completions"] == 9


def _favour_eos(model, eos_token_id: int, boost: float = 30.0):
    """A forward hook on the LM head that makes EOS by far the likeliest next token."""
    head = model.get_output_embeddings()

    def hook(module, inputs, output):
        output = output.clone()
        output[..., eos_token_id] += boost
        return output

    return head.register_forward_hook(hook)


def test_min_new_tokens_masks_eos_and_logprobs_are_the_masked_policys(tiny_dir):
    from trainer.ppo import response_logprobs

    model, tokenizer = models.load_policy(str(tiny_dir))
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    handle = _favour_eos(model, eos)
    ids, mask = encode(tokenizer, ["abc", "a longer one"])
    kwargs = dict(max_new_tokens=8, eos_token_id=eos, pad_token_id=pad, temperature=0.7)
    free, _ = generate(model, ids, mask, generators=make_generators([1, 2]), **kwargs)
    assert free[:, 0].tolist() == [eos, eos]  # without the option: empty answers
    tokens, logprobs = generate(
        model, ids, mask, generators=make_generators([1, 2]), min_new_tokens=5, **kwargs
    )
    assert (tokens[:, :5] != eos).all()  # no EOS in the first five tokens ...
    assert tokens[:, 5].tolist() == [eos, eos]  # ... then the favoured EOS at once
    # PPO recomputes the same log-probabilities from a full forward pass, here from the
    # logits of the response positions only (logits_to_keep): ratios start at exactly 1
    full = torch.cat([ids, tokens], 1)
    full_mask = torch.cat([mask, torch.ones_like(tokens)], 1)
    with torch.no_grad():
        tail = model(
            full,
            attention_mask=full_mask,
            position_ids=position_ids_from_mask(full_mask),
            logits_to_keep=tokens.size(1) + 1,
        ).logits
    recomputed, step_logits = response_logprobs(tail, tokens, 0.7, eos, 5)
    assert torch.allclose(logprobs, recomputed, atol=1e-4)
    assert torch.isfinite(entropy_from_logits(step_logits)).all()  # no -inf in the mask
    unmasked, _ = response_logprobs(tail, tokens, 0.7, eos, 0)
    assert not torch.allclose(logprobs[:, :5], unmasked[:, :5], atol=1e-2)
    handle.remove()


def test_sample_command_takes_min_new_tokens_and_threads(tiny_dir, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "p1", "prompt": "Say hi", "split": "train"}) + "\n")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        sample(
            SampleConfig(
                model=str(tiny_dir),
                prompts=str(prompts),
                out=str(tmp_path / "out"),
                k=4,
                max_new_tokens=8,
                min_new_tokens=3,
                threads=1,
            )
        )
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    rows = [json.loads(line) for line in (tmp_path / "out/samples.jsonl").read_text().splitlines()]
    for row in rows:
        assert row["sampling"]["min_new_tokens"] == 3
        assert row["num_tokens"] >= 4  # three tokens, then EOS at the earliest
    with pytest.raises(DataError, match="min-new-tokens"):
        sample(
            SampleConfig(
                model=str(tiny_dir),
                prompts=str(prompts),
                out=str(tmp_path / "bad"),
                max_new_tokens=4,
                min_new_tokens=5,
            )
        )


def test_sample_command_scores_samples_with_a_reward_model(tiny_dir, tmp_path):
    from trainer.evaluate import reward_judge

    # A reward model folder: the tiny trunk with a scalar head, saved once so that every
    # load reads the same head.
    rm_dir = tmp_path / "rm"
    scalar, tokenizer = models.load_scalar_model(str(tiny_dir))
    scalar.save_pretrained(rm_dir)
    tokenizer.save_pretrained(rm_dir)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": 7, "prompt": "Say hi", "split": "train"}) + "\n")
    config = SampleConfig(
        model=str(tiny_dir),
        prompts=str(prompts),
        out=str(tmp_path / "out"),
        k=3,
        max_new_tokens=6,
        reward_model=str(rm_dir),
        reward_max_length=64,
    )
    metrics = sample(config)
    rows = [json.loads(line) for line in (tmp_path / "out/samples.jsonl").read_text().splitlines()]
    judge = reward_judge(str(rm_dir), torch.device("cpu"), 4, 64)
    expected = judge([r["prompt"] for r in rows], [r["completion"] for r in rows])
    assert [r["reward"] for r in rows] == pytest.approx(expected, abs=1e-5)
    assert metrics["rewards_from"] == str(rm_dir)
    assert len({round(r["reward"], 6) for r in rows}) > 1
