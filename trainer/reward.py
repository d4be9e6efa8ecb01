"""Reward model training (InstructGPT section 3.5, eq. 1).

The K completions of a ranking go through the trunk together and the ranking contributes one
loss term: the mean of -log sigmoid(r_w - r_l) over its strict pairs (ties skipped). After
training, a bias is fitted so that reference completions score 0 on average.

    python -m trainer rm --model SFT_DIR --train rankings.jsonl --out RM_DIR
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from trainer import models
from trainer.contract import RewardConfig
from trainer.data import DataError, Ranking, read_demonstrations, read_rankings
from trainer.losses import pairwise_correct, ranking_loss
from trainer.ops import pad_sequences, position_ids_from_mask
from trainer.prompt_cache import shared_prompt_states
from trainer.runlog import (
    MetricsLog,
    progress,
    rebalance_threads,
    seed_everything,
    use_threads,
)


@dataclass
class EncodedRanking:
    rows: list[list[int]]
    ranks: list[int]
    weight: float
    k: int
    spans: list[tuple[int, int]] = field(default_factory=list)
    """Per row, the [start, end) positions a mean-pooling head averages over."""


def encode_scored(tokenizer, prompt: str, completion: str, max_length: int):
    """(token ids of prompt + completion + EOS, the completion's pooling span)."""
    prompt_ids = models.encode_prompt(tokenizer, prompt)
    completion_ids = models.encode_completion(tokenizer, completion, max_length)
    room = max(max_length - len(completion_ids), 0)
    row = (prompt_ids[-room:] if room else []) + completion_ids
    start = len(row) - len(completion_ids)
    return row, models.completion_span(start, len(row), ends_with_eos=True)


def encode_ranking(tokenizer, ranking: Ranking, max_length: int) -> EncodedRanking:
    rows, spans = [], []
    for completion in ranking.completions:
        row, span = encode_scored(tokenizer, ranking.prompt, completion, max_length)
        rows.append(row)
        spans.append(span)
    return EncodedRanking(rows, ranking.ranks, ranking.weight, ranking.k, spans)


def rows_batch(rows: list[list[int]], spans: list[tuple[int, int]], pad_token_id: int):
    """Right-padded (input_ids, attention_mask, completion_mask) of scored rows."""
    input_ids, attention_mask = pad_sequences(rows, pad_token_id, side="right")
    completion_mask = models.span_mask(
        input_ids.size(1), [a for a, _ in spans], [b for _, b in spans]
    )
    return input_ids, attention_mask, completion_mask


def collate(batch: list[EncodedRanking], pad_token_id: int):
    """Flatten the completions of every ranking into one trunk batch."""
    flat = [row for item in batch for row in item.rows]
    spans = [span for item in batch for span in item.spans]
    input_ids, attention_mask, completion_mask = rows_batch(flat, spans, pad_token_id)
    width = max(item.k for item in batch)
    ranks = torch.full((len(batch), width), -1, dtype=torch.long)
    for b, item in enumerate(batch):
        ranks[b, : item.k] = torch.tensor(item.ranks)
    ks = torch.tensor([item.k for item in batch])
    weights = torch.tensor([item.weight for item in batch], dtype=torch.float32)
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "completion_mask": completion_mask,
        "ranks": ranks,
        "ks": ks,
        "weights": weights,
    }


def unflatten(flat_rewards: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
    """(sum K,) rewards -> (B, max K), zero-filled where a ranking has fewer completions."""
    width = int(ks.max())
    out = flat_rewards.new_zeros((ks.numel(), width))
    offset = 0
    for b, k in enumerate(ks.tolist()):
        out[b, :k] = flat_rewards[offset : offset + k]
        offset += k
    return out


def batch_rewards(model, batch: dict, device) -> torch.Tensor:
    """(B, max K) rewards; ``model`` is a reward model or a (DDP-wrapped) RewardReadout."""
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    completion_mask = batch["completion_mask"].to(device)
    if isinstance(model, torch.nn.Module) and hasattr(model, "config"):
        rewards = models.reward_scores(model, ids, mask, completion_mask)
    else:
        rewards = model(ids, mask, completion_mask)
    return unflatten(rewards.float(), batch["ks"].to(device))


def split_by_prompt(rankings: list[Ranking], fraction: float, seed: int):
    prompts = sorted({r.prompt for r in rankings})
    random.Random(seed).shuffle(prompts)
    n_valid = max(1, int(round(len(prompts) * fraction))) if fraction > 0 else 0
    if n_valid >= len(prompts):
        raise DataError("too few distinct prompts to hold some out; pass --valid")
    held = set(prompts[:n_valid])
    return [r for r in rankings if r.prompt not in held], [r for r in rankings if r.prompt in held]


@torch.no_grad()
def evaluate_rankings(
    model,
    tokenizer,
    rankings: list[Ranking],
    max_length: int,
    batch_size: int = 16,
    precision: str = "fp32",
) -> dict:
    """Held-out pairwise accuracy (overall, per K, and weighted by the rankings' weights, each
    ranking's pairs counted together), its 95% bootstrap CI over rankings, and the loss; and
    the accuracy against the consensus of the tasks that several raters ranked (the pairs
    their reliability-weighted majority orders; CI over tasks)."""
    from trainer.evaluate import consensus_hits, ratio_bootstrap_ci

    was_training = model.training
    model.eval()
    # each distinct answer once: a task that three raters ranked is one set of answers
    texts = list(dict.fromkeys((r.prompt, c) for r in rankings for c in r.completions))
    scores = score_pairs(model, tokenizer, texts, max_length, batch_size, precision)
    reward_of = dict(zip(texts, scores, strict=True))
    width = max((r.k for r in rankings), default=1)
    rewards = torch.zeros((len(rankings), width))
    ranks = torch.full((len(rankings), width), -1, dtype=torch.long)
    for i, ranking in enumerate(rankings):
        rewards[i, : ranking.k] = torch.tensor(
            [reward_of[(ranking.prompt, c)] for c in ranking.completions]
        )
        ranks[i, : ranking.k] = torch.tensor(ranking.ranks)
    correct, pairs = pairwise_correct(rewards, ranks)
    correct_by_k: dict[int, int] = defaultdict(int)
    pairs_by_k: dict[int, int] = defaultdict(int)
    per_ranking: list[tuple[float, float, float]] = []  # (correct, pairs, weight)
    for ranking, c, n in zip(rankings, correct.tolist(), pairs.tolist(), strict=True):
        correct_by_k[ranking.k] += c
        pairs_by_k[ranking.k] += n
        per_ranking.append((c, n, ranking.weight))
    loss = float(ranking_loss(rewards, ranks)) if bool((pairs > 0).any()) else float("nan")
    model.train(was_training)
    total_pairs = sum(pairs_by_k.values())
    hits = [c for c, _, _ in per_ranking]
    counts = [p for _, p, _ in per_ranking]
    _, low, high = ratio_bootstrap_ci(hits, counts)
    weighted_pairs = sum(w * p for _, p, w in per_ranking)
    task_hits, task_pairs = consensus_hits(rankings, lambda p, c: reward_of[(p, c)])
    consensus = ratio_bootstrap_ci(task_hits, task_pairs) if sum(task_pairs) else None
    return {
        "accuracy": sum(correct_by_k.values()) / total_pairs if total_pairs else float("nan"),
        "accuracy_ci": [low, high],
        "accuracy_by_k": {
            str(k): correct_by_k[k] / pairs_by_k[k] for k in sorted(pairs_by_k) if pairs_by_k[k]
        },
        "weighted_accuracy": (
            sum(w * c for c, _, w in per_ranking) / weighted_pairs
            if weighted_pairs
            else float("nan")
        ),
        "pairs": total_pairs,
        "rankings": len(per_ranking),
        "consensus_accuracy": consensus[0] if consensus else None,
        "consensus_accuracy_ci": list(consensus[1:]) if consensus else None,
        "consensus_pairs": int(sum(task_pairs)),
        "consensus_tasks": len(task_pairs),
        "loss": loss,
    }


@torch.no_grad()
def score_texts(
    model,
    tokenizer,
    prompts: list[str],
    completions: list[str],
    max_length: int,
    batch_size: int = 16,
    precision: str = "fp32",
) -> list[float]:
    """The reward of each (prompt, completion), read as in training."""
    device = next(model.parameters()).device
    scores: list[float] = []
    for start in range(0, len(prompts), batch_size):
        rebalance_threads()
        encoded = [
            encode_scored(tokenizer, p, c, max_length)
            for p, c in zip(
                prompts[start : start + batch_size],
                completions[start : start + batch_size],
                strict=True,
            )
        ]
        ids, mask, completion_mask = rows_batch(
            [row for row, _ in encoded], [span for _, span in encoded], tokenizer.pad_token_id
        )
        with models.autocast(device, precision):
            rewards = models.reward_scores(
                model, ids.to(device), mask.to(device), completion_mask.to(device)
            )
        scores += rewards.float().cpu().tolist()
    return scores


def score_pairs(
    model, tokenizer, pairs: list[tuple[str, str]], max_length: int, batch_size: int, precision: str
) -> list[float]:
    """``score_texts`` of (prompt, completion) pairs."""
    return score_texts(
        model,
        tokenizer,
        [p for p, _ in pairs],
        [c for _, c in pairs],
        max_length,
        batch_size,
        precision,
    )


@torch.no_grad()
def fit_reward_bias(
    model,
    tokenizer,
    pairs: list[tuple[str, str]],
    max_length: int,
    batch_size: int = 16,
    precision: str = "fp32",
) -> float:
    """Set config.reward_bias so the given (prompt, completion) pairs score 0 on average."""
    model.config.reward_bias = 0.0
    return center_reward(
        model, score_pairs(model, tokenizer, pairs, max_length, batch_size, precision)
    )


def center_reward(model, scores: list[float]) -> float:
    """Set config.reward_bias to minus the mean of ``scores`` (rewards without a bias)."""
    mean = sum(scores) / len(scores) if scores else 0.0
    model.config.reward_bias = -mean
    return -mean


# --------------------------------------------------------------------------- head fit

#: Run each distinct prompt of a feature batch once (trainer/prompt_cache.py); off, every row
#: runs whole (bench/rm_features_speed.py compares the two).
SHARE_PROMPTS = True


@torch.no_grad()
def completion_features(
    model,
    tokenizer,
    texts: list[tuple[str, str]],
    depths: list[int],
    pooling: str,
    max_length: int,
    batch_size: int,
    precision: str,
) -> dict[int, torch.Tensor]:
    """Per trunk depth, the feature of each (prompt, completion) a head at that depth reads:
    the state after block ``depth`` (through the final norm, as a trunk cut there gives it),
    mean-pooled over the completion or at its last token. One forward pass per batch, each
    distinct prompt in it run once (``trainer.prompt_cache``): sorted texts put a prompt's
    answers side by side."""
    device = next(model.parameters()).device
    trunk = models.unwrap_peft(model).base_model
    norm = models.final_norm(model)
    total = models.num_layers(model)
    features: dict[int, list[torch.Tensor]] = {d: [] for d in depths}
    for start in range(0, len(texts), batch_size):
        rebalance_threads()
        encoded = [
            encode_scored(tokenizer, p, c, max_length) for p, c in texts[start : start + batch_size]
        ]
        rows, spans = [row for row, _ in encoded], [span for _, span in encoded]
        with models.autocast(device, precision):
            shared = (
                shared_prompt_states(trunk, rows, spans, tokenizer.pad_token_id, device)
                if SHARE_PROMPTS
                else None
            )
            if shared is None:
                ids, mask, completion_mask = rows_batch(rows, spans, tokenizer.pad_token_id)
                ids, mask = ids.to(device), mask.to(device)
                hidden = trunk(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=position_ids_from_mask(mask),
                    use_cache=False,
                    output_hidden_states=True,
                ).hidden_states
            else:
                hidden, mask, completion_mask = shared
            for depth in depths:
                # the last entry already went through the final norm
                states = hidden[depth] if depth == total else norm(hidden[depth])
                states = states.float()
                if pooling == "mean":
                    features[depth].append(models.pool_states(states, completion_mask.to(device)))
                else:
                    features[depth].append(models.read_at_last_token(states, mask).cpu())
    return {d: torch.cat(rows).cpu() for d, rows in features.items()}


@dataclass
class RankingIndex:
    """Rankings as rows of a feature matrix: (R, K) row indices, ranks (-1: no completion),
    weights and prompts."""

    rows: torch.Tensor
    ranks: torch.Tensor
    weights: torch.Tensor
    prompts: list[str]

    def subset(self, keep: list[int]) -> RankingIndex:
        index = torch.tensor(keep, dtype=torch.long)
        return RankingIndex(
            self.rows[index],
            self.ranks[index],
            self.weights[index],
            [self.prompts[i] for i in keep],
        )


def index_rankings(rankings: list[Ranking], row_of: dict[tuple[str, str], int]) -> RankingIndex:
    width = max(r.k for r in rankings)
    rows = torch.zeros((len(rankings), width), dtype=torch.long)
    ranks = torch.full((len(rankings), width), -1, dtype=torch.long)
    for i, ranking in enumerate(rankings):
        rows[i, : ranking.k] = torch.tensor(
            [row_of[(ranking.prompt, c)] for c in ranking.completions]
        )
        ranks[i, : ranking.k] = torch.tensor(ranking.ranks)
    weights = torch.tensor([r.weight for r in rankings], dtype=torch.float32)
    return RankingIndex(rows, ranks, weights, [r.prompt for r in rankings])


def fit_head(features: torch.Tensor, index: RankingIndex, l2: float) -> torch.Tensor:
    """Head weights w (H,) on features standardised over the rankings' rows: the K-way
    ranking loss (weighted, InstructGPT eq. 1) + l2 * |w|^2, by L-BFGS. Returns the weights
    for *raw* features (w / std): a plain linear head, the mean shift only moves every score
    by one constant, which the bias fit removes."""
    used = torch.unique(index.rows[index.ranks >= 0])
    std = features[used].std(0).clamp(min=1e-6)
    mean = features[used].mean(0)
    standard = (features - mean) / std
    weights = torch.zeros(features.size(1), requires_grad=True)
    optimizer = torch.optim.LBFGS([weights], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        rewards = standard[index.rows] @ weights
        loss = ranking_loss(rewards, index.ranks, index.weights) + l2 * (weights * weights).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weights.detach() / std


def head_accuracy(features: torch.Tensor, weights: torch.Tensor, index: RankingIndex) -> float:
    """Pairwise accuracy of a head on rankings, each ranking's pairs weighted by its weight."""
    rewards = features[index.rows] @ weights
    correct, pairs = pairwise_correct(rewards, index.ranks)
    total = float((index.weights * pairs).sum())
    return float((index.weights * correct).sum()) / total if total else float("nan")


def choose_head(
    features: dict[int, torch.Tensor],
    index: RankingIndex,
    l2s: list[float],
    folds: int,
    seed: int,
) -> tuple[int, float, dict]:
    """(depth, l2) with the best cross-validated accuracy (folds split by prompt), and the
    whole table: {"depth/l2": mean held-fold accuracy}."""
    prompts = sorted(set(index.prompts))
    random.Random(seed).shuffle(prompts)
    folds = max(2, min(folds, len(prompts)))
    fold_of = {p: i % folds for i, p in enumerate(prompts)}
    table, best = {}, None
    for depth, matrix in features.items():
        for l2 in l2s:
            scores = []
            for fold in range(folds):
                held = [i for i, p in enumerate(index.prompts) if fold_of[p] == fold]
                kept = [i for i, p in enumerate(index.prompts) if fold_of[p] != fold]
                if not held or not kept:
                    continue
                weights = fit_head(matrix, index.subset(kept), l2)
                scores.append(head_accuracy(matrix, weights, index.subset(held)))
            accuracy = sum(scores) / len(scores) if scores else float("nan")
            table[f"{depth}/{l2:g}"] = accuracy
            if best is None or accuracy > best[0]:
                best = (accuracy, depth, l2)
    return best[1], best[2], table


def head_fit(
    model, tokenizer, train: list[Ranking], config: RewardConfig
) -> tuple[dict, dict[tuple[str, str], float]]:
    """Fit the scalar head on frozen-trunk features (see RewardConfig.head_fit); cut the
    trunk to the chosen depth. Returns what was chosen and measured, and the fitted head's
    reward (without a bias) of each training answer, read off the features it was fitted on:
    what the cut model computes for them, without running it again."""
    started = time.perf_counter()
    texts = sorted({(r.prompt, c) for r in train for c in r.completions})
    row_of = {text: i for i, text in enumerate(texts)}
    total = models.num_layers(model)
    depths = sorted({d for d in config.feature_layers if 1 <= d <= total} or {total})
    features = completion_features(
        model,
        tokenizer,
        texts,
        depths,
        config.pooling,
        config.max_length,
        config.eval_batch_size,
        config.precision,
    )
    feature_seconds = time.perf_counter() - started
    index = index_rankings(train, row_of)
    depth, l2, table = choose_head(
        features, index, list(config.head_l2), config.cv_folds, config.seed
    )
    weights = fit_head(features[depth], index, l2)
    head = models.scalar_head(model)
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0].copy_(weights.to(head.weight.dtype))
        if head.bias is not None:
            head.bias.zero_()
    if depth < total:
        models.truncate_layers(model, depth)
    rewards = dict(zip(texts, (features[depth] @ weights).tolist(), strict=True))
    return {
        "head_depth": depth,
        "head_l2": l2,
        "head_cv_accuracy": table[f"{depth}/{l2:g}"],
        "head_cv": table,
        "head_train_accuracy": head_accuracy(features[depth], weights, index),
        "head_completions": len(texts),
        "head_feature_seconds": round(feature_seconds, 2),
        "head_seconds": round(time.perf_counter() - started, 2),
    }, rewards


def _cosine(step: int, total: int) -> float:
    progress_ = min(step / max(total, 1), 1.0)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))


def check_config(config: RewardConfig) -> None:
    if config.pooling not in models.REWARD_POOLINGS:
        raise DataError(f"--pooling must be one of {', '.join(models.REWARD_POOLINGS)}")
    models.dtype_of(config.precision)  # names the allowed values
    if config.head_fit:
        if not config.head_l2 or any(not value > 0 for value in config.head_l2):
            raise DataError("--head-l2 needs at least one penalty, every one > 0")
        if any(depth < 1 for depth in config.feature_layers):
            raise DataError("--feature-layers are numbers of transformer blocks, each >= 1")
        if config.cv_folds < 2:
            raise DataError("--cv-folds must be at least 2")
    elif config.epochs < 1:
        raise DataError("--epochs 0 trains nothing: give --head-fit or at least one epoch")


def train_reward_model(
    config: RewardConfig, train: list[Ranking] | None = None, valid: list[Ranking] | None = None
) -> dict:
    """Python API and the ``rm`` command. Returns the final metrics."""
    from accelerate import Accelerator

    check_config(config)
    use_threads(config.threads, config.adapt_threads)
    seed_everything(config.seed)
    if train is None:
        train = read_rankings(config.train)
    if valid is None:
        if config.valid:
            valid = read_rankings(config.valid)
        else:
            train, valid = split_by_prompt(train, config.valid_fraction, config.seed)
    if not any(len(set(r.ranks)) > 1 for r in train):
        raise DataError(f"{config.train}: no ranking has a strict preference to learn from")
    accelerator = Accelerator(cpu=config.device == "cpu")
    device = accelerator.device
    config = replace(config, precision=models.resolve_precision(config.precision, device))
    model, tokenizer = models.load_scalar_model(config.model, accelerator.device)
    model.config.reward_pooling = config.pooling
    models.disable_dropout(model)
    log = MetricsLog(config.out) if accelerator.is_main_process else None
    fitted, head_rewards = (
        head_fit(model, tokenizer, train, config) if config.head_fit else ({}, {})
    )
    if fitted and log:
        log.log(0, stage="head_fit", **{k: v for k, v in fitted.items() if k != "head_cv"})
    steps, trained_rankings = 0, sum(len(set(r.ranks)) > 1 for r in train)
    if config.epochs > 0 and (config.max_steps is None or config.max_steps > 0):
        model, steps = _fine_tune(model, tokenizer, train, config, accelerator, log)
    trained = models.merge_lora(model)
    trained.eval()
    if config.reference:
        reference = [(d.prompt, d.completion) for d in read_demonstrations(config.reference)]
    else:
        reference = [(r.prompt, c) for r in train for c in r.completions]
    # each answer once: a task ranked by three raters would otherwise be scored three times
    reference = list(dict.fromkeys(reference))[: config.reference_limit]
    if steps == 0 and all(text in head_rewards for text in reference):
        # the head alone was fitted: its rewards of these answers are known already
        bias = center_reward(trained, [head_rewards[text] for text in reference])
    else:
        bias = fit_reward_bias(
            trained,
            tokenizer,
            reference,
            config.max_length,
            config.eval_batch_size,
            config.precision,
        )
    held_out = (
        evaluate_rankings(
            trained,
            tokenizer,
            valid,
            config.max_length,
            config.eval_batch_size,
            precision=config.precision,
        )
        if valid
        else {}
    )
    if not accelerator.is_main_process:
        return {}
    models.save_model(trained, tokenizer, Path(config.out), config)
    return log.finish(
        steps=steps,
        train_rankings=trained_rankings,
        valid_rankings=len(valid or []),
        reward_bias=bias,
        valid_accuracy=held_out.get("accuracy"),
        valid_accuracy_ci=held_out.get("accuracy_ci"),
        valid_weighted_accuracy=held_out.get("weighted_accuracy"),
        valid_accuracy_by_k=held_out.get("accuracy_by_k"),
        valid_loss=held_out.get("loss"),
        valid_pairs=held_out.get("pairs"),
        valid_consensus_accuracy=held_out.get("consensus_accuracy"),
        valid_consensus_accuracy_ci=held_out.get("consensus_accuracy_ci"),
        valid_consensus_pairs=held_out.get("consensus_pairs"),
        valid_consensus_tasks=held_out.get("consensus_tasks"),
        **fitted,
        config=asdict(config),
    )


def _fine_tune(model, tokenizer, train, config: RewardConfig, accelerator, log):
    """The K-way ranking loss over the training rankings, every weight or LoRA adapters;
    returns the (still wrapped) model and the number of optimiser steps."""
    if config.lora_r > 0:
        model = models.apply_lora(model, config.lora_r, config.lora_alpha, 0.0, "SEQ_CLS")
    encoded = [encode_ranking(tokenizer, r, config.max_length) for r in train]
    encoded = [e for e in encoded if len(set(e.ranks)) > 1]  # all-tied rankings teach nothing
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(
        encoded,
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=lambda b: collate(b, tokenizer.pad_token_id),
    )
    optimizer = models.adamw(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.lr,
        weight_decay=config.weight_decay,
    )
    readout, optimizer, loader = accelerator.prepare(models.RewardReadout(model), optimizer, loader)
    total_steps = config.epochs * len(loader)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _cosine(s, total_steps))
    bar = progress(total_steps, "rm")
    step = 0
    readout.train()
    for epoch in range(config.epochs):
        for batch in loader:
            if step >= total_steps:
                break
            rebalance_threads()
            with models.autocast(accelerator.device, config.precision):
                rewards = batch_rewards(readout, batch, accelerator.device)
            loss = ranking_loss(rewards.float(), batch["ranks"], batch["weights"])
            accelerator.backward(loss)
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(readout.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            with torch.no_grad():
                correct, pairs = pairwise_correct(rewards.detach().float(), batch["ranks"])
                accuracy = float(correct.sum()) / max(float(pairs.sum()), 1.0)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if log:
                log.log(
                    step,
                    total_steps=total_steps,
                    epoch=epoch,
                    loss=loss.item(),
                    train_pair_accuracy=accuracy,
                    lr=scheduler.get_last_lr()[0],
                    rankings=len(batch["ks"]),
                )
    bar.close()
    accelerator.wait_for_everyone()
    return accelerator.unwrap_model(readout).model, step
