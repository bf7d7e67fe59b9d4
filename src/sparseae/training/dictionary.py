"""Training tricks for `SAE` dictionaries, as `Callback`s and plain functions, so the one
trainer loop stays untouched:

- `UnitNormDecoder`: decoder rows (dictionary atoms) kept at unit norm; the gradient
  component parallel to each atom is removed before the optimizer step (a move along the
  atom only changes its norm, which the renormalisation would undo anyway, and Adam would
  otherwise waste its per-parameter step size on it).
- `init_decoder_bias`: b_dec at the data mean or geometric median (Weiszfeld iterations),
  so the pre-encoder bias centres the data from step one.
- `input_scale` / `fold_input_scale`: train on x * s with E||x s||^2 = d_in, then fold s
  back into the weights so the saved model takes raw activations.
- `SparsityWarmup`: k (topk/batchtopk) from ``k_start`` down to its target, or the penalty
  weight (l1/jumprelu/kl) from 0 up to its target, linearly over the first steps.
- `ResampleDeadLatents`: Anthropic-style resampling, every ``every`` steps the dead latents
  are re-initialised toward inputs the model reconstructs worst.
LR warm-up and decay are `TrainConfig(lr_schedule=..., warmup_steps=...)`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sparseae.errors import ConfigError
from sparseae.models.sae.model import SAE
from sparseae.training.trainer import Callback


class UnitNormDecoder(Callback):
    def on_train_begin(self, trainer: Any) -> None:
        normalize_decoder(trainer.model)

    def on_after_backward(self, trainer: Any) -> None:
        remove_parallel_grad(trainer.model)

    def on_step_end(self, trainer: Any, out: Any) -> None:
        normalize_decoder(trainer.model)


@torch.no_grad()
def normalize_decoder(model: SAE) -> None:
    w = model.W_dec
    w.div_(w.norm(dim=1, keepdim=True).clamp_min(1e-12))


@torch.no_grad()
def remove_parallel_grad(model: SAE) -> None:
    w, g = model.W_dec, model.W_dec.grad
    if g is None:
        return
    unit = w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    g.sub_((g * unit).sum(dim=1, keepdim=True) * unit)


def geometric_median(x: Tensor, iters: int = 100, tol: float = 1e-6) -> Tensor:
    """Weiszfeld's algorithm: the point minimising the sum of Euclidean distances."""
    y = x.mean(dim=0)
    for _ in range(iters):
        w = 1.0 / (x - y).norm(dim=1).clamp_min(1e-8)
        y_new = (w[:, None] * x).sum(0) / w.sum()
        if (y_new - y).norm() <= tol * max(1.0, float(y.norm())):
            return y_new
        y = y_new
    return y


@torch.no_grad()
def init_decoder_bias(model: SAE, x: Tensor, method: str = "geometric_median") -> Tensor:
    x = torch.as_tensor(x, dtype=model.b_dec.dtype)
    if method == "mean":
        center = x.mean(dim=0)
    elif method == "geometric_median":
        center = geometric_median(x)
    elif method == "zeros":
        center = torch.zeros_like(model.b_dec)
    else:
        raise ConfigError(
            f"unknown decoder-bias init {method!r}: choose mean, geometric_median or zeros"
        )
    model.b_dec.copy_(center.to(model.b_dec.device))
    return center


def input_scale(x: Tensor) -> float:
    """The s with E||s x||^2 = d_in (SAELens / Anthropic's input normalisation)."""
    x = torch.as_tensor(x)
    return float((x.shape[1] / x.pow(2).sum(1).mean()).sqrt())


@torch.no_grad()
def fold_input_scale(model: SAE, scale: float) -> SAE:
    """Make a model trained on ``x * scale`` take raw x: pre = (s x - b) W = (x - b/s)(s W),
    and x_hat_raw = x_hat / s. Thresholds (batchtopk, jumprelu) live on the pre-activation,
    which does not change, so they stay as they are."""
    model.W_enc.mul_(scale)
    model.b_dec.div_(scale)
    model.W_dec.div_(scale)
    return model


class SparsityWarmup(Callback):
    """Linear warm-up of k (down from ``k_start``) or of the penalty weight (up from 0)."""

    def __init__(self, steps: int, k_start: int | None = None) -> None:
        if steps < 1:
            raise ConfigError(f"sparsity warm-up needs steps >= 1, got {steps}")
        self.steps = steps
        self.k_start = k_start
        self._target: Any = None

    def on_train_begin(self, trainer: Any) -> None:
        s = trainer.model.sparsity
        if hasattr(s, "k"):
            self._attr, self._target = "k", s.k
            self._start = self.k_start or min(s.n_latents, 4 * s.k)
        elif hasattr(s, "weight"):
            self._attr, self._target, self._start = "weight", s.weight, 0.0
        else:
            raise ConfigError(f"{s.name} sparsity has neither k nor a penalty weight to warm up")
        self._apply(trainer, 0)

    def _apply(self, trainer: Any, step: int) -> None:
        f = min(1.0, step / self.steps)
        value = self._start + f * (self._target - self._start)
        if self._attr == "k":
            value = max(1, round(value))
        setattr(trainer.model.sparsity, self._attr, value)

    def on_step_end(self, trainer: Any, out: Any) -> None:
        self._apply(trainer, trainer.global_step)


class ResampleDeadLatents(Callback):
    """Every ``every`` steps, dead latents (see `SAE.dead_mask`) get, as decoder atom, the
    normalised residual of a batch input drawn with probability ~ its squared error, and as
    encoder column the same direction scaled to ``enc_scale`` of the mean alive norm."""

    def __init__(self, every: int, enc_scale: float = 0.2) -> None:
        self.every = every
        self.enc_scale = enc_scale
        self._last_x: Tensor | None = None
        self.resampled = 0

    @torch.no_grad()
    def on_step_end(self, trainer: Any, out: Any) -> None:
        model: SAE = trainer.model
        if trainer.global_step % self.every or not model.config.dead_after:
            return
        dead = model.dead_mask().nonzero().reshape(-1)
        x = getattr(model, "last_batch", None)
        if dead.numel() == 0 or x is None:
            return
        resample_latents(model, x, dead, self.enc_scale, trainer.optimizer)
        self.resampled += int(dead.numel())


@torch.no_grad()
def resample_latents(
    model: SAE, x: Tensor, dead: Tensor, enc_scale: float = 0.2, optimizer: Any = None
) -> None:
    was = model.training
    model.eval()
    err = x - model(x)
    model.train(was)
    p = err.pow(2).sum(1)
    pick = torch.multinomial(p / p.sum(), dead.numel(), replacement=True)
    atoms = err[pick]
    atoms = atoms / atoms.norm(dim=1, keepdim=True).clamp_min(1e-12)
    alive = torch.ones(model.n_latents, dtype=torch.bool, device=x.device)
    alive[dead] = False
    enc_norm = model.W_enc[:, alive].norm(dim=0).mean() if alive.any() else 1.0
    model.W_dec[dead] = atoms
    model.W_enc[:, dead] = atoms.t() * enc_scale * enc_norm
    model.b_enc[dead] = 0.0
    model.since_fired[dead] = 0
    if optimizer is not None:  # fresh Adam moments for the new latents
        for param, rows in ((model.W_dec, dead), (model.b_enc, dead)):
            state = optimizer.state.get(param, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][rows] = 0.0
        state = optimizer.state.get(model.W_enc, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                state[key][:, dead] = 0.0
