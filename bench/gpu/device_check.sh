#!/usr/bin/env bash
# PrefLoop on a GPU, in one call: does the trainer run on CUDA at all, and how do the RM and PPO
# benchmarks compare with TRL on a SmolLM2-135M-shaped model there?
#
# Runs from the repository root with $OUT set (the device tool's output folder); writes only
# there, flat:
#   device_check.log   everything every step printed, with a header per step
#   summary.tsv        step, status (ok / FAIL / TIMEOUT / SKIP), exit code, seconds
#   env.json           python, torch, CUDA, GPU, package versions
#   trainer_smoke.json per `python3 -m trainer` smoke step: exit code, seconds, GPU memory the
#                      process allocated (proof it ran on the GPU), its metrics.json
#   rm_vs_trl.json     bench/rm_vs_trl.py   --device cuda --model smollm2-shape, K=4 and K=9
#   ppo_vs_trl.json    bench/ppo_vs_trl.py  --device cuda --model smollm2-shape
#   rm_vs_trl_bf16.json the RM bench at K=4 with both sides in bf16 (only if time is left)
#
# Steps, each under `timeout`; a failed step is logged and the next one runs:
#   (a) nvidia-smi, versions;  install trl 1.16.0 (+datasets, dill, multiprocess) from
#       .whl/rm into /tmp/site-rm and trl 1.12.0 (+ the same) from .whl/ppo into /tmp/site-ppo
#       (two trl versions cannot share one --target; the device has no network, no trl,
#       datasets, dill, multiprocess);
#   (b) the trainer CLI on CUDA with a tiny model made in code (no GGUF there): bootstrap --tiny,
#       rm, ppo (stopped after 2 of 4 steps, then --resume, with ptx), ppo with LoRA, eval;
#   (c) bench/rm_vs_trl.py, (d) bench/ppo_vs_trl.py, (e) RM bench in bf16 if time is left.
# Wall time on an H100 is planned at ~5 min (machine start extra); DEADLINE (default 420 s
# after the start) caps every step so the script ends in time to print its summary.
#
# The lead's call (the wheels are ignored by git, so they travel only when carried; `.whl` must
# exist in the checkout first, see below):
#   run(command="bash bench/gpu/device_check.sh", carry=[".whl"], timeout_s=540)
#
# Making .whl (3.6 MiB; git-ignored through .git/info/exclude), from the repository root:
#   grep -q '^/.whl/' .git/info/exclude || echo /.whl/ >> .git/info/exclude
#   D="--no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#      --platform manylinux2014_x86_64"
#   python3 -m pip download $D -d .whl/rm  trl==1.16.0 datasets==5.2.0 dill==0.4.1 \
#       multiprocess==0.70.19
#   python3 -m pip download $D -d .whl/ppo trl==1.12.0 datasets==5.2.0 dill==0.4.1 \
#       multiprocess==0.70.19
#
# Environment overrides, for a dry run on a CPU machine (no GPU needed):
#   OUT=/tmp/devout DEVICE=cpu QUICK=1 PYTHON=.venv/bin/python bash bench/gpu/device_check.sh
#   DEVICE   cuda (default) or cpu
#   QUICK    1: tiny sizes everywhere (2-layer/1-layer SmolLM2 shape, one repeat)
#   PYTHON   interpreter (default python3)
#   DEADLINE seconds after the start when the last step must end (default 420)
#   WORK     scratch folder (default /tmp/device_check; emptied first)
# PYTHONPATH set by the caller is kept behind the trl folders (e.g. to try other
# transformers versions in a dry run).

set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:?OUT must name the output folder}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
DEADLINE=${DEADLINE:-420}
WORK=${WORK:-/tmp/device_check}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
mkdir -p "$OUT"
rm -rf "$WORK" && mkdir -p "$WORK/gpu" "$WORK/sitecustomize"
LOG=$OUT/device_check.log
SUMMARY=$OUT/summary.tsv
: >"$LOG"
printf 'step\tstatus\texit\tseconds\n' >"$SUMMARY"
SITE_RM=/tmp/site-rm
SITE_PPO=/tmp/site-ppo
BASE_PYTHONPATH=${PYTHONPATH:-}
with_path() { echo "$1${BASE_PYTHONPATH:+:$BASE_PYTHONPATH}"; }
export OUT PYTHON DEVICE WORK BASE_PYTHONPATH
export -f with_path

# No network there: never let a library wait on the hub. Bars off (they bury the log).
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME=$WORK/hf
export TOKENIZERS_PARALLELISM=false TQDM_DISABLE=1 HF_DATASETS_DISABLE_PROGRESS_BARS=1
if [ "$DEVICE" = cpu ]; then
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    THREADS=1
else
    THREADS=0 # torch's default: the card does the work, the 16 cores are otherwise idle
fi

say() { echo "$*" | tee -a "$LOG"; }
now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; } # EPOCHREALTIME: bash 5

# step NAME BUDGET_S RESERVE_S command...: runs the command under `timeout`, at most BUDGET_S
# and never past DEADLINE - RESERVE_S (time kept for the steps after it); logs and records it.
step() {
    local name=$1 budget=$2 reserve=$3
    shift 3
    local left=$((DEADLINE - SECONDS - reserve))
    if ((left < 15)); then
        say "--- $name: SKIP (only ${left}s left before the deadline)"
        printf '%s\tSKIP\t-\t0\n' "$name" >>"$SUMMARY"
        return 1
    fi
    ((budget > left)) && budget=$left
    {
        echo
        echo "=== $name (timeout ${budget}s, t=${SECONDS}s): $*"
    } >>"$LOG"
    local start rc status
    start=$(now)
    if declare -F "$1" >/dev/null; then # a function of this script: in a child bash
        timeout -k 10 "$budget" bash -c '"$@"' "$1" "$@" >>"$LOG" 2>&1
    else
        timeout -k 10 "$budget" "$@" >>"$LOG" 2>&1
    fi
    rc=$?
    local seconds
    seconds=$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    case $rc in
        0) status=ok ;;
        124 | 137) status=TIMEOUT ;;
        *) status=FAIL ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$seconds" >>"$SUMMARY"
    echo "=== $name: $status (exit $rc, ${seconds}s)" >>"$LOG"
    echo "--- $name: $status (exit $rc, ${seconds}s)"
    if [ "$status" != ok ]; then
        echo "    last lines of its output:"
        awk -v n="$name" '$0 ~ "^=== "n" \\(" { keep = 1; buf = "" } keep { buf = buf $0 "\n" }
            END { printf "%s", buf }' "$LOG" | tail -n 15 | sed 's/^/    /'
    fi
    [ "$status" = ok ]
}

say "device_check: DEVICE=$DEVICE QUICK=$QUICK PYTHON=$PYTHON DEADLINE=${DEADLINE}s $(date -u +%FT%TZ)"
say "commit: $(git rev-parse HEAD 2>/dev/null || echo 'no .git here')"

# ------------------------------------------------------------------ (a) machine and versions
env_info() {
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi
        nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm \
            --format=csv
    else
        echo "no nvidia-smi"
    fi
    "$PYTHON" - "$OUT/env.json" <<'PY'
import importlib.metadata as md
import importlib.util
import json
import platform
import sys

import torch

info = {
    "python": platform.python_version(),
    "executable": sys.executable,
    "torch": torch.__version__,
    "torch_cuda": torch.version.cuda,
    "cuda_available": torch.cuda.is_available(),
    "float32_matmul_precision": torch.get_float32_matmul_precision(),
    "cpu_count": __import__("os").cpu_count(),
}
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    info |= {
        "device_name": torch.cuda.get_device_name(0),
        "capability": list(torch.cuda.get_device_capability(0)),
        "memory_gib": round(props.total_memory / 2**30, 1),
        "multiprocessors": props.multi_processor_count,
        "bf16_supported": torch.cuda.is_bf16_supported(),
    }
packages = {}
for name in (
    "transformers", "accelerate", "peft", "tokenizers", "safetensors", "huggingface-hub",
    "numpy", "pandas", "pyarrow", "fsspec", "xxhash", "psutil", "jinja2", "pyyaml",
    "requests", "tqdm", "sacrebleu", "rouge-score",
    "trl", "datasets", "dill", "multiprocess", "gguf", "django",
):
    try:
        packages[name] = md.version(name)
    except md.PackageNotFoundError:
        packages[name] = None
info["packages"] = packages
# the trainer's steps must not need these (the device has none of them)
info["importable"] = {m: importlib.util.find_spec(m) is not None for m in ("gguf", "django")}
print(json.dumps(info, indent=2))
with open(sys.argv[1], "w") as handle:
    json.dump(info, handle, indent=2)
PY
}
export -f env_info
step env 60 0 env_info

install_trl() { # install_trl FOLDER TARGET EXPECTED_VERSION
    rm -rf "$2"
    # --python-version: the wheels were fetched for 3.12 (the device's); it lets a dry run on
    # another 3.x install them too
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --python-version 3.12 --only-binary=:all: --target "$2" "$1"/*.whl || return 1
    PYTHONPATH=$(with_path "$2") "$PYTHON" - "$2" "$3" <<'PY'
import sys

import datasets
import trl
from trl import RewardTrainer  # noqa: F401

if sys.argv[2] == "1.12.0":
    from trl.experimental.ppo import PPOTrainer  # noqa: F401
print("trl", trl.__version__, trl.__file__, "| datasets", datasets.__version__, datasets.__file__)
assert trl.__file__.startswith(sys.argv[1]), "trl was not imported from the target folder"
assert trl.__version__ == sys.argv[2], f"expected trl {sys.argv[2]}"
PY
}
export -f install_trl
step install_trl_rm 60 0 install_trl .whl/rm "$SITE_RM" 1.16.0
step install_trl_ppo 60 0 install_trl .whl/ppo "$SITE_PPO" 1.12.0

# ------------------------------------------------------------------ (b) the trainer CLI on $DEVICE
# A sitecustomize on PYTHONPATH (smoke steps only) records, at exit, how much GPU memory the
# `python3 -m trainer` process allocated: a clean exit alone would not prove it used the GPU.
cat >"$WORK/sitecustomize/sitecustomize.py" <<'PY'
import atexit
import json
import os
import sys


def _report():
    torch = sys.modules.get("torch")
    row = {"argv": sys.argv[1:2], "torch_imported": torch is not None}
    # the trainer must not need these on the device (it has none of them)
    row["imported"] = [m for m in ("gguf", "django", "trl", "datasets") if m in sys.modules]
    if torch is not None:
        try:
            row["cuda_available"] = torch.cuda.is_available()
            row["cuda_initialized"] = torch.cuda.is_initialized()
            if row["cuda_initialized"]:
                row["max_memory_allocated"] = torch.cuda.max_memory_allocated()
                row["device_name"] = torch.cuda.get_device_name(0)
        except Exception as exc:  # noqa: BLE001
            row["error"] = repr(exc)
    with open(os.environ["GPU_USAGE_FILE"], "w") as handle:
        json.dump(row, handle)


if os.environ.get("GPU_USAGE_FILE"):
    atexit.register(_report)
PY

"$PYTHON" - "$WORK" <<'PY'
"""Small synthetic inputs like tests/trainer's: prompts, count-the-x rankings, demonstrations."""
import json
import random
import sys
from pathlib import Path

work = Path(sys.argv[1])
rng = random.Random(0)


def write(name, rows):
    (work / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


def rankings(n, k, seed):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        completions = ["".join(rng.choice("abxy") for _ in range(8)) for _ in range(k)]
        counts = [c.count("x") for c in completions]
        levels = sorted(set(counts), reverse=True)
        groups = [[j for j in range(k) if counts[j] == level] for level in levels]
        rows.append({
            "prompt": f"q{seed}-{i}:", "completions": completions, "ranking": groups,
            "rater": "r1", "task_id": i, "judgment_id": i, "policy_versions": ["base"],
        })
    return rows


write("prompts.jsonl", [
    {"id": str(i), "prompt": f"Question {i}: say {'ab' * (i % 5)}",
     "category": ["chat", "rewrite"][i % 2], "split": "test" if i % 4 == 0 else "train"}
    for i in range(32)
])
write("rankings.jsonl", rankings(96, 4, 1))
write("valid.jsonl", rankings(32, 4, 2))
write("demos.jsonl", [
    {"prompt": f"Question {i}:", "completion": "x" * rng.randint(2, 8)} for i in range(32)
])
PY

smoke() { # smoke NAME BUDGET trainer-args...: `python3 -m trainer ...` with the GPU recorder
    local name=$1 budget=$2
    shift 2
    GPU_USAGE_FILE=$WORK/gpu/$name.json \
        PYTHONPATH=$(with_path "$WORK/sitecustomize") \
        step "smoke_$name" "$budget" 240 "$PYTHON" -m trainer "$@"
}
W=$WORK
smoke bootstrap 60 bootstrap --tiny --out "$W/tiny"
smoke rm 90 rm --model "$W/tiny" --train "$W/rankings.jsonl" --valid "$W/valid.jsonl" \
    --epochs 3 --batch-size 8 --lr 3e-3 --device "$DEVICE" --out "$W/rm"
PPO_ARGS=(--policy "$W/tiny" --reward-model "$W/rm" --prompts "$W/prompts.jsonl"
    --total-steps 4 --batch-size 8 --mini-batch-size 4 --max-new-tokens 16 --lr 1e-3
    --ptx "$W/demos.jsonl" --ptx-coef 0.5 --save-every 2 --device "$DEVICE")
smoke ppo 90 ppo "${PPO_ARGS[@]}" --stop-after 2 --out "$W/ppo"
smoke ppo_resume 90 ppo "${PPO_ARGS[@]}" --resume --out "$W/ppo"
smoke ppo_lora 90 ppo --policy "$W/tiny" --reward-model "$W/rm" --prompts "$W/prompts.jsonl" \
    --total-steps 2 --batch-size 8 --mini-batch-size 4 --max-new-tokens 16 --lora-r 8 \
    --save-every 0 --device "$DEVICE" --out "$W/ppo_lora"
smoke eval 90 eval --policy "$W/ppo" --reference-policy "$W/tiny" --reward-model "$W/rm" \
    --prompts "$W/prompts.jsonl" --split test --rankings "$W/valid.jsonl" \
    --max-new-tokens 16 --bootstrap-samples 200 --device "$DEVICE" --out "$W/eval"

"$PYTHON" - "$WORK" "$SUMMARY" "$OUT/trainer_smoke.json" "$DEVICE" <<'PY'
import csv
import json
import sys
from pathlib import Path

work, summary, out, device = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
keys = {
    "bootstrap": ["parameters", "seconds"],
    "rm": ["steps", "valid_accuracy", "valid_loss", "reward_bias"],
    "ppo": ["steps_done", "finished", "start_step", "score_first", "score_last", "kl_last",
            "step_seconds_mean"],
    "eval": ["reward_model_accuracy", "win_rate", "policy", "reference_policy"],
}
dirs = {"bootstrap": "tiny", "rm": "rm", "ppo": "ppo", "ppo_resume": "ppo",
        "ppo_lora": "ppo_lora", "eval": "eval"}
steps = {row["step"]: row for row in csv.DictReader(open(summary), delimiter="\t")}
report = {"device": device, "steps": {}}
for name, folder in dirs.items():
    row = steps.get(f"smoke_{name}", {})
    entry = {"status": row.get("status", "not run"), "exit": row.get("exit"),
             "seconds": float(row["seconds"]) if row.get("seconds") not in (None, "-") else None}
    gpu = work / "gpu" / f"{name}.json"
    entry["gpu"] = json.loads(gpu.read_text()) if gpu.is_file() else None
    metrics_file = work / folder / "metrics.json"
    if metrics_file.is_file() and entry["status"] == "ok":
        metrics = json.loads(metrics_file.read_text())
        wanted = keys.get(name.split("_")[0], [])
        entry["metrics"] = {k: metrics[k] for k in wanted if k in metrics} or {
            k: v for k, v in metrics.items() if not isinstance(v, dict | list)
        }
    if name.startswith("ppo"):
        rows = work / folder / "metrics.jsonl"
        if rows.is_file():
            entry["step_seconds"] = [
                round(json.loads(line)["step_seconds"], 3)
                for line in rows.read_text().splitlines() if line.strip()
            ]
    used_gpu = bool(entry["gpu"] and entry["gpu"].get("max_memory_allocated"))
    clean = not (entry["gpu"] or {}).get("imported")
    entry["passed"] = (
        entry["status"] == "ok" and clean and (used_gpu or device == "cpu" or name == "bootstrap")
    )
    report["steps"][name] = entry
report["all_passed"] = all(e["passed"] for e in report["steps"].values())
out.write_text(json.dumps(report, indent=2))
for name, e in report["steps"].items():
    gpu = (e["gpu"] or {}).get("max_memory_allocated")
    print(f"smoke {name:<11} {'PASS' if e['passed'] else 'FAIL'}  {e['status']:<7} "
          f"{e['seconds'] or 0:6.1f}s  gpu_bytes={gpu}  "
          f"imported={(e['gpu'] or {}).get('imported')}")
PY

# ------------------------------------------------------------------ (c), (d) the benchmarks
if [ "$QUICK" = 1 ]; then
    RM_SIZE=(--layers 2 --k 4 9 --repeats 1 --rankings 8 --valid 8 --length 24)
    PPO_SIZE=(--layers 1 --repeats 1 --updates 2 --batch 4 --response-tokens 8)
    RM_BF16_SIZE=(--layers 2 --k 4 --repeats 1 --rankings 8 --valid 8 --length 24)
else
    # 128 rankings per K, 4 per step (32 steps), ~62-token rows; 3 alternating runs per side
    RM_SIZE=(--k 4 9 --repeats 3 --length 48)
    # batch 8, 16 response tokens, 4 epochs x 2 minibatches; 3 runs x 4 updates (1st dropped)
    PPO_SIZE=(--repeats 3 --updates 4)
    RM_BF16_SIZE=(--k 4 --repeats 2 --length 48)
fi
BENCH=(--device "$DEVICE" --model smollm2-shape --threads "$THREADS")
PYTHONPATH=$(with_path "$SITE_RM") step rm_vs_trl 240 100 \
    "$PYTHON" bench/rm_vs_trl.py "${BENCH[@]}" --precision fp32 "${RM_SIZE[@]}" \
    --json "$OUT/rm_vs_trl.json"
PYTHONPATH=$(with_path "$SITE_PPO") step ppo_vs_trl 180 0 \
    "$PYTHON" bench/ppo_vs_trl.py "${BENCH[@]}" --precision fp32 "${PPO_SIZE[@]}" \
    --json "$OUT/ppo_vs_trl.json"
if ((DEADLINE - SECONDS >= 100)); then
    PYTHONPATH=$(with_path "$SITE_RM") step rm_vs_trl_bf16 120 0 \
        "$PYTHON" bench/rm_vs_trl.py "${BENCH[@]}" --precision bf16 "${RM_BF16_SIZE[@]}" \
        --json "$OUT/rm_vs_trl_bf16.json"
else
    say "--- rm_vs_trl_bf16: SKIP (under 100 s left)"
    printf 'rm_vs_trl_bf16\tSKIP\t-\t0\n' >>"$SUMMARY"
fi

# ------------------------------------------------------------------ summary (the reply's tail)
echo
echo "==== summary (${SECONDS}s) ===="
column -t -s $'\t' "$SUMMARY" 2>/dev/null || cat "$SUMMARY"
"$PYTHON" - "$OUT" <<'PY'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
for name in ("rm_vs_trl.json", "rm_vs_trl_bf16.json"):
    path = out / name
    if not path.is_file():
        print(f"{name}: none")
        continue
    r = json.loads(path.read_text())
    print(f"{name}: {r.get('device_name') or r.get('machine')} precision={r['precision']} "
          f"trl={r['trl']} transformers={r['versions']['transformers']} "
          f"torch={r['versions']['torch']} params={r['model']['parameters']}")
    for k, s in r["by_k"].items():
        p, t = s["prefloop"], s["trl"]
        print(f"  K={k}: PrefLoop {p['epoch_seconds_median']:.2f} s/epoch "
              f"{p['epoch_seconds_runs']}  TRL {t['epoch_seconds_median']:.2f} "
              f"{t['epoch_seconds_runs']}  speed-up {s['speedup']:.2f}x  "
              f"acc {p['accuracy_mean']:.3f} vs {t['accuracy_mean']:.3f}  "
              f"precision {p['mixed_precision_runs']} vs {t['mixed_precision_runs']}")
path = out / "ppo_vs_trl.json"
if path.is_file():
    r = json.loads(path.read_text())
    m = r["median_update_seconds"]
    print(f"ppo_vs_trl.json: {r.get('device_name') or r.get('machine')} precision={r['precision']} "
          f"trl={r['trl']} params={r['model']['parameters']} settings={r['settings']}")
    print(f"  median s/update: PrefLoop {m['prefloop']:.3f}  TRL {m['trl']:.3f}  "
          f"TRL/PrefLoop {r['trl_over_prefloop']:.2f}x  samples {r['samples']}")
    for side, runs in r["runs"].items():
        print(f"  {side}: " + " | ".join(
            ", ".join(f"{t:.2f}" for t in run["update_seconds"]) + f" ({run['mixed_precision']})"
            for run in runs))
else:
    print("ppo_vs_trl.json: none")
PY
ls -la "$OUT"
failed=$(awk -F'\t' 'NR > 1 && $2 != "ok"' "$SUMMARY" | wc -l)
echo "device_check done in ${SECONDS}s; steps not ok: $failed"
