"""models.adamw: torch's fused AdamW where it exists, the same update as the plain one."""

from __future__ import annotations

import copy

import torch

from trainer import models


def _step(optimizer_factory, seed: int = 0) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    start = copy.deepcopy(model.state_dict())
    model.load_state_dict(start)
    optimizer = optimizer_factory(model)
    inputs = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        loss = model(inputs).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return [p.detach().clone() for p in model.parameters()]


def test_fused_on_cpu_and_the_same_update_as_plain_adamw():
    fused = _step(lambda m: models.adamw(m.parameters(), lr=1e-2, weight_decay=0.1))
    plain = _step(
        lambda m: torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1, fused=False)
    )
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    model = torch.nn.Linear(2, 1)
    assert models.adamw(model.parameters(), lr=1e-3).defaults["fused"] is True


def test_parameter_groups_keep_their_own_settings():
    policy, value = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    optimizer = models.adamw(
        [{"params": policy.parameters(), "lr": 1e-3}, {"params": value.parameters(), "lr": 1e-2}],
        eps=1e-5,
    )
    assert [group["lr"] for group in optimizer.param_groups] == [1e-3, 1e-2]
    assert [len(group["params"]) for group in optimizer.param_groups] == [2, 2]
    assert optimizer.defaults["fused"] is True and optimizer.defaults["eps"] == 1e-5
