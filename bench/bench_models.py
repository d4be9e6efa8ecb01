"""What the trainer benchmarks share: the models they train and how each run starts clean."""

from __future__ import annotations

import os

import torch

from trainer import models

# SmolLM2-135M-Instruct (read from its GGUF: llama.* metadata, no output.weight = tied)
SMOLLM2_SHAPE = dict(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    max_position_embeddings=8192,
    rope_theta=100000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
)
SMOLLM2_VOCAB = 49152
_LAYERS_KEY = {"llama": "num_hidden_layers", "gpt2": "n_layer"}


def build_model(kind: str, tiny_architecture: str, layers: int | None = None):
    """(causal LM, character tokenizer): the tiny model of `tiny_architecture` ("llama" or
    "gpt2"), or SmolLM2-135M's shape with random weights (`kind` "smollm2-shape")."""
    if kind == "tiny":
        overrides = {_LAYERS_KEY[tiny_architecture]: layers} if layers else {}
        return models.build_tiny(tiny_architecture, seed=0, **overrides)
    from transformers import AutoModelForCausalLM

    tokenizer = models.build_tiny_tokenizer()  # ids 0..98: fits the 49152-entry vocabulary
    shape = SMOLLM2_SHAPE | ({"num_hidden_layers": layers} if layers else {})
    config = models.tiny_config(
        SMOLLM2_VOCAB, tokenizer.pad_token_id, tokenizer.eos_token_id, "llama", **shape
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


def model_shape(model) -> dict:
    """The shape fields the model's config has (Llama or GPT-2 names) and its parameters."""
    config = model.config
    keys = (
        "model_type",
        "vocab_size",
        "hidden_size",
        "n_embd",
        "intermediate_size",
        "num_hidden_layers",
        "n_layer",
        "num_attention_heads",
        "num_key_value_heads",
        "tie_word_embeddings",
    )
    shape = {key: getattr(config, key) for key in keys if hasattr(config, key)}
    shape["parameters"] = sum(p.numel() for p in model.parameters())
    return shape


def reset_accelerate(precision: str) -> None:
    """Each run starts from a clean accelerate state (its state is process-wide, and TRL's
    trainers build their Accelerator from the environment, as PrefLoop's do): bf16 sets
    mixed precision for both sides; fp32 and trl-defaults set none, so PrefLoop trains in
    float32 as ``python -m trainer rm`` does and TRL applies its own config's precision."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    if precision == "bf16":
        os.environ["ACCELERATE_MIXED_PRECISION"] = "bf16"
    else:
        os.environ.pop("ACCELERATE_MIXED_PRECISION", None)


def accelerate_precision() -> str | None:
    """The mixed precision accelerate's process-wide state holds (what the last run used)."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    return str(state.get("_mixed_precision")) if state else None


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def add_model_arguments(parser, tiny_help: str) -> None:
    """--device, --model, --layers, --precision: the same on every trainer benchmark."""
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--model",
        choices=["tiny", "smollm2-shape"],
        default="tiny",
        help=f"tiny: {tiny_help}; smollm2-shape: SmolLM2-135M's architecture, random",
    )
    parser.add_argument("--layers", type=int, default=None, help="fewer layers (quick checks)")
    parser.add_argument(
        "--precision",
        choices=["trl-defaults", "fp32", "bf16"],
        default=None,
        help="default: trl-defaults on cpu (each side as it ships), fp32 on cuda; see above",
    )
