import json

import pytest
import torch

from trainer import models
from trainer.data import Demonstration, write_jsonl
from trainer.sft import SFTConfig, encode_demonstration, train_sft


def test_label_mask_covers_completion_and_appended_eos(tiny_dir):
    tokenizer = models.load_tokenizer(str(tiny_dir))
    ids, mask = encode_demonstration(tokenizer, Demonstration("Q:", "ab"), max_length=32)
    assert ids == tokenizer("Q:ab")["input_ids"] + [tokenizer.eos_token_id]
    assert mask == [0, 0, 1, 1, 1]
    # too long: the prompt is cut from the left, the completion's EOS survives
    ids, mask = encode_demonstration(tokenizer, Demonstration("Question:", "abcdef"), 5)
    assert ids == tokenizer("abcd")["input_ids"] + [tokenizer.eos_token_id]
    assert mask == [1] * 5


@pytest.fixture(scope="module")
def sft_dir(tiny_dir, tmp_path_factory):
    """The tiny model fine-tuned to answer "42" and stop."""
    root = tmp_path_factory.mktemp("sft")
    demos = [
        {"prompt": f"What is {a}+{b}? ", "completion": "42"} for a in range(6) for b in range(6)
    ]
    write_jsonl(root / "demos.jsonl", demos)
    write_jsonl(root / "valid.jsonl", [{"prompt": "What is 9+9? ", "completion": "42"}])
    metrics = train_sft(
        SFTConfig(
            model=str(tiny_dir),
            train=str(root / "demos.jsonl"),
            valid=str(root / "valid.jsonl"),
            out=str(root / "model"),
            epochs=8,
            batch_size=6,
            lr=1e-2,
            device="cpu",
        )
    )
    return root / "model", metrics


@pytest.mark.slow
def test_sft_learns_the_demonstrations_and_to_stop(sft_dir):
    model_dir, metrics = sft_dir
    assert metrics["steps"] == 8 * 6
    assert metrics["first_loss"] > 3.0  # ~log(98) for a random 98-token model
    assert metrics["final_loss"] < 0.1
    assert metrics["valid_loss"] < 0.2
    model, tokenizer = models.load_policy(str(model_dir))
    ids = torch.tensor([tokenizer("What is 7+1? ")["input_ids"]])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    assert out[0, ids.size(1) :].tolist() == tokenizer("42")["input_ids"] + [tokenizer.eos_token_id]
    saved = json.loads((model_dir / models.TRAINER_CONFIG_FILE).read_text())
    assert saved["epochs"] == 8


def test_lora_sft_saves_merged_weights(tiny_dir, tmp_path):
    write_jsonl(tmp_path / "demos.jsonl", [{"prompt": "Q: ", "completion": "A"}] * 4)
    metrics = train_sft(
        SFTConfig(
            model=str(tiny_dir),
            train=str(tmp_path / "demos.jsonl"),
            out=str(tmp_path / "model"),
            epochs=1,
            batch_size=2,
            lr=1e-2,
            lora_r=4,
            device="cpu",
        )
    )
    assert metrics["steps"] == 2
    tuned = models.load_policy(str(tmp_path / "model"))[0].state_dict()
    base = models.load_policy(str(tiny_dir))[0].state_dict()
    assert tuned.keys() == base.keys()
    key = "model.layers.1.mlp.down_proj.weight"
    assert not torch.equal(tuned[key], base[key])
