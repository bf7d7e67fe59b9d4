"""What the loop runs per step: `TrainStep` (the model's objective plus the trainer's
auxiliary terms, the module DDP wraps), `compiled_step`, and `EpochSums` (the epoch's
running sums of the logged terms)."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn


class TrainStep(nn.Module):
    """``model.step(x)`` plus the AuxK term when the trainer adds one. A module, so DDP can
    wrap it: the parameters stay the model's own and every term's gradient is all-reduced."""

    def __init__(self, model: nn.Module, aux: Any = None) -> None:
        super().__init__()
        self.model = model
        self.aux = aux

    def forward(self, x: Tensor) -> Any:
        out = self.model.step(x)
        return out if self.aux is None else self.aux(self.model, x, out)


def compiled_step(step_fn: Any, *, distributed_run: bool = False) -> Any:
    """``step_fn`` compiled by torch.compile, falling back to eager (with one warning) where
    compilation is impossible (no C++ compiler, an unsupported op): a speed option must never
    cost a run. The traced step has no side effects before it returns, so a failed compile
    leaves the model as it was."""
    if distributed_run:
        warnings.warn("--compile is ignored in distributed runs", stacklevel=3)
        return step_fn
    compiled: Any = torch.compile(step_fn)

    def step(x: Tensor) -> Any:
        nonlocal compiled
        if compiled is None:
            return step_fn(x)
        try:
            return compiled(x)
        except Exception as exc:  # noqa: BLE001 - any compiler failure means: run eagerly
            first = (str(exc).strip().splitlines() or [""])[0][:160]
            warnings.warn(
                f"torch.compile failed ({type(exc).__name__}: {first}); training eagerly",
                stacklevel=2,
            )
            compiled = None
            return step_fn(x)

    step.compiled_fn = lambda: compiled  # for tests: None once it fell back
    return step


class EpochSums:
    """The epoch's running sums of the loss and its named terms. On the CPU of a single
    process they are Python floats (float64; each step's `float()` costs less than the tensor
    ops it replaces, so every step can be checked for NaN); elsewhere tensors on the device,
    which DDP can average and which are read (a sync) only every few steps. Saved in
    mid-epoch checkpoints, so a resumed epoch's record covers the whole epoch."""

    def __init__(self, on_host: bool, device: torch.device) -> None:
        self.on_host = on_host
        self.device = device
        self.loss: Any = 0.0 if on_host else torch.zeros((), device=device)
        self.terms: dict[str, Any] = {}
        self.steps = 0

    def add(self, out: Any) -> Any:
        """Add a step's terms; returns its loss (a float on the host, else a tensor)."""
        self.steps += 1
        if self.on_host:
            loss = float(out.loss.detach())
            self.loss += loss
            for name, value in out.terms.items():
                self.terms[name] = self.terms.get(name, 0.0) + float(value.detach())
            return loss
        loss = out.loss.detach()
        self.loss += loss
        for name, value in out.terms.items():
            if name in self.terms:
                self.terms[name] += value.detach()
            else:
                self.terms[name] = value.detach().clone()
        return loss

    def loss_total(self) -> float:
        return float(self.loss)

    def to_json(self) -> dict[str, Any]:
        return {
            "loss": float(self.loss),
            "terms": {k: float(v) for k, v in self.terms.items()},
            "steps": self.steps,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], device: torch.device, world_size: int) -> EpochSums:
        sums = cls(device.type == "cpu" and world_size == 1, device)
        if sums.on_host:
            sums.loss = float(data["loss"])
            sums.terms = {k: float(v) for k, v in data["terms"].items()}
        else:
            sums.loss = torch.tensor(float(data["loss"]), device=device)
            sums.terms = {
                k: torch.tensor(float(v), device=device) for k, v in data["terms"].items()
            }
        sums.steps = int(data["steps"])
        return sums
