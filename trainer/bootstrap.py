"""Create the base policy directory the other commands start from.

python -m trainer bootstrap --out var/models/smollm2-135m-instruct   # SmolLM2 from GGUF
python -m trainer bootstrap --tiny --out var/models/tiny             # tests, in code
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from trainer import models
from trainer.contract import BootstrapConfig
from trainer.data import DataError
from trainer.runlog import MetricsLog


def bootstrap(config: BootstrapConfig) -> dict:
    out = Path(config.out)
    if models.is_model_dir(out) and not config.force:
        return {"out": str(out), "skipped": True, "reason": "already a model directory"}
    started = time.perf_counter()
    gguf = None
    if not config.tiny:
        gguf = Path(config.gguf) if config.gguf else models.find_smollm2_gguf()
        if not gguf.is_file():
            raise DataError(f"{gguf}: GGUF file not found")
    log = MetricsLog(out)
    if config.tiny:
        model, tokenizer = models.build_tiny(config.tiny_arch, seed=config.seed)
        models.save_model(model, tokenizer, out, config)
        source = f"tiny-{config.tiny_arch}"
    else:
        models.convert_gguf(gguf, out)
        source = str(gguf)
    log.log(1, phase="saved")
    from transformers import AutoConfig

    return log.finish(
        out=str(out),
        source=source,
        skipped=False,
        parameters=_count_parameters(out),
        model_type=AutoConfig.from_pretrained(out).model_type,
        seconds=round(time.perf_counter() - started, 2),
        config=asdict(config),
    )


def _count_parameters(model_dir: Path) -> int:
    import math

    from safetensors import safe_open

    total = 0
    for shard in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(shard), "pt") as handle:
            total += sum(math.prod(handle.get_slice(k).get_shape()) for k in handle.keys())  # noqa: SIM118
    return total
