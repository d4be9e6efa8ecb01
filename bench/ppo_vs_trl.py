"""One PPO update: PrefLoop's ``trainer.ppo`` against ``trl.experimental.ppo`` (trl 1.12.0).

Same tiny GPT-2 (built in code), same reward/value model (its trunk with a seeded scalar
head), same settings: batch 8 prompts, 16 response tokens, 4 PPO epochs over 2 minibatches,
EOS stop with a missing-EOS penalty, per-token KL (beta 0.05). An update is everything one
iteration does: rollout, reference and value passes, reward, GAE, 4 epochs of minibatch steps.
Each side runs ``--updates`` updates per run; the first update of a run is warm-up and dropped;
runs alternate and the median update time of each side is reported with the ratio.

trl 1.12.0 (the last release with PPO) lives in its own virtualenv so the project keeps 1.16:

    python3.11 -m venv var/bench-venv-trl112
    var/bench-venv-trl112/bin/pip install torch==2.13.0
    var/bench-venv-trl112/bin/pip install torch==2.13.0 trl==1.12.0
    var/bench-venv-trl112/bin/python bench/ppo_vs_trl.py --repeats 5

On a GPU: ``--device cuda --model smollm2-shape`` uses a random-initialised Llama with
SmolLM2-135M-Instruct's shape (576 hidden, 30 layers, 9 heads / 3 KV heads, 1536 MLP, vocab
49152, tied embeddings; 134.5 M parameters) for policy, reference, reward and value models
instead of the tiny GPT-2, with the tiny model's character tokenizer (its 99 ids fit the
vocabulary). Random weights rarely sample EOS, so responses run to the full length on both
sides. ``--precision``: ``fp32`` (the default on cuda: both sides in float32, as
``python -m trainer ppo`` trains; TRL's gradient checkpointing flag off), ``bf16`` (both sides
under bf16 autocast, PrefLoop as under ``accelerate launch --mixed_precision bf16``; TRL's PPO
builds its Accelerator from that same setting), ``trl-defaults`` (the default on cpu, as the
CPU numbers ran: TRL's PPOConfig defaults; its PPO trainer still trains in float32, see the
``mixed_precision`` it reports). The trl 1.12.0 install may live in its own folder instead of
a virtualenv: ``PYTHONPATH=/tmp/site-ppo python3 bench/ppo_vs_trl.py --device cuda ...``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.bench_models import (  # noqa: E402
    accelerate_precision,
    add_model_arguments,
    build_model,
    model_shape,
    reset_accelerate,
)
from trainer import models  # noqa: E402
from trainer.data import write_jsonl  # noqa: E402
from trainer.ppo import PPOConfig, train_ppo  # noqa: E402

BATCH, MINI_BATCHES, EPOCHS, RESPONSE = 8, 2, 4, 16
KL_COEF, PENALTY, LR = 0.05, 1.0, 1e-4


def prepare(root: Path, n_prompts: int, kind: str = "tiny", layers: int | None = None):
    from transformers import AutoModelForSequenceClassification

    policy_dir, rm_dir = root / "policy", root / "rm"
    model, tokenizer = build_model(kind, "gpt2", layers)
    shape = {"kind": kind, **model_shape(model)}
    models.save_model(model, tokenizer, policy_dir)
    del model
    torch.manual_seed(1)
    reward = AutoModelForSequenceClassification.from_pretrained(str(policy_dir), num_labels=1)
    torch.nn.init.normal_(reward.score.weight, std=0.5)
    models.save_model(reward, tokenizer, rm_dir)
    prompts = root / "prompts.jsonl"
    write_jsonl(
        prompts,
        [
            {
                "id": str(i),
                "prompt": f"Question {i}: tell me about " + "ab" * (i % 7),
                "category": "generation",
                "split": "train",
            }
            for i in range(n_prompts)
        ],
    )
    return policy_dir, rm_dir, prompts, shape


def run_prefloop(policy_dir: Path, rm_dir: Path, prompts: Path, updates: int, out: Path, args):
    reset_accelerate(args.precision)
    train_ppo(
        PPOConfig(
            policy=str(policy_dir),
            reward_model=str(rm_dir),
            prompts=str(prompts),
            out=str(out),
            total_steps=updates,
            batch_size=args.batch,
            mini_batch_size=args.batch // MINI_BATCHES,
            ppo_epochs=EPOCHS,
            max_new_tokens=args.response_tokens,
            kl_coef=KL_COEF,
            lr=LR,
            missing_eos_penalty=PENALTY,
            save_every=0,
            device=args.device,
            seed=0,
        )
    )
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    shutil.rmtree(out, ignore_errors=True)  # policy, value and checkpoint: GBs at 135M
    return [r["step_seconds"] for r in rows], {"mixed_precision": accelerate_precision()}


def run_trl(policy_dir: Path, rm_dir: Path, prompts: Path, updates: int, out: Path, args):
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        TrainerCallback,
    )
    from trl.experimental.ppo import PPOConfig as TRLPPOConfig
    from trl.experimental.ppo import PPOTrainer

    tokenizer = models.load_tokenizer(str(policy_dir))
    policy = AutoModelForCausalLM.from_pretrained(str(policy_dir))
    reference = AutoModelForCausalLM.from_pretrained(str(policy_dir))
    reward = AutoModelForSequenceClassification.from_pretrained(str(rm_dir), num_labels=1)
    value = AutoModelForSequenceClassification.from_pretrained(str(rm_dir), num_labels=1)
    rows = [json.loads(line) for line in prompts.read_text().splitlines()]
    dataset = Dataset.from_list(
        [{"input_ids": models.encode_prompt(tokenizer, r["prompt"])} for r in rows]
    )

    class Clock(TrainerCallback):
        def __init__(self):
            self.marks = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.marks.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.marks.append(time.perf_counter())

    cuda = args.device == "cuda"
    clock = Clock()
    reset_accelerate(args.precision)
    matched = (
        {}
        if args.precision == "trl-defaults"
        else {"bf16": args.precision == "bf16", "fp16": False, "gradient_checkpointing": False}
    )
    config = TRLPPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=args.batch,
        gradient_accumulation_steps=1,
        num_mini_batches=MINI_BATCHES,
        num_ppo_epochs=EPOCHS,
        response_length=args.response_tokens,
        total_episodes=args.batch * updates,
        learning_rate=LR,
        stop_token="eos",
        missing_eos_penalty=PENALTY,
        kl_coef=KL_COEF,
        temperature=1.0,
        report_to=[],
        save_strategy="no",
        num_sample_generations=0,
        use_cpu=not cuda,
        local_rollout_forward_batch_size=args.batch,
        disable_tqdm=True,
        logging_steps=10_000,
        seed=0,
        dataloader_num_workers=0,
        **matched,
    )
    trainer = PPOTrainer(
        args=config,
        processing_class=tokenizer,
        model=policy,
        ref_model=reference,
        reward_model=reward,
        value_model=value,
        train_dataset=dataset,
        callbacks=[clock],
    )
    trainer.train()
    shutil.rmtree(out, ignore_errors=True)
    info = {
        "mixed_precision": str(trainer.accelerator.mixed_precision),
        "gradient_checkpointing": bool(getattr(policy, "is_gradient_checkpointing", False)),
    }
    return [b - a for a, b in zip(clock.marks, clock.marks[1:], strict=False)], info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=6, help="updates per run (1st dropped)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for both sides (0: torch default); 1 keeps "
        "a shared 2-core machine from thrashing",
    )
    parser.add_argument("--repeats", type=int, default=5)
    add_model_arguments(parser, tiny_help="GPT-2 of ~90k parameters")
    parser.add_argument("--batch", type=int, default=BATCH, help="prompts per rollout")
    parser.add_argument("--response-tokens", type=int, default=RESPONSE)
    parser.add_argument("--json", type=Path, default=Path("var/bench/ppo_vs_trl.json"))
    args = parser.parse_args()
    if args.precision is None:
        args.precision = "trl-defaults" if args.device == "cpu" else "fp32"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.batch % MINI_BATCHES:
        parser.error(f"--batch must be a multiple of {MINI_BATCHES}")
    if args.threads:
        torch.set_num_threads(args.threads)
    import accelerate
    import transformers
    import trl
    from transformers.utils import logging

    logging.set_verbosity_error()
    times = {"prefloop": [], "trl": []}
    runs = {"prefloop": [], "trl": []}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        policy_dir, rm_dir, prompts, shape = prepare(root, 64, args.model, args.layers)
        for repeat in range(args.repeats):
            for name, fn in (("prefloop", run_prefloop), ("trl", run_trl)):
                per_update, info = fn(
                    policy_dir, rm_dir, prompts, args.updates, root / f"{name}-{repeat}", args
                )
                times[name] += per_update[1:]
                runs[name].append({"update_seconds": per_update, **info})
                print(
                    f"{name} run {repeat}: " + ", ".join(f"{t:.3f}" for t in per_update), flush=True
                )
            medians = {k: statistics.median(v) for k, v in times.items()}
            results = {
                "date": time.strftime("%Y-%m-%d"),
                "machine": platform.machine(),
                "device": args.device,
                "device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
                "torch_threads": torch.get_num_threads(),
                "trl": trl.__version__,
                "versions": {
                    "python": platform.python_version(),
                    "torch": torch.__version__,
                    "cuda": torch.version.cuda,
                    "transformers": transformers.__version__,
                    "accelerate": accelerate.__version__,
                    "trl": trl.__version__,
                    "trl_path": str(Path(trl.__file__).parent),
                },
                "model": shape,
                "precision": args.precision,
                "float32_matmul_precision": torch.get_float32_matmul_precision(),
                "settings": {
                    "batch": args.batch,
                    "response_tokens": args.response_tokens,
                    "ppo_epochs": EPOCHS,
                    "mini_batches": MINI_BATCHES,
                    "updates_per_run": args.updates,
                    "repeats": args.repeats,
                    "repeats_done": repeat + 1,
                },
                "median_update_seconds": medians,
                "samples": {k: len(v) for k, v in times.items()},
                "trl_over_prefloop": medians["trl"] / medians["prefloop"],
                "runs": runs,
            }
            # after every repeat: a time-boxed run keeps what it finished
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
