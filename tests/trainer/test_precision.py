"""precision "auto": bf16 only where the device computes it natively."""

from __future__ import annotations

import pytest
import torch

from trainer import models
from trainer.data import DataError


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "expected"),
    [(False, False, "fp32"), (True, False, "bf16"), (False, True, "bf16"), (True, True, "bf16")],
)
def test_auto_is_bf16_only_on_a_cpu_that_has_it(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    assert models.resolve_precision("auto", "cpu") == expected
    assert models.dtype_of("auto", "cpu") == (
        torch.bfloat16 if expected == "bf16" else torch.float32
    )
    with models.autocast(torch.device("cpu"), "auto"):
        assert torch.is_autocast_enabled("cpu") is (expected == "bf16")


def test_explicit_precisions_are_kept_and_unknown_ones_refused(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert models.resolve_precision("bf16", "cpu") == "bf16"  # asked for: emulated, but kept
    assert models.resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(DataError, match="precision must be one of fp32, bf16, auto"):
        models.resolve_precision("fp16", "cpu")
