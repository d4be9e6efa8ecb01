"""PPO against a reward model, with a per-token KL penalty and optional PPO-ptx (InstructGPT
section 3.5, "RL"; implementation details after Huang et al. 2024, "The N+ implementation
details of RLHF with PPO").

One step, top to bottom:
 1. take ``batch_size`` prompts and sample a response each from the policy (KV cache);
 2. apply the EOS rules: tokens after the first EOS become padding; a response without an EOS
    gets ``missing_eos_penalty`` subtracted from its score;
 3. score prompt+response with the reward model (or a scoring function), read at the EOS;
 4. log-probabilities at the sampling temperature: the policy's come with the rollout, the
    frozen reference's from one forward pass; values from the value model (initialised from
    the reward model);
 5. per-token rewards -beta * KL, plus the score at the last valid token; GAE; advantages
    whitened over valid tokens;
 6. ``ppo_epochs`` passes over shuffled minibatches of the rollout: clipped policy loss, clipped
    value loss and, with ``ptx_coef`` > 0, gamma * the LM loss on SFT/pretraining text;
 7. adapt beta (optional), log diagnostics, checkpoint.

    python -m trainer ppo --policy SFT_DIR --reward-model RM_DIR --prompts prompts.jsonl --out DIR
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch import nn

from trainer import models, prefix
from trainer.checkpoint import has_training_state, load_training_state, save_training_state
from trainer.contract import (
    ADVANTAGES,
    CHECKPOINT_DIR,
    CHECKPOINT_OLD,
    CHECKPOINT_TMP,
    PPOConfig,
    ScoreFn,
    load_scorer,
)
from trainer.data import DataError, Prompt, read_prompts, read_texts
from trainer.losses import (
    AdaptiveKLController,
    FixedKLController,
    gae,
    kl_penalized_rewards,
    leave_one_out_advantages,
    ppo_policy_loss,
    ppo_value_loss,
    sequence_logprob_loss,
)
from trainer.ops import (
    INVALID_LOGPROB,
    entropy_from_logits,
    lengths_to_mask,
    logprobs_from_logits,
    masked_mean,
    masked_whiten,
    pad_sequences,
    truncate_after_eos,
)
from trainer.reward import encode_scored, rows_batch
from trainer.runlog import (
    METRICS_JSONL,
    MetricsLog,
    derive_seed,
    progress,
    rebalance_threads,
    seed_everything,
    use_threads,
)
from trainer.sampling import check_min_new_tokens, generate, make_generators, mask_early_eos

# Run the layers below the adapters once per step (trainer/prefix.py); False: whole forward
# passes every time (the same numbers, slower; benchmarks and tests compare the two).
CACHE_FROZEN_PREFIX = True
# With it, each distinct prompt of a step's K samples runs once in every cached pass
# (prefix.split_states); False: every row whole from the prefix on.
SHARE_PROMPTS = True


class ActorCritic(nn.Module):
    """Policy and value model as one module, so one DDP wrapper covers both."""

    def __init__(self, policy: nn.Module, value: nn.Module | None):
        super().__init__()
        self.policy = policy
        self.value = value

    def forward(self, input_ids, attention_mask, ptx_ids=None, ptx_mask=None, logits_to_keep=0):
        """(policy logits, per-token values, policy logits on ptx text or None).

        The ptx batch goes through this same call so DDP sees every gradient in one forward.
        ``logits_to_keep`` > 0: the policy's logits at the last that many positions only.
        """
        logits = self.lm_logits(input_ids, attention_mask, logits_to_keep)
        values = (
            None
            if self.value is None
            else models.token_values(self.value, input_ids, attention_mask)
        )
        ptx_logits = None if ptx_ids is None else self.lm_logits(ptx_ids, ptx_mask)
        return logits, values, ptx_logits

    def lm_logits(self, input_ids, attention_mask, logits_to_keep=0):
        return policy_logits(self.policy, input_ids, attention_mask, logits_to_keep)


def policy_logits(model, input_ids, attention_mask, logits_to_keep: int = 0) -> torch.Tensor:
    """Causal-LM logits; with ``logits_to_keep`` > 0 at the last that many positions only
    (transformers' argument). PPO needs them at the response only: the LM head (a 49k x 576
    matrix for SmolLM2) at every prompt token was a fifth of a forward pass, for nothing."""
    return prefix.causal_logits(model, attention_mask, logits_to_keep, input_ids=input_ids)


class ResponseLogits:
    """The policy's logits at the responses of one step's sequences (the last `keep`
    positions): from the frozen prefix computed once here when `cut` > 0, else by whole
    forward passes. With `width` (the prompts' columns, shared by each prompt's samples) and
    SHARE_PROMPTS, each distinct prompt runs once in every pass (prefix.split_states). Called
    inside the caller's autocast; `rows` picks rows of the batch."""

    def __init__(
        self,
        actor_critic: ActorCritic,
        sequences,
        attention_mask,
        keep: int,
        cut: int,
        width: int = 0,
    ):
        self.actor_critic, self.keep, self.cut = actor_critic, keep, cut
        self.sequences, self.attention_mask = sequences, attention_mask
        self.states = self.split = None
        if cut and width and SHARE_PROMPTS:
            self.split = prefix.split_states(
                actor_critic.policy, sequences, attention_mask, cut, width
            )
        elif cut:
            self.states = prefix.prefix_states(actor_critic.policy, sequences, attention_mask, cut)

    @property
    def cached(self) -> bool:
        return self.states is not None or self.split is not None

    def __call__(self, rows=slice(None)) -> torch.Tensor:
        if not self.cached:
            return self.actor_critic.lm_logits(
                self.sequences[rows], self.attention_mask[rows], self.keep
            )
        return self.suffix(self.actor_critic.policy, self.cut, rows)

    def suffix(self, model, cut: int, rows=slice(None)) -> torch.Tensor:
        """`model`'s logits (the policy's, or a reference's that shares the first `cut`
        layers) from the cached states."""
        if self.split is not None:
            return prefix.split_suffix_logits(model, self.split, cut, rows)
        return prefix.suffix_logits(
            model, self.states[rows], self.attention_mask[rows], cut, self.keep
        )


def response_logprobs(
    logits: torch.Tensor,
    responses: torch.Tensor,
    temperature: float,
    eos_token_id: int = 0,
    min_new_tokens: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(response token) at the sampling temperature, and the logits used, (B, N).

    ``logits`` are those of query+response, or of its last N+1 positions (``logits_to_keep``):
    either way the N positions before the last one predict the N response tokens. EOS is
    masked at the first ``min_new_tokens`` positions, as in the rollout.
    """
    width = responses.size(1)
    start = logits.size(1) - width - 1
    step_logits = logits[:, start : start + width].float()
    if temperature > 0:
        step_logits = step_logits / temperature
    step_logits = mask_early_eos(step_logits, eos_token_id, min_new_tokens)
    return logprobs_from_logits(step_logits, responses), step_logits


def step_prompts(
    prompts: list[Prompt], step: int, batch_size: int, seed: int, samples_per_prompt: int = 1
) -> list[Prompt]:
    """Prompts of a step: shuffled epochs over the prompt set, a pure function of the step;
    each of the batch_size / samples_per_prompt prompts comes samples_per_prompt times in a
    row (one group)."""
    chosen, n = [], len(prompts)
    width = batch_size // samples_per_prompt
    for position in range(step * width, (step + 1) * width):
        epoch, offset = divmod(position, n)
        order = torch.randperm(
            n, generator=torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch))
        )
        chosen += [prompts[int(order[offset])]] * samples_per_prompt
    return chosen


def check_config(config: PPOConfig) -> None:
    if config.batch_size % config.mini_batch_size:
        raise DataError("--batch-size must be a multiple of --mini-batch-size")
    if config.samples_per_prompt < 1 or config.batch_size % config.samples_per_prompt:
        raise DataError("--batch-size must be a multiple of --samples-per-prompt (>= 1)")
    if config.advantage not in ADVANTAGES:
        raise DataError(f"--advantage must be one of {', '.join(ADVANTAGES)}")
    if config.advantage == "rloo" and config.samples_per_prompt < 2:
        raise DataError("--advantage rloo needs --samples-per-prompt >= 2 (responses to compare)")
    if config.precision not in models.PRECISIONS:
        raise DataError(f"--precision must be one of {', '.join(models.PRECISIONS)}")
    check_min_new_tokens(config.min_new_tokens, config.max_new_tokens)


class RewardScorer:
    """Scores prompt+response with a reward model, or with a Python function."""

    def __init__(
        self,
        policy_tokenizer,
        reward_model=None,
        reward_tokenizer=None,
        score_fn: ScoreFn | None = None,
    ):
        self.policy_tokenizer = policy_tokenizer
        self.model = reward_model
        self.tokenizer = reward_tokenizer
        self.score_fn = score_fn
        self.same_vocab = (
            reward_tokenizer is not None
            and reward_tokenizer.get_vocab() == policy_tokenizer.get_vocab()
        )
        self.eos = policy_tokenizer.eos_token_id
        self.max_length = 512

    @torch.no_grad()
    def __call__(
        self,
        prompts: list[Prompt],
        query_ids: list[list[int]],
        responses: torch.Tensor,
        lengths: torch.Tensor,
        texts: list[str],
    ) -> torch.Tensor:
        if self.score_fn is not None:
            scores = self.score_fn([p.prompt for p in prompts], texts)
            return torch.tensor([float(s) for s in scores], dtype=torch.float32)
        rows, spans = [], []
        for i, prompt in enumerate(prompts):
            if self.same_vocab:
                length = int(lengths[i])
                rows.append(query_ids[i] + responses[i, :length].tolist())
                ends_with_eos = length > 0 and int(responses[i, length - 1]) == self.eos
                start = len(query_ids[i])
                spans.append(models.completion_span(start, start + length, ends_with_eos))
            else:
                row, span = encode_scored(self.tokenizer, prompt.prompt, texts[i], self.max_length)
                rows.append(row)
                spans.append(span)
        ids, mask, completion_mask = rows_batch(rows, spans, self.tokenizer.pad_token_id)
        device = next(self.model.parameters()).device
        return (
            models.reward_scores(
                self.model, ids.to(device), mask.to(device), completion_mask.to(device)
            )
            .float()
            .cpu()
        )


def _load_weights(model: nn.Module, directory: Path) -> None:
    from safetensors.torch import load_file

    if models.is_peft(model):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(directory / "adapter_model.safetensors")))
        return
    state = load_file(str(directory / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or [])
    if unexpected or any(k not in tied and "lm_head" not in k for k in missing):
        raise DataError(
            f"{directory}: checkpoint does not match the model "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def _rng_generator(*parts) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*parts))


def train_ppo(config: PPOConfig, score_fn: ScoreFn | None = None) -> dict:
    """Python API and the ``ppo`` command; ``score_fn`` replaces the reward model."""
    from accelerate import Accelerator

    check_config(config)
    if score_fn is None and config.score_fn:
        score_fn = load_scorer(config.score_fn)
    if score_fn is None and not config.reward_model:
        raise DataError("give --reward-model DIR or --score-fn NAME (a registered scorer)")
    use_threads(config.threads, config.adapt_threads)
    seed_everything(config.seed)
    out = Path(config.out)
    checkpoint = out / CHECKPOINT_DIR
    prompts = read_prompts(config.prompts, split=config.split)
    ptx_texts = read_texts(config.ptx) if config.ptx and config.ptx_coef > 0 else []
    accelerator = Accelerator(cpu=config.device == "cpu")
    device = accelerator.device
    config = replace(config, precision=models.resolve_precision(config.precision, device))

    policy, tokenizer = models.load_policy(config.policy)
    # frozen models (reward, separate reference) are only read: in bf16 they can be stored so
    inference_dtype = models.dtype_of(config.precision)
    models.disable_dropout(policy)
    reward_model = reward_tokenizer = None
    if config.reward_model:
        reward_model, reward_tokenizer = models.load_scalar_model(
            config.reward_model, device, dtype=inference_dtype
        )
        models.disable_dropout(reward_model)
        reward_model.requires_grad_(False)
    use_value = config.advantage == "gae"
    value = None
    if use_value:
        value_source = config.value_model or config.reward_model or config.policy
        value, _ = models.load_scalar_model(value_source)
        if value_source == config.policy:
            models.zero_head(value)
        value.config.reward_bias = 0.0
        models.disable_dropout(value)
    reference = None
    reference_source = config.reference or config.policy
    if config.lora_r > 0:
        lora = dict(last_layers=config.lora_layers)
        policy = models.apply_lora(
            policy, config.lora_r, config.lora_alpha, 0.0, "CAUSAL_LM", **lora
        )
        if value is not None:
            value = models.apply_lora(
                value, config.lora_r, config.lora_alpha, 0.0, "SEQ_CLS", **lora
            )
    if config.lora_r == 0 or reference_source != config.policy:
        # With LoRA and no other reference, the adapters switched off are the reference.
        reference, _ = models.load_policy(reference_source, device, dtype=inference_dtype)
        models.disable_dropout(reference)
        reference.requires_grad_(False)
    scorer = RewardScorer(tokenizer, reward_model, reward_tokenizer, score_fn)
    sampler = (
        models.SamplingCopy(policy, config.policy, device) if config.precision == "bf16" else None
    )
    actor_critic = ActorCritic(policy, value)
    groups = [{"params": [p for p in policy.parameters() if p.requires_grad], "lr": config.lr}]
    if value is not None:
        groups.append(
            {
                "params": [p for p in value.parameters() if p.requires_grad],
                "lr": config.value_lr or config.lr,
            }
        )
    optimizer = models.adamw(groups, eps=1e-5, weight_decay=0.0)
    kl_controller = (
        AdaptiveKLController(
            config.kl_coef, config.kl_target, config.kl_horizon, floor=config.kl_coef_min
        )
        if config.adaptive_kl
        else FixedKLController(config.kl_coef)
    )

    start_step = 0
    resume_from = _whole_checkpoint(out) if config.resume else None
    if resume_from is not None:
        _load_weights(policy, resume_from / "policy")
        if value is not None:
            _load_weights(value, resume_from / "value")
        state = load_training_state(resume_from, optimizer)
        kl_controller.value = state["kl_coef"]
        start_step = state["step"]
        _truncate_metrics(out / METRICS_JSONL, start_step)
    actor_critic, optimizer = accelerator.prepare(actor_critic, optimizer)
    log = MetricsLog(out, append=start_step > 0) if accelerator.is_main_process else None

    encoded_prompts = {
        p.id: models.encode_prompt(tokenizer, p.prompt, config.max_prompt_tokens) for p in prompts
    }
    ptx_encoded = [
        tokenizer(t, add_special_tokens=False)["input_ids"][: config.ptx_max_length]
        for t in ptx_texts
    ]
    last_step = config.total_steps
    if config.stop_after is not None:
        last_step = min(last_step, start_step + config.stop_after)
    bar = progress(config.total_steps, "ppo", initial=start_step)
    history: list[dict] = []
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    rank, world = accelerator.process_index, accelerator.num_processes
    temperature = config.temperature
    group = config.samples_per_prompt

    def precision():
        return models.autocast(device, config.precision)

    # The layers below the adapters are run once per step (trainer/prefix.py) where nothing
    # else reads them: LoRA, no value model, no ptx batch through the same call, one process
    # (DDP must see the wrapped module's forward).
    cut = reference_cut = 0
    if CACHE_FROZEN_PREFIX and not use_value and not ptx_encoded and world == 1:
        cut = prefix.frozen_layers(policy)
        # a separate reference (round 2's base) shares them when its first layers are equal
        reference_cut = cut if reference is None else prefix.shared_layers(policy, reference, cut)

    for step in range(start_step, last_step):
        rebalance_threads()
        started = time.perf_counter()
        seed_everything(derive_seed(config.seed, "step", step))
        # Under `accelerate launch` each process takes its own slice of the prompt stream.
        batch_prompts = step_prompts(
            prompts, step * world + rank, config.batch_size, config.seed, group
        )
        query_rows = [encoded_prompts[p.id] for p in batch_prompts]
        queries, query_mask = pad_sequences(query_rows, pad, side="left")
        queries, query_mask = queries.to(device), query_mask.to(device)
        context_length = queries.size(1)
        unwrapped = accelerator.unwrap_model(actor_critic)

        # 1-3. rollout, EOS rules, scores
        unwrapped.eval()
        with torch.no_grad(), precision():
            sampled, sampled_logprobs = generate(
                unwrapped.policy if sampler is None else sampler.sync(),
                queries,
                query_mask,
                max_new_tokens=config.max_new_tokens,
                eos_token_id=eos,
                pad_token_id=pad,
                temperature=temperature,
                top_p=config.top_p,
                generators=make_generators(
                    [
                        derive_seed(config.seed, "rollout", step, rank, i)
                        for i in range(len(batch_prompts))
                    ]
                ),
                min_new_tokens=config.min_new_tokens,
            )
            sampled_at = time.perf_counter()
            responses, lengths, contains_eos = truncate_after_eos(sampled, eos, pad)
            response_mask = lengths_to_mask(lengths, responses.size(1))
            texts = [
                tokenizer.decode(responses[i, : int(lengths[i])].tolist(), skip_special_tokens=True)
                for i in range(len(lengths))
            ]
            scores = scorer(batch_prompts, query_rows, responses.cpu(), lengths.cpu(), texts).to(
                device
            )
            scored_at = time.perf_counter()
            raw_scores = scores.clone()
            if config.missing_eos_penalty is not None:
                scores = scores - config.missing_eos_penalty * (~contains_eos).float()

            # 4. logprobs (policy: from the rollout itself, at the sampling temperature, or in
            #    bf16 from a forward pass like the update's; reference: one forward pass) and
            #    values on prompt+response
            sequences = torch.cat([queries, responses], 1)
            sequence_mask = torch.cat([query_mask, response_mask.long()], 1)
            keep = responses.size(1) + 1  # logits at the response only
            policy_pass = ResponseLogits(
                unwrapped, sequences, sequence_mask, keep, cut, context_length if group > 1 else 0
            )
            if config.precision == "fp32":
                logprobs = sampled_logprobs
            else:
                # rounding differs between the cached decoding and a full forward pass: the
                # ratios of the update must start from the update's own computation
                logprobs, _ = response_logprobs(
                    policy_pass(),
                    responses,
                    temperature,
                    eos,
                    config.min_new_tokens,
                )
            if reference is not None and reference_cut and policy_pass.cached:
                ref_logits = policy_pass.suffix(reference, reference_cut)
            elif reference is not None:
                ref_logits = policy_logits(reference, sequences, sequence_mask, keep)
            else:
                with unwrapped.policy.disable_adapter():
                    ref_logits = policy_pass()
            ref_logprobs, _ = response_logprobs(
                ref_logits, responses, temperature, eos, config.min_new_tokens
            )
            del ref_logits
            logprobs = logprobs.float().masked_fill(~response_mask, INVALID_LOGPROB)
            ref_logprobs = ref_logprobs.masked_fill(~response_mask, INVALID_LOGPROB)

            # 5. per-token rewards and advantages: GAE on the value model, or RLOO
            beta = kl_controller.value
            rewards, non_score, kl = kl_penalized_rewards(
                logprobs, ref_logprobs, scores, lengths, beta
            )
            values = returns = None
            if use_value:
                full_values = models.token_values(unwrapped.value, sequences, sequence_mask)
                values = full_values[:, context_length - 1 : -1].float()
                values = values.masked_fill(~response_mask, 0.0)
                if config.whiten_rewards:
                    rewards = masked_whiten(rewards, response_mask, shift_mean=False)
                advantages, returns = gae(rewards, values, response_mask, config.gamma, config.lam)
            else:
                sequence_returns = rewards.sum(1)  # score - beta * KL of the whole response
                advantages = leave_one_out_advantages(sequence_returns, group).unsqueeze(1)
                advantages = advantages * response_mask.to(advantages.dtype)
            advantages = masked_whiten(advantages, response_mask)

        # 6. PPO epochs over shuffled minibatches
        prepared_at = time.perf_counter()
        unwrapped.train()
        stats: dict[str, list[float]] = {
            k: []
            for k in (
                "policy_loss",
                "value_loss",
                "approx_kl",
                "clip_fraction",
                "value_clip_fraction",
                "entropy",
                "ratio",
                "ptx_loss",
            )
        }
        order_generator = _rng_generator(config.seed, "minibatch", step)
        ptx_generator = _rng_generator(config.seed, "ptx", step)
        for _ in range(config.ppo_epochs):
            order = torch.randperm(config.batch_size, generator=order_generator).to(device)
            for start in range(0, config.batch_size, config.mini_batch_size):
                idx = order[start : start + config.mini_batch_size]
                ptx_ids = ptx_mask = None
                if ptx_encoded:
                    pick = torch.randint(
                        len(ptx_encoded), (config.ptx_batch_size,), generator=ptx_generator
                    ).tolist()
                    ptx_ids, ptx_mask = pad_sequences(
                        [ptx_encoded[i] for i in pick], pad, side="right"
                    )
                    ptx_ids, ptx_mask = ptx_ids.to(device), ptx_mask.to(device)
                with precision():
                    if not policy_pass.cached:
                        new_logits, new_full_values, ptx_logits = actor_critic(
                            sequences[idx], sequence_mask[idx], ptx_ids, ptx_mask, keep
                        )
                    else:
                        new_logits, new_full_values, ptx_logits = policy_pass(idx), None, None
                new_logprobs, step_logits = response_logprobs(
                    new_logits, responses[idx], temperature, eos, config.min_new_tokens
                )
                mb_mask = response_mask[idx]
                new_logprobs = new_logprobs.masked_fill(~mb_mask, INVALID_LOGPROB)
                policy_stats = ppo_policy_loss(
                    new_logprobs, logprobs[idx], advantages[idx], mb_mask, config.clip_range
                )
                loss = policy_stats.loss
                if use_value:
                    new_values = new_full_values[:, context_length - 1 : -1].float()
                    value_loss, value_clip = ppo_value_loss(
                        new_values, values[idx], returns[idx], mb_mask, config.clip_range_value
                    )
                    loss = loss + config.vf_coef * value_loss
                    stats["value_loss"].append(value_loss.item())
                    stats["value_clip_fraction"].append(value_clip.item())
                if ptx_logits is not None:
                    ptx_loss = sequence_logprob_loss(ptx_logits.float(), ptx_ids, ptx_mask)
                    loss = loss + config.ptx_coef * ptx_loss
                    stats["ptx_loss"].append(ptx_loss.item())
                accelerator.backward(loss)
                if config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(actor_critic.parameters(), config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():
                    entropy = masked_mean(entropy_from_logits(step_logits), mb_mask)
                stats["policy_loss"].append(policy_stats.loss.item())
                stats["approx_kl"].append(policy_stats.approx_kl.item())
                stats["clip_fraction"].append(policy_stats.clip_fraction.item())
                stats["entropy"].append(entropy.item())
                stats["ratio"].append(policy_stats.ratio_mean.item())

        # 7. beta, diagnostics, checkpoint
        # every process must move beta the same way: use the KL of the global batch
        mean_kl = float(accelerator.gather(kl.sum(1).mean().reshape(1)).mean())
        kl_controller.update(mean_kl, config.batch_size * world)
        row = {
            "score": float(raw_scores.mean()),
            "score_with_penalty": float(scores.mean()),
            "non_score_reward": float(non_score.sum(1).mean()),
            "reward_total": float(rewards.sum(1).mean()),
            "kl": mean_kl,
            "beta": beta,
            "response_length": float(lengths.float().mean()),
            "eos_fraction": float(contains_eos.float().mean()),
            "advantage_mean_raw": (
                float(masked_mean(returns - values, response_mask)) if use_value else None
            ),
            "step_seconds": time.perf_counter() - started,
            # where the step's time went: rollout, scoring, log-probabilities and advantages
            # (the prefix pass included), the epochs' updates
            "rollout_seconds": sampled_at - started,
            "score_seconds": scored_at - sampled_at,
            "logprob_seconds": prepared_at - scored_at,
            "update_seconds": time.perf_counter() - prepared_at,
            "threads": torch.get_num_threads(),
            **{k: (sum(v) / len(v) if v else None) for k, v in stats.items()},
        }
        history.append(row)
        if log:
            log.log(step + 1, total_steps=config.total_steps, **row)
        bar.update(1)
        bar.set_postfix(score=f"{row['score']:.3f}", kl=f"{mean_kl:.3f}")
        done = step + 1
        if accelerator.is_main_process and (
            done == last_step or (config.save_every and done % config.save_every == 0)
        ):
            _save_checkpoint(
                accelerator.unwrap_model(actor_critic),
                tokenizer,
                optimizer,
                kl_controller.value,
                done,
                checkpoint,
                config,
            )
    bar.close()
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return {}
    finished = last_step >= config.total_steps
    summary = _summarise(history)
    if finished:
        final = accelerator.unwrap_model(actor_critic)
        models.save_model(models.merge_lora(_copy_if_peft(final.policy)), tokenizer, out, config)
        if final.value is not None:
            models.save_model(
                models.merge_lora(_copy_if_peft(final.value)),
                tokenizer,
                out / "value_model",
                config,
            )
    return log.finish(
        steps_done=last_step,
        finished=finished,
        start_step=start_step,
        **summary,
        final_beta=kl_controller.value,
        config=asdict(config),
    )


def _copy_if_peft(model):
    if models.is_peft(model):
        import copy

        return copy.deepcopy(model)
    return model


def _summarise(history: list[dict]) -> dict:
    if not history:
        return {}
    window = max(1, math.ceil(len(history) / 4))
    first, last = history[:window], history[-window:]

    def mean(rows, key):
        values = [r[key] for r in rows if r.get(key) is not None]
        return sum(values) / len(values) if values else None

    return {
        "score_first": mean(first, "score"),
        "score_last": mean(last, "score"),
        "kl_last": mean(last, "kl"),
        "response_length_last": mean(last, "response_length"),
        "eos_fraction_last": mean(last, "eos_fraction"),
        "step_seconds_mean": mean(history, "step_seconds"),
        **{
            f"{phase}_seconds_mean": mean(history, f"{phase}_seconds")
            for phase in ("rollout", "score", "logprob", "update")
        },
    }


def _save_checkpoint(
    actor_critic: ActorCritic,
    tokenizer,
    optimizer,
    kl_coef: float,
    step: int,
    directory: Path,
    config: PPOConfig,
) -> None:
    """policy/ and value/ in save_pretrained format (adapters only under LoRA), plus the
    optimizer, beta and step needed to continue bit-for-bit (trainer/checkpoint.py:
    safetensors and JSON, no pickle).

    A kill at any instant leaves one whole checkpoint to resume from: the new one is written
    beside the old (its training state last, which marks it whole), the old one steps aside
    to ``.old`` and the new one takes its name, and only then is the old one deleted."""
    tmp, old = directory.parent / CHECKPOINT_TMP, directory.parent / CHECKPOINT_OLD
    shutil.rmtree(tmp, ignore_errors=True)  # a save that a kill cut short
    actor_critic.policy.save_pretrained(tmp / "policy")
    tokenizer.save_pretrained(tmp / "policy")
    if actor_critic.value is not None:
        actor_critic.value.save_pretrained(tmp / "value")
    (tmp / models.TRAINER_CONFIG_FILE).write_text(json.dumps(asdict(config), indent=2))
    save_training_state(tmp, optimizer, kl_coef=kl_coef, step=step)
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def _whole_checkpoint(out: Path) -> Path | None:
    """The checkpoint to resume from: ``out/checkpoint``, or ``out/checkpoint.old`` where a kill
    fell between stepping it aside and putting the new one in its place; None for neither."""
    for candidate in (out / CHECKPOINT_DIR, out / CHECKPOINT_OLD):
        if has_training_state(candidate):
            return candidate
    return None


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric rows logged after the checkpoint we resume from, and a last row that a
    kill cut in half."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if _metric_step(line) <= step]
    path.write_text("".join(line + "\n" for line in keep))


def _metric_step(line: str) -> float:
    """The step a metrics row was logged at; infinity for a row that is not whole JSON."""
    try:
        row = json.loads(line)
    except ValueError:
        return math.inf
    return row.get("step", 0) if isinstance(row, dict) else math.inf
