"""Dictionary tricks of the trainer, for every model with a linear dictionary (`Atoms`):

- `UnitNormDecoder`: atoms kept at unit norm; the gradient component parallel to each atom is
  removed before the optimizer step (a move along the atom only changes its norm, which the
  renormalisation would undo, and Adam would waste its per-parameter step on it).
- `init_decoder_bias`: the decoder bias at the data mean or geometric median (Weiszfeld), so
  a pre-encoder bias centres the data from step one.
- `DeadLatents`: samples since each latent last fired (trainer state, all-reduced under DDP
  so every rank agrees); a latent is dead once that reaches ``dead_after``.
- `AuxK`: Gao et al. 2024's auxiliary loss: the top ``k`` dead latents reconstruct the
  residual ``x - x_hat``, normalised by the residual's energy, weight ``weight``.
- `ResampleDeadLatents`: Anthropic-style resampling toward badly reconstructed inputs.
- `SparsityWarmup`: k down from ``k_start`` (topk, batchtopk) or a penalty weight up from 0,
  a pure function of the global step (exact on resume).
`tricks_for` builds what a `TrainConfig` asks for.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from sparseae.errors import ConfigError
from sparseae.models.base import Atoms
from sparseae.models.sae.kernels import sparse_decode
from sparseae.sparsities.selection import topk_indices
from sparseae.training.callbacks import Callback
from sparseae.training.config import TrainConfig
from sparseae.training.schedules import linear_warmup


# -- unit-norm atoms ---------------------------------------------------------------------------
@torch.no_grad()
def normalize_atoms(atoms: Atoms) -> None:
    w = atoms.rows(atoms.weight)
    w.div_(w.norm(dim=1, keepdim=True).clamp_min(1e-12))


@torch.no_grad()
def remove_parallel_grad(atoms: Atoms) -> None:
    """g -= (g . u) u per atom, u = w / |w|, written as g -= ((g . w) / |w|^2) w: two
    row reductions and one in-place update, no (latents x d_in) temporary (each fresh one
    costs a page-fault pass as long as the arithmetic on a CPU)."""
    if atoms.weight.grad is None:
        return
    w, g = atoms.rows(atoms.weight), atoms.rows(atoms.weight.grad)
    sq = w.norm(dim=1).square_().clamp_min_(1e-24)
    coef = row_dots(g, w).div_(sq)
    g.addcmul_(w, coef.unsqueeze(1), value=-1.0)


def row_dots(a: Tensor, b: Tensor, chunk: int = 512) -> Tensor:
    """(a * b).sum(1) over blocks of ``chunk`` rows through one reused buffer that stays in
    cache: ``(a * b).sum(1)`` and ``linalg.vecdot`` allocate a (rows x d) temporary (a
    page-fault pass), and a batched (1 x d) @ (d x 1) product runs one tiny GEMM per row;
    at 16,384 x 768 this is 2x faster than the latter, 4x than the former."""
    if a.device.type != "cpu":  # memory is cheap there and each kernel launch costs
        return (a * b).sum(1)
    out = torch.empty(a.shape[0], dtype=torch.result_type(a, b), device=a.device)
    buf = torch.empty(min(chunk, a.shape[0]), a.shape[1], dtype=out.dtype, device=a.device)
    for i in range(0, a.shape[0], chunk):
        j = min(i + chunk, a.shape[0])
        part = buf[: j - i]
        torch.mul(a[i:j], b[i:j], out=part)
        torch.sum(part, 1, out=out[i:j])
    return out


class UnitNormDecoder(Callback):
    def on_train_begin(self, trainer: Any) -> None:
        atoms = trainer.model.decoder_atoms_or_raise()
        if trainer.resumed_at is None:  # resumed atoms are unit norm already: renormalising
            normalize_atoms(atoms)  # again would round them differently from the run

    def on_after_backward(self, trainer: Any) -> None:
        remove_parallel_grad(trainer.model.decoder_atoms())

    def on_step_end(self, trainer: Any, out: Any) -> None:
        normalize_atoms(trainer.model.decoder_atoms())


# -- decoder bias ------------------------------------------------------------------------------
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
def init_decoder_bias(model: Any, x: Tensor, method: str = "geometric_median") -> Tensor:
    atoms = model.decoder_atoms_or_raise()
    bias = atoms.bias
    if bias is None:
        raise ConfigError(f"{model.checkpoint_kind} model has no decoder bias to initialise")
    x = torch.as_tensor(x, dtype=bias.dtype).reshape(x.shape[0], -1)
    target = getattr(model, "decoder_target", None)
    if target is not None:  # a transcoder's rows hold [input | target]: fit the target
        x = target(x)
    if method == "mean":
        center = x.mean(dim=0)
    elif method == "geometric_median":
        center = geometric_median(x)
    elif method in ("zeros", "none"):
        center = torch.zeros_like(bias)
    else:
        raise ConfigError(
            f"unknown decoder-bias init {method!r}: choose mean, geometric_median or none"
        )
    bias.copy_(center.to(bias.device))
    return center


@torch.no_grad()
def init_atoms_from_data(
    model: Any, x: Tensor, generator: torch.Generator, norm: float | None = None
) -> None:
    """Each atom, and its encoder row, along a distinct random input minus the decoder bias
    (set just before), at ``norm`` or else the norms the model initialised them with (a
    tied model's atoms and rows are one tensor). Needs n_latents inputs in the sample."""
    dec, enc = model.decoder_atoms_or_raise(), model.encoder_atoms()
    atoms = dec.rows(dec.weight)
    x = torch.as_tensor(x, dtype=atoms.dtype).reshape(x.shape[0], -1)
    if x.shape[0] < atoms.shape[0] or x.shape[1] != atoms.shape[1]:
        raise ConfigError(
            f"atom_init='data' needs {atoms.shape[0]} inputs of width {atoms.shape[1]} to "
            f"start the atoms from, got {tuple(x.shape)}: use atom_init='model'"
        )
    pick = torch.randperm(x.shape[0], generator=generator)[: atoms.shape[0]]
    d = x[pick] - (0.0 if dec.bias is None else dec.bias.detach().to(x.device))
    d = d / d.norm(dim=1, keepdim=True).clamp_min(1e-12)
    rows = [atoms] + ([] if enc is None else [enc.rows(enc.weight)])
    norms = [r.norm(dim=1, keepdim=True) if norm is None else norm for r in rows]
    for r, n in zip(rows, norms, strict=True):  # norms first: a tied model's are one tensor
        r.copy_(d.to(r.device) * n)


# -- dead latents and AuxK ---------------------------------------------------------------------
def fired_latents(code: Tensor, n_latents: int) -> Tensor:
    """(n_latents,) bool: which latents are non-zero anywhere in the batch's code."""
    if code.is_sparse:
        code = code.coalesce()
        fired = torch.zeros(n_latents, dtype=torch.bool, device=code.device)
        fired[code.indices()[1][code.values() != 0]] = True
        return fired
    return (code.detach() != 0).reshape(code.shape[0], -1).any(0)


class DeadLatents(Callback):
    """Samples since each latent last fired, counted over the global batch."""

    def __init__(self, n_latents: int, dead_after: int) -> None:
        self.dead_after = dead_after
        self.since_fired = torch.zeros(n_latents)

    def on_train_begin(self, trainer: Any) -> None:
        self.since_fired = self.since_fired.to(trainer.device)

    def on_step_end(self, trainer: Any, out: Any) -> None:
        fired = fired_latents(out.code, self.since_fired.numel())
        batch = out.code.shape[0]
        if trainer.world_size > 1:
            from sparseae.training.distributed import any_over_ranks

            fired, batch = any_over_ranks(fired), batch * trainer.world_size
        self.since_fired.add_(batch).masked_fill_(fired, 0)

    def mask(self) -> Tensor:
        return self.since_fired >= self.dead_after

    def count(self) -> int:
        return int(self.mask().sum())

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        record["dead_tracked"] = self.count()

    def state_dict(self) -> dict[str, Any]:
        return {"since_fired": self.since_fired}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.since_fired = state["since_fired"].to(self.since_fired.device)


class AuxK:
    """Adds ``weight * aux`` to a step's loss, where ``aux`` is the normalised error of the
    top-``k`` dead latents (by pre-activation) reconstructing the residual."""

    def __init__(self, dead: DeadLatents, k: int, weight: float) -> None:
        self.dead, self.k, self.weight = dead, k, weight

    def __call__(self, model: Any, x: Tensor, out: Any) -> Any:
        if out.pre is None or out.x_hat is None:
            raise ConfigError(
                f"AuxK needs a model with a linear dictionary; {model.checkpoint_kind} with this "
                "configuration has none (an SAE, or an mlp autoencoder without hidden layers "
                "and a linear output)"
            )
        if not model.training:
            return out
        aux = self.loss(model, x, out)
        out.terms["aux"] = aux
        out.loss = out.loss + self.weight * aux
        return out

    def support(self, pre: Tensor) -> tuple[Tensor, Tensor, Tensor | None] | None:
        """Each row's top-k dead latents by pre-activation, as (rows, local, columns): entry
        i is (rows[i], columns[local[i]]), columns the dead latents (None: all); None while
        none is dead."""
        found = dead_support(pre, self.dead.mask(), self.k)
        if found is None:
            return None
        local, columns = found
        rows = torch.arange(pre.shape[0], device=pre.device).repeat_interleave(local.shape[1])
        return rows, local.reshape(-1), columns

    def normaliser(self, residual: Tensor) -> Tensor:
        return residual_energy(residual)

    def loss(self, model: Any, x: Tensor, out: Any) -> Tensor:
        support = self.support(out.pre)
        if support is None:
            return x.new_zeros(())
        rows, local, columns = support
        cols = local if columns is None else columns[local]
        vals = model.code_values(model.encode_at(x, rows, cols, out.pre))
        atoms = model.decoder_atoms()
        weight = atoms.rows(atoms.weight)
        if atoms.transposed:
            weight = weight.contiguous()
        e_hat = sparse_decode(rows, cols, vals, weight, x.shape[0])
        target = out.target if out.target is not None else x.reshape(x.shape[0], -1)
        residual = (target - out.x_hat).detach()
        return (e_hat - residual).pow(2).sum(-1).mean() / self.normaliser(residual)


def dead_topk(pre: Tensor, dead: Tensor, k: int) -> Tensor:
    """(B, k) indices of each row's k largest pre-activations among the dead latents. The
    top-k runs over the dead columns only (gathered: B x n_dead), not over a masked copy of
    the whole (B x n_latents) matrix; ties among equal values may pick another latent
    than a masked top-k would, both being a top-k."""
    found = dead_support(pre, dead, k)
    if found is None:
        return pre.new_zeros((pre.shape[0], 0), dtype=torch.long)
    local, columns = found
    return local if columns is None else columns[local]


def dead_support(pre: Tensor, dead: Tensor, k: int) -> tuple[Tensor, Tensor | None] | None:
    """`dead_topk` as (local (B, min(k, n_dead)), columns): positions among the dead latents
    ``columns`` (None when every latent is dead), which lets a step run dense products on
    that block; None when no latent is dead."""
    dead_cols = dead.nonzero().reshape(-1)
    if dead_cols.numel() == 0:
        return None
    k = min(k, dead_cols.numel())
    if dead_cols.numel() == pre.shape[1]:
        return topk_indices(pre, k), None
    return topk_indices(pre.index_select(1, dead_cols), k), dead_cols


def residual_energy(residual: Tensor) -> Tensor:
    """E||r - mean(r)||^2 over the global batch: under data parallelism the ranks' sums are
    all-reduced, so every rank divides by what one process would (then DDP's gradient mean
    equals one process's gradient)."""
    from sparseae.training.distributed import rank_and_world, sum_over_ranks

    n = residual.new_tensor([float(residual.shape[0])])
    stats = torch.cat([residual.sum(0), residual.pow(2).sum().reshape(1), n])
    if rank_and_world()[1] > 1:
        stats = sum_over_ranks(stats)
    total, sumsq, count = stats[:-2], stats[-2], stats[-1]
    mean = total / count
    return (sumsq / count - mean.pow(2).sum()).clamp_min(1e-12)


# -- resampling --------------------------------------------------------------------------------
class ResampleDeadLatents(Callback):
    """Every ``every`` steps, dead latents get, as decoder atom, the normalised residual of a
    batch input drawn with probability ~ its squared error, and as encoder row the same
    direction scaled to ``enc_scale`` of the mean alive norm; their optimizer state (Adam's
    moments, SGD's momentum) restarts. On a tied model the encoder row is the atom, so the
    atom ends at ``enc_scale`` of the live norm (``TrainConfig.resample_scale``): on the
    k-sparse MNIST recipe 0.2 beat 0.05-0.15 and 0.25-1.0 (at 0.15 and below a resampled atom
    is often too small to win a top-k slot and dies again; benchmarks/README.md)."""

    def __init__(self, dead: DeadLatents, every: int, enc_scale: float = 0.2) -> None:
        self.dead, self.every, self.enc_scale = dead, every, enc_scale
        self.resampled = 0

    @torch.no_grad()
    def on_step_end(self, trainer: Any, out: Any) -> None:
        if trainer.global_step % self.every or out.x_hat is None:
            return
        dead = self.dead.mask().nonzero().reshape(-1)
        if dead.numel() == 0:
            return
        x = trainer.last_batch.reshape(trainer.last_batch.shape[0], -1)
        resample_latents(trainer.model, x, out.x_hat, dead, self.enc_scale, trainer.optimizer)
        self.dead.since_fired[dead] = 0
        self.resampled += int(dead.numel())

    def state_dict(self) -> dict[str, Any]:
        return {"resampled": self.resampled}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.resampled = int(state.get("resampled", 0))


@torch.no_grad()
def resample_latents(
    model: Any, x: Tensor, x_hat: Tensor, dead: Tensor, enc_scale: float, optimizer: Any
) -> None:
    dec, enc = model.decoder_atoms_or_raise(), model.encoder_atoms()
    if enc is None:
        raise ConfigError(f"{model.checkpoint_kind} model exposes no encoder rows to resample")
    err = x - x_hat
    p = err.pow(2).sum(1)
    pick = torch.multinomial(p / p.sum().clamp_min(1e-30), dead.numel(), replacement=True)
    directions = err[pick]
    directions = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
    enc_rows = enc.rows(enc.weight)
    alive = torch.ones(enc_rows.shape[0], dtype=torch.bool, device=x.device)
    alive[dead] = False
    enc_norm = enc_rows[alive].norm(dim=1).mean() if alive.any() else 1.0
    dec.rows(dec.weight)[dead] = directions
    enc_rows[dead] = directions * enc_scale * enc_norm
    if enc.bias is not None:
        enc.bias[dead] = 0.0
    if optimizer is not None:
        for part, bias in ((dec, None), (enc, enc.bias)):
            for param, view in ((part.weight, part.rows), (bias, lambda t: t)):
                state = optimizer.state.get(param, {}) if param is not None else {}
                for key in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
                    if state.get(key) is not None:
                        view(state[key])[dead] = 0.0


# -- sparsity warm-up --------------------------------------------------------------------------
class SparsityWarmup(Callback):
    """Linear warm-up of k (down from ``k_start``, default 4k) or of the penalty weight (up
    from 0) over ``steps``; the value is a function of the global step alone."""

    def __init__(self, steps: int, k_start: int | None = None) -> None:
        if steps < 1:
            raise ConfigError(f"sparsity warm-up needs steps >= 1, got {steps}")
        self.steps, self.k_start = steps, k_start
        self._attr: str | None = None

    def on_train_begin(self, trainer: Any) -> None:
        s = trainer.model.sparsity
        target = trainer.model.config.sparsity_params
        if hasattr(s, "k"):
            self._attr, self._target = "k", int(target.get("k", s.k))
            self._start = float(min(s.n_latents, self.k_start or 4 * self._target))
        elif hasattr(s, "weight"):
            self._attr, self._target, self._start = "weight", float(s.weight), 0.0
            self._target = float(target.get("weight", s.weight))
        else:
            raise ConfigError(f"{s.name} sparsity has neither k nor a penalty weight to warm up")
        self._apply(trainer, trainer.global_step)

    def _apply(self, trainer: Any, step: int) -> None:
        value = linear_warmup(self._start, self._target, self.steps, step)
        setattr(
            trainer.model.sparsity, self._attr, max(1, round(value)) if self._attr == "k" else value
        )

    def on_step_end(self, trainer: Any, out: Any) -> None:
        self._apply(trainer, trainer.global_step)

    def on_train_end(self, trainer: Any) -> None:
        setattr(trainer.model.sparsity, self._attr, self._target)


# -- what a TrainConfig asks for ---------------------------------------------------------------
def resolve(config: TrainConfig, model: Any) -> TrainConfig:
    """The config with the model's own dictionary defaults filled in where it says None."""
    defaults = getattr(model, "dictionary_defaults", {})
    changes = {
        name: defaults.get(name, fallback)
        for name, fallback in (("unit_norm_decoder", False), ("b_dec_init", "none"), ("eps", 1e-7))
        if getattr(config, name) is None
    }
    return config.replace(**changes) if changes else config


def tricks_for(config: TrainConfig, model: Any) -> tuple[list[Callback], AuxK | None]:
    """Callbacks and the AuxK term a (resolved) config asks for, checked against the model."""
    callbacks: list[Callback] = []
    if config.unit_norm_decoder:
        model.decoder_atoms_or_raise()
        callbacks.append(UnitNormDecoder())
    if config.sparsity_warmup:
        callbacks.append(SparsityWarmup(config.sparsity_warmup, config.k_start))
    aux = None
    if config.dead_after:
        dead = DeadLatents(model.n_latents, config.dead_after)
        callbacks.append(dead)
        if config.aux_k:
            model.decoder_atoms_or_raise()
            aux = AuxK(dead, config.aux_k, config.aux_weight)
        if config.resample_every:
            callbacks.append(
                ResampleDeadLatents(dead, config.resample_every, config.resample_scale)
            )
    return callbacks, aux
