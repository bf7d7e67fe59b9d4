"""The neural sparse-coding algorithm of Arora, Ge, Ma and Moitra (2015), "Simple, Efficient,
and Neural Algorithms for Sparse Coding": a dictionary learned without backpropagation.

    decode:  x = threshold_{C/2}(Aᵀ y)                 (hard threshold: keep |.| > C/2)
    update:  A <- A - eta * mean_batch((A x - y) sign(x)ᵀ),  then columns renormalised to 1

Choices the paper leaves open, and why:
- **Centering.** y is the input minus the training mean (kept as a buffer and added back on
  decode). Raw images are all positive, so every atom would correlate with every input and
  thresholding could not select; the paper's generative model has zero-mean data too.
- **Initialisation from data samples.** The update provably converges only from a dictionary
  already close to the truth; random centred training samples (normalised) are the usual
  warm start and give filters that are digit-like from the first epoch.
- **The threshold.** C is the smallest magnitude of a non-zero true coefficient, unknown on
  real data. ``threshold=None`` sets C/2 once, at initialisation, to the value that keeps on
  average ``target_l0`` coefficients per input; it then stays fixed as in the paper.

It has the autoencoders' surface (``encode``, ``decode``, ``forward``, ``step``, ``filters``,
``n_latents``, ``config``) so `sparseae.evaluate`, reports and save/load treat it the same.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sparseae.checkpoint import register_kind
from sparseae.errors import ConfigError
from sparseae.models.autoencoder.model import StepOutput
from sparseae.training.trainer import Callback, History, as_tensor, evaluate


@dataclass(frozen=True)
class SparseCodingConfig:
    d_in: int
    n_latents: int
    lr: float = 0.05
    threshold: float | None = None
    target_l0: int = 10

    def __post_init__(self) -> None:
        if self.d_in < 1 or self.n_latents < 1:
            raise ConfigError("d_in and n_latents must be positive integers")
        if not self.lr > 0:
            raise ConfigError(f"sparse coding learning rate eta must be > 0, got {self.lr!r}")
        if self.threshold is not None and not self.threshold > 0:
            raise ConfigError(f"threshold C/2 must be > 0, got {self.threshold!r}")
        if not 1 <= self.target_l0 <= self.n_latents:
            raise ConfigError(
                f"target_l0 must lie in 1..n_latents ({self.n_latents}), got {self.target_l0}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class NeuralSparseCoding(nn.Module):
    """Dictionary A (d_in x n_latents, unit columns) learned by Arora et al.'s rule."""

    checkpoint_kind = "neural_sparse_coding"

    def __init__(self, config: SparseCodingConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config or SparseCodingConfig(**kwargs)
        c = self.config
        self.register_buffer("A", torch.zeros(c.d_in, c.n_latents))
        self.register_buffer("mean", torch.zeros(c.d_in))
        self.register_buffer("tau", torch.tensor(c.threshold or 0.0))

    @property
    def n_latents(self) -> int:
        return self.config.n_latents

    @property
    def d_in(self) -> int:
        return self.config.d_in

    def encode(self, x: Tensor) -> Tensor:
        a = (x.reshape(x.shape[0], -1) - self.mean) @ self.A
        return a * (a.abs() > self.tau)

    def decode(self, h: Tensor) -> Tensor:
        return h @ self.A.t() + self.mean

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def step(self, x: Tensor) -> StepOutput:
        code = self.encode(x)
        recon = ((self.decode(code) - x.reshape(x.shape[0], -1)) ** 2).mean()
        return StepOutput(recon, {"recon": recon, "sparsity": recon.new_zeros(())}, code)

    def filters(self) -> Tensor:
        return self.A.t().detach()

    def describe(self) -> str:
        c = self.config
        return (
            f"neural sparse coding (Arora et al. 2015): {c.n_latents} unit-norm atoms, codes by "
            f"hard-thresholding Aᵀy at C/2 = {float(self.tau):.3g}, dictionary updated by "
            f"A -= {c.lr:g} x mean((Ax - y) sign(x)ᵀ) without backpropagation"
        )

    @torch.no_grad()
    def initialise(self, x: Tensor, generator: torch.Generator) -> None:
        """Atoms from random centred samples; threshold from ``target_l0`` if not given."""
        self.mean.copy_(x.mean(dim=0))
        idx = torch.randperm(x.shape[0], generator=generator)[: self.n_latents]
        if idx.numel() < self.n_latents:  # fewer samples than atoms: reuse with noise
            idx = torch.randint(0, x.shape[0], (self.n_latents,), generator=generator)
        atoms = (x[idx] - self.mean).t().clone()
        atoms += 1e-3 * torch.randn(atoms.shape, generator=generator)
        self.A.copy_(atoms / atoms.norm(dim=0, keepdim=True).clamp_min(1e-8))
        if self.config.threshold is None:
            a = ((x[: min(2048, x.shape[0])] - self.mean) @ self.A).abs()
            q = 1.0 - self.config.target_l0 / self.n_latents
            self.tau.fill_(float(torch.quantile(a.flatten()[:1_000_000], q)))
        else:
            self.tau.fill_(self.config.threshold)

    @torch.no_grad()
    def update(self, y: Tensor) -> Tensor:
        """One step of the rule on a batch; returns the batch's reconstruction MSE."""
        yc = y - self.mean
        a = yc @ self.A
        code = a * (a.abs() > self.tau)
        residual = code @ self.A.t() - yc
        grad = residual.t() @ torch.sign(code) / y.shape[0]
        self.A.sub_(self.config.lr * grad)
        self.A.div_(self.A.norm(dim=0, keepdim=True).clamp_min(1e-8))
        return (residual**2).mean()


class _LoopState:
    """What callbacks see of this loop (they expect a trainer with .model and .epoch)."""

    def __init__(self, model: NeuralSparseCoding) -> None:
        self.model = model
        self.epoch = 0


def fit_sparse_coding(
    model: NeuralSparseCoding,
    x_train: Any,
    x_val: Any = None,
    *,
    epochs: int = 10,
    batch_size: int = 256,
    seed: int = 0,
    callbacks: list[Callback] | tuple[Callback, ...] = (),
    log: Any = None,
    progress: bool | None = None,
) -> History:
    """Train with the paper's rule; records have the trainer's keys so reports compare."""
    x = as_tensor(x_train, "training data")
    xv = as_tensor(x_val, "validation data") if x_val is not None and len(x_val) else None
    if x.shape[1] != model.d_in:
        raise ConfigError(f"model expects {model.d_in} features, data has {x.shape[1]}")
    g = torch.Generator().manual_seed(seed)
    model.initialise(x, g)
    state = _LoopState(model)
    history = History()
    for cb in callbacks:
        cb.on_train_begin(state)  # type: ignore[arg-type]
    steps = math.ceil(x.shape[0] / batch_size)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * steps, desc="sparse coding", unit="step", leave=False)
    for epoch in range(epochs):
        t0 = time.perf_counter()
        shuffled = x[torch.randperm(x.shape[0], generator=g)]
        total = torch.zeros(())
        for i in range(steps):
            total += model.update(shuffled[i * batch_size : (i + 1) * batch_size])
            if bar is not None:
                bar.update(1)
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "seconds": time.perf_counter() - t0,
            "loss": float(total) / steps,
            "recon": float(total) / steps,
        }
        if xv is not None:
            record.update({f"val_{k}": v for k, v in evaluate(model, xv).items()})
        history.records.append(record)
        state.epoch = epoch + 1
        if log is not None:
            log(record)
        for cb in callbacks:
            cb.on_epoch_end(state, record)  # type: ignore[arg-type]
    if bar is not None:
        bar.close()
    model.eval()
    return history


register_kind(
    "neural_sparse_coding",
    lambda cfg: NeuralSparseCoding(SparseCodingConfig(**cfg)),
)
