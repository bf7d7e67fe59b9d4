"""One training loop for every model.

Speed comes from doing no Python work per sample: each epoch draws one permutation, gathers
the shuffled data once into a contiguous tensor and then takes batches as zero-copy slices;
loss terms are summed as tensors and read once per epoch. Robustness comes from checking
the loss every step (every few steps on a GPU), restoring the last good weights on NaN/inf,
and writing checkpoints atomically so a killed run resumes exactly where it stopped.

Any model works that has ``step(x) -> StepOutput`` (loss, named terms, code) and
``n_latents``; see `sparseae.model.Autoencoder`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sparseae import checkpoint
from sparseae.config import TrainConfig
from sparseae.data.sources import make_source
from sparseae.errors import ConfigError, DataError, TrainingDivergedError
from sparseae.metrics import SparsityStats
from sparseae.training import distributed
from sparseae.training.optim import LeanAdam

TRAINER_STATE_FILE = "trainer_state.safetensors"


# ---------------------------------------------------------------------------------------------
# history and callbacks
@dataclass
class History:
    """Per-epoch records (dicts of floats): ``history["val_recon"]`` is the list over epochs."""

    records: list[dict[str, Any]] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[Any]:
        return [r[key] for r in self.records if key in r]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def last(self) -> dict[str, Any]:
        return self.records[-1] if self.records else {}


class Callback:
    """Override what you need; the trainer only calls per-step hooks that are overridden,
    so unused hooks cost nothing in the hot loop."""

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_epoch_begin(self, trainer: Trainer, epoch: int) -> None: ...

    def on_after_backward(self, trainer: Trainer) -> None: ...

    def on_step_end(self, trainer: Trainer, out: Any) -> None: ...

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


def _overrides(cb: Callback, name: str) -> bool:
    return getattr(type(cb), name) is not getattr(Callback, name)


# ---------------------------------------------------------------------------------------------
# helpers
def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} asked for, but no CUDA GPU is visible: use --device cpu"
        )
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None


def as_tensor(x: Any, name: str = "x") -> Tensor:
    """Accept numpy arrays, tensors and objects with an ``x`` attribute (data.Split)."""
    if hasattr(x, "x") and not isinstance(x, Tensor | np.ndarray):
        x = x.x
    if isinstance(x, Tensor):
        t = x.detach().float()
    else:
        try:
            arr = np.ascontiguousarray(x, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{name} is not a numeric array ({exc})") from None
        t = torch.from_numpy(arr)
    if t.ndim < 2 or t.shape[0] == 0:
        raise DataError(
            f"{name} must be a non-empty array of shape (n_samples, ...), got {tuple(t.shape)}"
        )
    if not bool(torch.isfinite(t).all()):
        raise DataError(f"{name} contains NaN or inf values: clean or impute them before training")
    return t


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> LeanAdam:
    """Adam with L2 weight decay on weight matrices only (as Keras kernel_regularizer), with
    the fused kernel called through `LeanAdam` (one param group when there is no decay, so
    one kernel launch per step)."""
    params = [p for p in model.parameters() if p.requires_grad]
    kwargs = dict(lr=config.lr, betas=config.betas, eps=config.eps)
    if config.weight_decay == 0:
        return LeanAdam(params, **kwargs)
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return LeanAdam(groups, **kwargs)


def lr_factor(schedule: str, step: int, total: int, warmup: int) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based)."""
    if schedule == "onecycle":
        warmup = warmup or max(1, int(0.3 * total))
        if step < warmup:
            return 0.04 + 0.96 * step / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    progress = min(1.0, max(0.0, progress))
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    raise ConfigError(f"unknown lr schedule {schedule!r}")


def model_device(model: nn.Module) -> torch.device:
    """Where a model lives (models with buffers only, like the sparse-coding learner, too)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def compiled_step(step_fn: Any, *, distributed_run: bool = False) -> Any:
    """``step_fn`` compiled by torch.compile, falling back to eager (with one warning) where
    compilation is impossible (no C++ compiler, an unsupported op): a speed option must never
    cost a run. The traced step has no side effects before it returns, so a failed compile
    leaves the model as it was."""
    import warnings

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

    return step


def manual_stepper(model: nn.Module, config: TrainConfig, world_size: int) -> Any:
    """The hand-derived step (`sparseae.manual_step`) where it computes exactly what autograd
    would, else None. Not under DDP (its gradient hooks live in autograd) nor with
    ``compile`` (which traces the autograd step)."""
    if not config.manual_backward or config.compile or world_size > 1:
        return None
    from sparseae.models.autoencoder.fused_mlp import ManualMLPStep, supports

    return ManualMLPStep(model) if supports(model) is None else None


# ---------------------------------------------------------------------------------------------
# evaluation
@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: Any,
    *,
    batch_size: int = 4096,
    device: str | torch.device | None = None,
    threshold: float = 0.0,
) -> dict[str, float]:
    """Loss terms and code statistics of ``model`` on ``x`` in eval mode (no corruption,
    inference-time sparsity), averaged over samples."""
    xt = as_tensor(x)
    dev = model_device(model) if device is None else resolve_device(device)
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    stats = SparsityStats(model.n_latents, threshold, device=dev)
    try:
        for start in range(0, xt.shape[0], batch_size):
            xb = xt[start : start + batch_size].to(dev, non_blocking=True)
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


class _EpochSums:
    """The epoch's running sums of the loss and its named terms. On the CPU of a single
    process they are Python floats (float64; each step's `float()` costs less than the tensor
    ops it replaces, so every step can be checked for NaN); elsewhere tensors on the device,
    which DDP can average and which are read (a sync) only every few steps."""

    def __init__(self, on_host: bool, device: torch.device) -> None:
        self.on_host = on_host
        self.loss: Any = 0.0 if on_host else torch.zeros((), device=device)
        self.terms: dict[str, Any] = {}

    def add(self, out: Any) -> None:
        if self.on_host:
            self.loss += float(out.loss.detach())
            for name, value in out.terms.items():
                self.terms[name] = self.terms.get(name, 0.0) + float(value.detach())
            return
        self.loss += out.loss.detach()
        for name, value in out.terms.items():
            if name in self.terms:
                self.terms[name] += value.detach()
            else:
                self.terms[name] = value.detach().clone()

    def loss_total(self) -> float:
        return float(self.loss)


# ---------------------------------------------------------------------------------------------
# the trainer
class Trainer:
    """Trains one model; holds the optimizer, history and checkpoint folder.

    ``checkpoint_dir``: after every epoch (and every ``checkpoint_every`` steps if set) the
    model folder and ``trainer_state.safetensors`` are written there atomically;
    ``fit(..., resume=True)`` continues from it to the same final weights as an
    uninterrupted run (same seed, same device).
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig | None = None,
        *,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        progress: bool | None = None,
        log: Any = None,
    ) -> None:
        self.model = model
        self.config = config or TrainConfig()
        self.callbacks = list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.log = log
        self.device = resolve_device(self.config.device)
        self.history = History()
        self.epoch = 0  # epochs completed
        self.global_step = 0
        self.step_in_epoch = 0
        self.optimizer: LeanAdam | None = None
        self.train_seconds = 0.0
        self.resumed_at: int | None = None  # global step a resumed run continued from

    # -- public API ---------------------------------------------------------------------------
    def fit(self, x_train: Any, x_val: Any = None, *, resume: bool = False) -> History:
        cfg = self.config
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        rank, world = distributed.rank_and_world()
        source = make_source(
            x_train,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            device=self.device,
            rank=rank,
            world_size=world,
        )
        xv = as_tensor(x_val, "validation data") if x_val is not None and len(x_val) else None
        model = self.model.to(self.device)
        model.train()
        self.optimizer = make_optimizer(model, cfg, self.device)
        steps_per_epoch = source.steps_per_epoch
        total_steps = steps_per_epoch * cfg.epochs
        if resume:
            self._load_trainer_state()
        step_fn = distributed.wrap_step(model, self.device) if world > 1 else model.step
        if cfg.compile:
            step_fn = compiled_step(step_fn, distributed_run=world > 1)
        manual = manual_stepper(model, cfg, world)
        base_lrs = [cfg.lr for _ in self.optimizer.param_groups]  # not the resumed, scheduled lr
        on_host = self.device.type == "cpu" and world == 1  # see _EpochSums
        check_every = 50  # steps between NaN checks when reading the sums costs a sync
        after_backward = [
            cb.on_after_backward for cb in self.callbacks if _overrides(cb, "on_after_backward")
        ]
        step_end = [cb.on_step_end for cb in self.callbacks if _overrides(cb, "on_step_end")]
        scheduled = cfg.lr_schedule != "constant" or cfg.warmup_steps > 0
        params = [p for p in model.parameters() if p.requires_grad]
        for cb in self.callbacks:
            cb.on_train_begin(self)
        opt = self.optimizer
        while self.epoch < cfg.epochs:
            epoch = self.epoch
            for cb in self.callbacks:
                cb.on_epoch_begin(self, epoch)
            snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
            batches = source.epoch_batches(epoch, self.step_in_epoch)
            if self.step_in_epoch == 0:
                torch.manual_seed(cfg.seed * 1_000_003 + epoch + 104_729 * rank)
            sums = _EpochSums(on_host, self.device)
            update = opt.step if opt.hooked() else opt.update  # hooks take the stock path
            bar = self._bar(steps_per_epoch, epoch)
            t0 = time.perf_counter()
            first_step = self.step_in_epoch
            for step, xb in zip(range(first_step, steps_per_epoch), batches, strict=True):
                if scheduled:
                    f = lr_factor(cfg.lr_schedule, self.global_step, total_steps, cfg.warmup_steps)
                    for g, base in zip(opt.param_groups, base_lrs, strict=True):
                        g["lr"] = base * f
                if manual is not None:  # forward and gradients in one hand-derived pass
                    out = manual.step(xb)
                else:
                    out = step_fn(xb)
                    opt.zero_grad(set_to_none=True)
                    out.loss.backward()
                for hook in after_backward:
                    hook(self)
                if cfg.max_grad_norm:
                    nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                update()
                self.global_step += 1
                self.step_in_epoch = step + 1
                sums.add(out)
                for hook in step_end:
                    hook(self, out)
                if (
                    sums.on_host or step % check_every == 0 or step == steps_per_epoch - 1
                ) and not math.isfinite(sums.loss_total()):
                    self._diverged(snapshot, epoch, step)
                if bar is not None:
                    bar.update(1)
                    if step % 100 == 0:
                        mean = sums.loss_total() / (step + 1 - first_step)
                        bar.set_postfix(loss=f"{mean:.4f}", refresh=False)
                if self.checkpoint_every and self.global_step % self.checkpoint_every == 0:
                    if self.step_in_epoch < steps_per_epoch:
                        self._save_checkpoint(partial=True)
            seconds = time.perf_counter() - t0
            self.train_seconds += seconds
            if bar is not None:
                bar.close()
            done = max(1, steps_per_epoch - first_step)  # steps run since (re)start
            loss_sum, term_sums = sums.loss, sums.terms
            if world > 1:  # log the mean over ranks, as one process would see it
                loss_sum, term_sums = distributed.mean_over_ranks(loss_sum, term_sums)
            record: dict[str, Any] = {"epoch": epoch + 1, "seconds": seconds}
            record["loss"] = float(loss_sum) / done
            if not math.isfinite(record["loss"]):
                self._diverged(snapshot, epoch, steps_per_epoch - 1)
            for name, value in term_sums.items():
                record[name] = float(value) / done
            if xv is not None:
                t_val = time.perf_counter()
                val = evaluate(model, xv, batch_size=cfg.eval_batch_size, device=self.device)
                record.update({f"val_{k}": v for k, v in val.items()})
                record["val_seconds"] = time.perf_counter() - t_val
                model.train()
            self.epoch = epoch + 1
            self.step_in_epoch = 0
            self.history.records.append(record)
            if self.log is not None and rank == 0:
                self.log(record)
            for cb in self.callbacks:
                cb.on_epoch_end(self, record)
            if self.checkpoint_dir is not None:
                self._save_checkpoint(partial=False)
        for cb in self.callbacks:
            cb.on_train_end(self)
        model.eval()
        return self.history

    # -- internals ----------------------------------------------------------------------------
    def _bar(self, total: int, epoch: int) -> Any:
        show = self.progress
        if show is None:
            import sys

            show = sys.stderr.isatty()
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=total,
            initial=self.step_in_epoch,
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            unit="step",
            leave=False,
            mininterval=0.5,
        )

    def _diverged(self, snapshot: dict[str, Tensor], epoch: int, step: int) -> None:
        self.model.load_state_dict(snapshot)
        where = f"epoch {epoch + 1}, step {step + 1}"
        kept = (
            f"; the last good checkpoint is kept in {self.checkpoint_dir}"
            if self.checkpoint_dir is not None and self.epoch > 0
            else "; the model holds its weights from the start of that epoch"
        )
        raise TrainingDivergedError(
            f"loss became NaN/inf at {where}: lower the learning rate (--lr) or the penalty "
            f"weight, or set --max-grad-norm{kept}"
        )

    def _save_checkpoint(self, *, partial: bool) -> None:
        assert self.checkpoint_dir is not None and self.optimizer is not None
        folder = self.checkpoint_dir
        if not partial and distributed.is_main_process():
            checkpoint.save(
                self.model,
                folder,
                history=self.history.records,
                train_config=self.config.to_dict(),
            )
        tensors, meta = optimizer_state_to_tensors(self.optimizer)
        tensors.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
        tensors["rng.torch"] = torch.get_rng_state()
        rank, world = distributed.rank_and_world()
        if world > 1:  # every rank draws its own noise: keep each rank's RNG (collective)
            tensors.update(distributed.gather_rng_states(tensors["rng.torch"]))
            if rank != 0:
                return
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        info = {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "step_in_epoch": self.step_in_epoch,
            "train_seconds": self.train_seconds,
            "optimizer": meta,
            "history": self.history.records,
            "train_config": self.config.to_dict(),
        }
        checkpoint.atomic_save_tensors(
            folder / TRAINER_STATE_FILE, tensors, metadata={"trainer": json.dumps(info)}
        )

    def _load_trainer_state(self) -> None:
        if self.checkpoint_dir is None:
            raise ConfigError("resume needs a checkpoint folder (--out of the interrupted run)")
        path = self.checkpoint_dir / TRAINER_STATE_FILE
        if not path.is_file():
            return  # nothing to resume from: a fresh run
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            info = json.loads(fh.metadata()["trainer"])
        tensors = checkpoint.load_tensors(path)
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state, strict=True)
        assert self.optimizer is not None
        optimizer_state_from_tensors(self.optimizer, tensors, info["optimizer"])
        rank, _ = distributed.rank_and_world()
        torch.set_rng_state(tensors.get(f"rng.torch.rank{rank}", tensors["rng.torch"]))
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.epoch = int(info["epoch"])
        self.global_step = int(info["global_step"])
        self.step_in_epoch = int(info["step_in_epoch"])
        self.train_seconds = float(info.get("train_seconds", 0.0))
        self.history = History(list(info["history"]))
        self.resumed_at = self.global_step


def optimizer_state_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON (the rest)."""
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            if isinstance(value, Tensor):  # a copy: LeanAdam's step counters share storage
                tensors[f"optim.{pid}.{key}"] = value.clone()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_state_from_tensors(
    opt: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def fit(
    model: nn.Module,
    x_train: Any,
    x_val: Any = None,
    *,
    config: TrainConfig | None = None,
    callbacks: Iterable[Callback] = (),
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    log: Any = None,
    **overrides: Any,
) -> History:
    """Train ``model`` on ``x_train`` (validating on ``x_val`` each epoch); keyword
    overrides such as ``epochs=5, batch_size=256, lr=3e-3`` patch the config."""
    config = (
        (config or TrainConfig()).replace(**overrides) if overrides else (config or TrainConfig())
    )
    trainer = Trainer(
        model,
        config,
        callbacks=list(callbacks),
        checkpoint_dir=checkpoint_dir,
        progress=progress,
        log=log,
    )
    return trainer.fit(x_train, x_val, resume=resume)
