"""The trainer's optimizers: Adam with less per-step Python, and SGD with momentum.

At the reference recipes' batch size of 32, an optimizer step is mostly overhead: stock
``torch.optim.Adam(fused=True)`` spends more time building its lists of parameters,
gradients and states in Python than the fused kernel spends updating them. `LeanAdam` is
the same algorithm and the same state (so checkpoints and ``state_dict`` stay standard): it
lets the stock implementation initialise the state on the first step, then caches the
lists and calls the fused kernel directly. Anything unusual (a closure, a missing gradient,
no fused kernel for the device) falls back to the stock path.

`update` is `step` without the per-call profiling wrapper and hook dispatch that
``torch.optim.Optimizer`` puts around ``step`` (about as long as the kernel itself at this
size); the trainer calls it when no optimizer hook is registered. The per-parameter step
counters are views of one tensor per group, so one op advances them all.

`MomentumSGD` is the stock SGD (its multi-tensor path: one call per step) behind the same
`update` / `hooked` interface; the k-sparse paper (Makhzani & Frey 2013) trains with it,
and there its tied k-sparse features probe better than Adam's
(benchmarks/linear_probe_mnist.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

_FUSED = getattr(torch, "_fused_adam_", None)


@dataclass
class _GroupCache:
    group: dict[str, Any]
    params: list[Tensor]
    detached: list[Tensor]  # the same storage, so the kernel needs no autograd guard
    exp_avgs: list[Tensor]
    exp_avg_sqs: list[Tensor]
    counters: Tensor  # every parameter's step counter, as one tensor
    steps: list[Tensor]  # views of `counters`, the tensors the state dict holds


class _StepHooks:
    """What the trainer asks of its optimizer besides ``step``: whether hooks are set (they
    need the stock, wrapped ``step``) and `update`, the step without them."""

    _optimizer_step_pre_hooks: dict
    _optimizer_step_post_hooks: dict

    def hooked(self) -> bool:
        """Whether any optimizer step hook (this optimizer's or a global one) is registered."""
        from torch.optim import optimizer as stock

        return bool(
            self._optimizer_step_pre_hooks
            or self._optimizer_step_post_hooks
            or stock._global_optimizer_pre_hooks
            or stock._global_optimizer_post_hooks
        )


class MomentumSGD(_StepHooks, torch.optim.SGD):
    def update(self) -> None:
        """One SGD step (the stock one: its per-call overhead is small next to Adam's)."""
        self.step()


class LeanAdam(_StepHooks, torch.optim.Adam):
    def __init__(self, params: Iterable[Any], **kwargs: Any) -> None:
        try:
            super().__init__(params, fused=True, **kwargs)
            self._lean_ok = _FUSED is not None
        except (RuntimeError, TypeError, ValueError):
            super().__init__(params, **kwargs)
            self._lean_ok = False
        self._cache: list[_GroupCache] | None = None

    def _stock_step(self, closure: Callable[[], float] | None = None) -> Any:
        """Adam's own step, without the hook wrapper torch puts on ``Adam.step`` once any
        stock Adam exists: our own (wrapped) `step` has already run the hooks once."""
        stock = torch.optim.Adam.step
        if getattr(stock, "hooked", False):
            stock = stock.__wrapped__  # type: ignore[attr-defined]
        return stock(self, closure)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._cache = None
        super().load_state_dict(state_dict)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self._cache = None
        super().add_param_group(param_group)

    def _build_cache(self) -> bool:
        cache = []
        for group in self.param_groups:
            if (
                group["amsgrad"]
                or group["maximize"]
                or group.get("capturable")
                or group.get("differentiable")
                or group.get("decoupled_weight_decay")
            ):
                return False
            params = list(group["params"])
            states = [self.state.get(p) for p in params]
            if any(not s or "exp_avg" not in s for s in states):
                return False
            counters = torch.stack([s["step"] for s in states])
            for i, s in enumerate(states):
                s["step"] = counters[i]
            cache.append(
                _GroupCache(
                    group,
                    params,
                    [p.detach() for p in params],
                    [s["exp_avg"] for s in states],
                    [s["exp_avg_sq"] for s in states],
                    counters,
                    [s["step"] for s in states],
                )
            )
        self._cache = cache
        return True

    def update(self) -> None:
        """One Adam step, as `step()` but without hooks or the profiler label (see above)."""
        if not self._lean_ok or (self._cache is None and not self._build_cache()):
            self._stock_step()
            return
        assert self._cache is not None
        all_grads = [[p.grad for p in c.params] for c in self._cache]
        if any(g is None for grads in all_grads for g in grads):
            self._cache = None
            self._stock_step()
            return
        for c, grads in zip(self._cache, all_grads, strict=True):
            group = c.group
            beta1, beta2 = group["betas"]
            c.counters.add_(1)
            _FUSED(
                c.detached,
                grads,
                c.exp_avgs,
                c.exp_avg_sqs,
                [],
                c.steps,
                lr=float(group["lr"]),
                beta1=float(beta1),
                beta2=float(beta2),
                weight_decay=float(group["weight_decay"]),
                eps=float(group["eps"]),
                amsgrad=False,
                maximize=False,
            )

    def step(self, closure: Callable[[], float] | None = None) -> Any:  # type: ignore[override]
        if closure is not None:
            return self._stock_step(closure)
        self.update()
        return None

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self._cache is None or not set_to_none:
            super().zero_grad(set_to_none)
            return
        for c in self._cache:
            for p in c.params:
                p.grad = None


TrainerOptimizer = LeanAdam | MomentumSGD


def make_optimizer(model: nn.Module, config: Any) -> TrainerOptimizer | None:
    """``config.optimizer`` with L2 weight decay on weight matrices only (as Keras
    kernel_regularizer): Adam's fused kernel through `LeanAdam` (one param group when there
    is no decay, so one kernel launch per step) or `MomentumSGD`; None for a model with
    nothing to train by gradient."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return None
    groups: list[Any] = params
    if config.weight_decay != 0:
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": config.weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
    if config.optimizer == "sgd":
        return MomentumSGD(groups, lr=config.lr, momentum=config.sgd_momentum)
    eps = config.eps if config.eps is not None else 1e-7  # an unresolved config: Keras'
    return LeanAdam(groups, lr=config.lr, betas=config.betas, eps=eps)
