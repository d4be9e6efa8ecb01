"""Supervised fine-tuning on demonstrations (InstructGPT section 3.5, "SFT").

The loss covers the completion tokens only (the prompt is context), and an EOS is appended to
every completion so the policy learns to stop.

    python -m trainer sft --model BASE_DIR --train demonstrations.jsonl --out SFT_DIR
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import torch

from trainer import models
from trainer.contract import SFTConfig
from trainer.data import DataError, Demonstration, read_demonstrations
from trainer.losses import sequence_logprob_loss
from trainer.ops import pad_sequences
from trainer.runlog import (
    MetricsLog,
    progress,
    rebalance_threads,
    seed_everything,
    use_threads,
)


def encode_demonstration(tokenizer, demo: Demonstration, max_length: int):
    """(token ids, label mask): the mask is 1 on the completion tokens and the final EOS."""
    completion = models.encode_completion(tokenizer, demo.completion, max_length)
    room = max(max_length - len(completion), 0)
    prompt = models.encode_prompt(tokenizer, demo.prompt)
    prompt = prompt[-room:] if room else []
    return prompt + completion, [0] * len(prompt) + [1] * len(completion)


def collate(batch, pad_token_id: int):
    ids, attention = pad_sequences([b[0] for b in batch], pad_token_id, side="right")
    labels_mask, _ = pad_sequences([b[1] for b in batch], 0, side="right")
    return {"input_ids": ids, "attention_mask": attention, "label_mask": labels_mask}


def lm_loss(model, batch, device) -> torch.Tensor:
    ids = batch["input_ids"].to(device)
    attention = batch["attention_mask"].to(device)
    logits = model(input_ids=ids, attention_mask=attention).logits
    return sequence_logprob_loss(logits.float(), ids, batch["label_mask"].to(device))


@torch.no_grad()
def validation_loss(model, tokenizer, demos, max_length: int, batch_size: int = 16) -> float:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, weight = 0.0, 0.0
    encoded = [encode_demonstration(tokenizer, d, max_length) for d in demos]
    for start in range(0, len(encoded), batch_size):
        batch = collate(encoded[start : start + batch_size], tokenizer.pad_token_id)
        n = float(batch["label_mask"][:, 1:].sum())
        total += float(lm_loss(model, batch, device)) * n
        weight += n
    model.train(was_training)
    return total / max(weight, 1.0)


def train_sft(config: SFTConfig, train: list[Demonstration] | None = None) -> dict:
    from accelerate import Accelerator

    use_threads(config.threads, config.adapt_threads)
    seed_everything(config.seed)
    train = train if train is not None else read_demonstrations(config.train)
    valid = read_demonstrations(config.valid) if config.valid else []
    if config.max_length < 2:
        raise DataError("--max-length must be at least 2")
    accelerator = Accelerator(cpu=config.device == "cpu")
    model, tokenizer = models.load_policy(config.model)
    if config.lora_r > 0:
        model = models.apply_lora(model, config.lora_r, config.lora_alpha, 0.05, "CAUSAL_LM")
    encoded = [encode_demonstration(tokenizer, d, config.max_length) for d in train]
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
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    total_steps = config.epochs * len(loader)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / max(total_steps, 1), 1.0))),
    )
    log = MetricsLog(config.out) if accelerator.is_main_process else None
    bar = progress(total_steps, "sft")
    step, first_loss, last_loss = 0, None, None
    model.train()
    for epoch in range(config.epochs):
        for batch in loader:
            if step >= total_steps:
                break
            rebalance_threads()
            loss = lm_loss(model, batch, accelerator.device)
            accelerator.backward(loss)
            if config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            last_loss = loss.item()
            first_loss = last_loss if first_loss is None else first_loss
            bar.update(1)
            bar.set_postfix(loss=f"{last_loss:.4f}")
            if log:
                log.log(
                    step,
                    total_steps=total_steps,
                    epoch=epoch,
                    loss=last_loss,
                    lr=scheduler.get_last_lr()[0],
                )
    bar.close()
    accelerator.wait_for_everyone()
    trained = models.merge_lora(accelerator.unwrap_model(model))
    trained.eval()
    valid_loss = validation_loss(trained, tokenizer, valid, config.max_length) if valid else None
    if not accelerator.is_main_process:
        return {}
    models.save_model(trained, tokenizer, Path(config.out), config)
    return log.finish(
        steps=step,
        first_loss=first_loss,
        final_loss=last_loss,
        valid_loss=valid_loss,
        train_examples=len(encoded),
        config=asdict(config),
    )
