"""Evaluation: the one batched loop over data in eval mode that every consumer shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from sparseae.data.tensors import as_tensor
from sparseae.devices import model_device, resolve_device
from sparseae.metrics import SparsityStats


def batches(x: Tensor, batch_size: int, device: torch.device) -> Iterator[Tensor]:
    """``x`` in consecutive batches, each moved to ``device``."""
    for start in range(0, x.shape[0], batch_size):
        yield x[start : start + batch_size].to(device, non_blocking=True)


@torch.no_grad()
def map_batches(
    model: nn.Module,
    x: Any,
    fn: Callable[[Tensor], Tensor],
    *,
    batch_size: int = 4096,
    name: str = "x",
) -> Tensor:
    """``fn`` applied batch by batch in eval mode on the model's device, results on the CPU,
    concatenated (encode, reconstruct, score: every command's loop over a file)."""
    xt = as_tensor(x, name)
    dev = model_device(model)
    was_training = model.training
    model.eval()
    try:
        return torch.cat([fn(xb).cpu() for xb in batches(xt, batch_size, dev)])
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: Any,
    *,
    batch_size: int = 4096,
    device: str | torch.device | None = None,
    threshold: float = 0.0,
) -> dict[str, float]:
    """Loss terms and code statistics of ``model`` on (transformed) ``x`` in eval mode (no
    corruption, inference-time sparsity), averaged over samples."""
    xt = as_tensor(x)
    dev = model_device(model) if device is None else resolve_device(device)
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    stats = SparsityStats(model.n_latents, threshold, device=dev)
    try:
        for xb in batches(xt, batch_size, dev):
            out = model.step(xb)
            n = xb.shape[0]
            sums["loss"] = sums.get("loss", 0.0) + float(out.loss) * n
            for name, value in out.terms.items():
                sums[name] = sums.get(name, 0.0) + float(value) * n
            stats.update(out.code)
    finally:
        model.train(was_training)
    result = {k: v / xt.shape[0] for k, v in sums.items()}
    result.update(stats.result())
    return result
