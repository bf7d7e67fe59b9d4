"""One training loop for every model kind (the loop only; the parts live beside it).

Speed comes from doing no Python work per sample: a `BatchSource` yields each epoch's batches
(in memory: one permutation, one gather, zero-copy slices); the loss is checked every step
(every few steps on a GPU) and the last good weights are restored on NaN/inf; checkpoints are
written atomically so a killed run resumes exactly where it stopped.

Any model works that implements `sparseae.models.base.SparseModel`. The trainer adds what a
`TrainConfig` asks for on top of ``model.step``: the dictionary tricks (`dictionary`), the
learning-rate schedule, data parallelism, the model's own hand-derived step where it offers
one. It imports no model and never asks which sparsity a model uses.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sparseae import checkpoint
from sparseae.data.tensors import as_tensor
from sparseae.devices import resolve_device
from sparseae.errors import ConfigError, DataError, TrainingDivergedError
from sparseae.sparsities.base import Sparsity
from sparseae.training import dictionary, distributed, state
from sparseae.training.callbacks import Callback, History, overrides
from sparseae.training.config import RESUMABLE_CHANGES, TrainConfig
from sparseae.training.evaluate import evaluate
from sparseae.training.guard import (
    DivergenceGuard,
    collapsed,
    fingerprint,
    resume_differences,
    with_defaults,
)
from sparseae.training.inputs import make_source
from sparseae.training.optim import TrainerOptimizer, make_optimizer
from sparseae.training.run_folder import RunFolder
from sparseae.training.schedules import lr_factor
from sparseae.training.step import EpochSums, TrainStep, compiled_step

TRAINER_STATE_FILE = state.TRAINER_STATE_FILE
INIT_ROWS = 65536  # rows a data-dependent initialisation sees


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
        overwrite: bool = False,
    ) -> None:
        self.model = model
        self.overwrite = overwrite
        self.config = dictionary.resolve(config or TrainConfig(), model)
        tricks, self.aux = dictionary.tricks_for(self.config, model)
        self.callbacks = [*tricks, *callbacks]
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.log = log
        self.device = resolve_device(self.config.device)
        self.history = History()
        self.epoch = 0  # epochs completed
        self.global_step = 0
        self.step_in_epoch = 0
        self.optimizer: TrainerOptimizer | None = None
        self.train_seconds = 0.0
        self.resumed_at: int | None = None  # global step a resumed run continued from
        self.rank, self.world_size = 0, 1
        self.last_batch: Tensor | None = None
        self._sums: EpochSums | None = None
        self.guard = DivergenceGuard(self.config.diverge_factor)
        self._probe: Tensor | None = None  # training rows the collapse check encodes
        self._fingerprint: dict[str, Any] = {}
        self._bar: Any = None

    # -- public API ---------------------------------------------------------------------------
    def fit(
        self,
        x_train: Any,
        x_val: Any = None,
        *,
        resume: bool | str = False,
        allow_changes: tuple[str, ...] = (),
    ) -> History:
        """Train; ``resume=True`` continues the run saved in ``checkpoint_dir`` (an error if
        there is none, ``"auto"``: start afresh then), refusing changed settings except
        those named in ``allow_changes`` (see `RESUMABLE_CHANGES`)."""
        folder = None
        if self.checkpoint_dir is not None:
            rank = distributed.rank_and_world()[0]
            folder = RunFolder(
                self.checkpoint_dir, resume=resume, overwrite=self.overwrite, lock=rank == 0
            )
            folder.open()
        try:
            source, xv = self._prepare(x_train, x_val, resume, tuple(allow_changes))
            for cb in self.callbacks:
                cb.on_train_begin(self)
            while self.epoch < self.config.epochs:
                self._run_epoch(source, xv)
            for cb in self.callbacks:
                cb.on_train_end(self)
        finally:
            self._close_progress()
            if folder is not None:
                folder.close()
        self.model.eval()
        return self.history

    # -- set-up ---------------------------------------------------------------------------------
    def _prepare(
        self, x_train: Any, x_val: Any, resume: bool | str, allow: tuple[str, ...]
    ) -> tuple[Any, Tensor | None]:
        cfg = self.config
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.rank, self.world_size = distributed.rank_and_world()
        source = make_source(
            x_train,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            device=self.device,
            rank=self.rank,
            world_size=self.world_size,
        )
        xv = as_tensor(x_val, "validation data") if x_val is not None and len(x_val) else None
        total = source.steps_per_epoch * cfg.epochs
        if cfg.lr_decay_steps > total:  # else the lr would start near 0 and stay there
            raise ConfigError(
                f"lr_decay_steps={cfg.lr_decay_steps} is more than the run's {total} steps "
                f"({cfg.epochs} epochs of {source.steps_per_epoch}): use at most {total}"
            )
        sample = source.sample_rows(INIT_ROWS)  # read once: init, checks, fingerprint
        self._probe = sample[:2048]
        self._fingerprint = fingerprint(self._probe[:64], source.n_rows)
        self._check_data(self._probe, xv)
        model = self.model.to(self.device)
        model.train()
        self.optimizer = make_optimizer(model, cfg)
        resumed = bool(resume) and self._load_trainer_state(allow)
        if not resumed:
            self._initialize_from_data(sample)
        self._build_step()
        return source, xv

    def _check_data(self, probe: Tensor, xv: Tensor | None) -> None:
        """Data the model cannot use is refused before the first step, with the fix."""
        d_in = getattr(self.model, "row_width", None)
        bce = getattr(getattr(self.model, "config", None), "loss", None) == "bce"
        for name, rows in (("training data", probe), ("validation data", xv)):
            if rows is None:
                continue
            features = int(math.prod(rows.shape[1:]))
            if d_in is not None and features != d_in:
                raise DataError(
                    f"{name} has {features} features per row but the model takes {d_in}: "
                    "build the model with d_in matching the data"
                )
            lo, hi = float(rows.min()), float(rows.max())
            if bce and (lo < 0 or hi > 1):
                raise DataError(
                    f"bce loss needs inputs in [0, 1], but the {name} spans [{lo:.3g}, "
                    f"{hi:.3g}]: scale it to [0, 1] (--scale minmax) or use --loss mse"
                )

    def _initialize_from_data(self, sample: Tensor) -> None:
        """A fresh run's data-dependent initialisation (the model's own, then b_dec)."""
        sample = sample.float()
        generator = torch.Generator().manual_seed(self.config.seed)
        self.model.initialize_from_data(sample.cpu(), generator)
        self.model.to(self.device)
        if self.config.b_dec_init not in (None, "none"):
            dictionary.init_decoder_bias(self.model, sample, self.config.b_dec_init)
        if self.config.atom_init == "data":
            norm = self.config.atom_init_norm
            dictionary.init_atoms_from_data(self.model, sample, generator, norm)

    def _build_step(self) -> None:
        cfg, world = self.config, self.world_size
        step: Any = TrainStep(self.model, self.aux)
        if world > 1:
            step = distributed.wrap_step(step, self.device)
        if cfg.compile:
            step = compiled_step(step, distributed_run=world > 1)
        self.step_fn = step
        use_fused = cfg.manual_backward and not cfg.compile and world == 1
        self.fused = self.model.fused_step() if use_fused else None
        if self.aux is not None and not getattr(self.fused, "takes_aux", False):
            self.fused = None  # AuxK then runs through autograd
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.after_backward = [
            cb.on_after_backward for cb in self.callbacks if overrides(cb, "on_after_backward")
        ]
        self.step_end = [cb.on_step_end for cb in self.callbacks if overrides(cb, "on_step_end")]
        self.base_lrs = [cfg.lr for _ in self.optimizer.param_groups] if self.optimizer else []
        sparsity = getattr(self.model, "sparsity", None)
        scheduled = sparsity is not None and type(sparsity).on_step is not Sparsity.on_step
        self.sparsity_schedule = sparsity.on_step if scheduled else None

    # -- the loop -------------------------------------------------------------------------------
    def _run_epoch(self, source: Any, xv: Tensor | None) -> None:
        cfg, epoch = self.config, self.epoch
        snapshot = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        for cb in self.callbacks:
            cb.on_epoch_begin(self, epoch)
        batches = source.epoch_batches(epoch, self.step_in_epoch)
        if self.step_in_epoch == 0:
            torch.manual_seed(cfg.seed * 1_000_003 + epoch + 104_729 * self.rank)
            self._sums = EpochSums(self.device.type == "cpu" and self.world_size == 1, self.device)
        sums = self._sums
        steps = source.steps_per_epoch
        bar = self._progress(steps)
        t0 = time.perf_counter()
        check_every = 50  # steps between NaN checks when reading the sums costs a sync
        for step, xb in zip(range(self.step_in_epoch, steps), batches, strict=True):
            out = self._train_step(xb, steps * cfg.epochs)
            self.step_in_epoch = step + 1
            last = sums.add(out)
            for hook in self.step_end:
                hook(self, out)
            if sums.on_host or step % check_every == 0 or step == steps - 1:
                problem = self.guard.problem(float(last))
                if problem is not None:
                    self._diverged(snapshot, epoch, step, problem)
            if bar is not None:
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{sums.loss_total() / sums.steps:.4f}", refresh=False)
            if self.checkpoint_every and self.global_step % self.checkpoint_every == 0:
                if self.step_in_epoch < steps:
                    self._save_checkpoint(partial=True)
        seconds = time.perf_counter() - t0
        self._end_epoch(snapshot, sums, seconds, xv)

    def _train_step(self, xb: Tensor, total_steps: int) -> Any:
        cfg, opt = self.config, self.optimizer
        scheduled = cfg.lr_schedule != "constant" or cfg.warmup_steps or cfg.lr_decay_steps
        if opt is not None and scheduled:
            f = lr_factor(
                cfg.lr_schedule, self.global_step, total_steps, cfg.warmup_steps, cfg.lr_decay_steps
            )
            for g, base in zip(opt.param_groups, self.base_lrs, strict=True):
                g["lr"] = base * f
        self.last_batch = xb
        if self.sparsity_schedule is not None:
            self.sparsity_schedule(self.global_step)
        if self.fused is not None:  # forward and gradients in one hand-derived pass
            out = self.fused.step(xb) if self.aux is None else self.fused.step(xb, self.aux)
        else:
            out = self.step_fn(xb)
            if opt is not None and out.loss.requires_grad:
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
        if opt is not None:
            for hook in self.after_backward:
                hook(self)
            if cfg.max_grad_norm:
                nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
            opt.step() if opt.hooked() else opt.update()  # hooks take the stock path
        self.global_step += 1
        return out

    def _end_epoch(
        self, snapshot: dict[str, Tensor], sums: EpochSums, seconds: float, xv: Tensor | None
    ) -> None:
        epoch = self.epoch
        self.train_seconds += seconds
        loss_sum, term_sums = sums.loss, sums.terms
        if self.world_size > 1:  # log the mean over ranks, as one process would see it
            loss_sum, term_sums = distributed.mean_over_ranks(loss_sum, term_sums)
        record: dict[str, Any] = {"epoch": epoch + 1, "seconds": seconds}
        record["loss"] = float(loss_sum) / sums.steps
        if not math.isfinite(record["loss"]):
            self._diverged(snapshot, epoch, self.step_in_epoch - 1, "loss became NaN/inf")
        if self.config.collapse_check and collapsed(self.model, self._probe):
            self._diverged(
                snapshot,
                epoch,
                self.step_in_epoch - 1,
                "the code collapsed: every latent is dead (L0 = 0 on the first "
                f"{len(self._probe)} training rows; to allow it: --no-collapse-check)",
            )
        for name, value in term_sums.items():
            record[name] = float(value) / sums.steps
        if xv is not None:
            t_val = time.perf_counter()
            val = evaluate(self.model, xv, batch_size=self.config.eval_batch_size)
            record.update({f"val_{k}": v for k, v in val.items()})
            record["val_seconds"] = time.perf_counter() - t_val
            self.model.train()
        self.epoch = epoch + 1
        self.step_in_epoch = 0
        for cb in self.callbacks:
            cb.on_epoch_end(self, record)
        self.history.records.append(record)
        if self.log is not None and self.rank == 0:
            self.log(record)
        if self.checkpoint_dir is not None:
            self._save_checkpoint(partial=False)

    # -- internals ----------------------------------------------------------------------------
    def _progress(self, steps: int) -> Any:
        """One bar for the whole run (it advances every step and stays on screen, with a
        summary line at the end: `_close_progress`), or None when progress is off: by
        default on when stderr is a terminal, on rank 0 only."""
        show = self.progress
        if show is None:
            show = sys.stderr.isatty()
        if not show or self.rank != 0:
            return None
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=steps * self.config.epochs,
                initial=self.global_step,
                desc="training",
                unit="step",
                mininterval=0.2,
            )
        self._bar.set_description(f"epoch {self.epoch + 1}/{self.config.epochs}", refresh=False)
        return self._bar

    def _close_progress(self) -> None:
        bar = self._bar
        if bar is None:
            return
        self._bar = None
        bar.close()
        last = self.history.last
        parts = [f"trained {self.epoch} epochs ({self.global_step} steps) in "
                 f"{self.train_seconds:.1f}s"]  # fmt: skip
        parts += [f"{k} {last[k]:.4g}" for k in ("loss", "val_recon", "val_l0") if k in last]
        print(", ".join(parts), file=sys.stderr, flush=True)

    def _diverged(self, snapshot: dict[str, Tensor], epoch: int, step: int, what: str) -> None:
        self.model.load_state_dict(snapshot)
        where = f"epoch {epoch + 1}, step {step + 1}"
        kept = (
            f"; the last good checkpoint is kept in {self.checkpoint_dir}"
            if self.checkpoint_dir is not None and (self.epoch > 0 or self.checkpoint_every)
            else "; the model holds its weights from the start of that epoch"
        )
        raise TrainingDivergedError(
            f"{what} at {where}: lower the learning rate (--lr) or the penalty weight, or set "
            f"--max-grad-norm{kept}"
        )

    # -- checkpoints ----------------------------------------------------------------------------
    def _save_checkpoint(self, *, partial: bool) -> None:
        assert self.checkpoint_dir is not None
        folder = self.checkpoint_dir
        if not partial and self.rank == 0:
            checkpoint.save(
                self.model, folder, history=self.history.records, train_config=self.config.to_dict()
            )
        tensors, info = self._state_tensors()
        if self.world_size > 1:  # every rank draws its own noise: keep each rank's RNG
            tensors.update(distributed.gather_rng_states(tensors["rng.torch"], self.device))
            if self.rank != 0:
                return
        state.write_state(folder / TRAINER_STATE_FILE, tensors, info)

    def _state_tensors(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        tensors: dict[str, Tensor] = {}
        meta: dict[str, Any] = {}
        if self.optimizer is not None:
            tensors, meta = state.optimizer_state_to_tensors(self.optimizer)
        tensors.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        callbacks: dict[str, Any] = {}
        for i, cb in enumerate(self.callbacks):
            cb_tensors, rest = state.split_state(f"callback.{i}", cb.state_dict())
            tensors.update(cb_tensors)
            callbacks[str(i)] = {"class": type(cb).__name__, "state": rest}
        sums = self._sums.to_json() if self._sums is not None and self.step_in_epoch else None
        info = {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "step_in_epoch": self.step_in_epoch,
            "train_seconds": self.train_seconds,
            "optimizer": meta,
            "history": self.history.records,
            "train_config": self.config.to_dict(),
            "callbacks": callbacks,
            "epoch_sums": sums,
            "model": {
                "kind": getattr(self.model, "checkpoint_kind", type(self.model).__name__),
                "config": checkpoint.model_config_dict(self.model),
            },
            "data": self._fingerprint,
            "guard": self.guard.state(),
        }
        return tensors, info

    def _load_trainer_state(self, allow: tuple[str, ...]) -> bool:
        """Restore the state saved in the checkpoint folder; False if there is none."""
        if self.checkpoint_dir is None:
            raise ConfigError("resume needs a checkpoint folder (--out of the interrupted run)")
        path = self.checkpoint_dir / TRAINER_STATE_FILE
        if not path.is_file():
            return False
        tensors, info = state.read_state(path)
        self._check_same_run(info, allow, path)
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        state.load_model_state(self.model, model_state, path)
        if self.optimizer is not None:
            state.optimizer_state_from_tensors(self.optimizer, tensors, info["optimizer"])
        torch.set_rng_state(tensors.get(f"rng.torch.rank{self.rank}", tensors["rng.torch"]))
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        for i, cb in enumerate(self.callbacks):
            saved = info.get("callbacks", {}).get(str(i))
            if saved is not None:
                cb.load_state_dict(state.join_state(f"callback.{i}", tensors, saved["state"]))
        self.epoch = int(info["epoch"])
        self.global_step = int(info["global_step"])
        self.step_in_epoch = int(info["step_in_epoch"])
        self.train_seconds = float(info.get("train_seconds", 0.0))
        self.history = History(list(info["history"]))
        if self.step_in_epoch and info.get("epoch_sums"):
            self._sums = EpochSums.from_json(info["epoch_sums"], self.device, self.world_size)
        self.guard.load(info.get("guard"))
        self.resumed_at = self.global_step
        return True

    def _check_same_run(self, info: dict[str, Any], allow: tuple[str, ...], path: Path) -> None:
        """A resumed command must describe the saved run: same training settings (bar the
        allowed ones), same model, same data."""
        bad = sorted(set(allow) - set(RESUMABLE_CHANGES))
        if bad:
            raise ConfigError(
                f"{', '.join(bad)} cannot change on resume (only {', '.join(RESUMABLE_CHANGES)})"
            )
        saved_train = with_defaults(info.get("train_config", {}), TrainConfig)
        diffs = resume_differences(saved_train, self.config.to_dict(), allow)
        saved_model = info.get("model")
        if saved_model is not None:
            current = {"kind": self.model.checkpoint_kind}
            current["config"] = checkpoint.model_config_dict(self.model)
            config_type = type(self.model.config)
            saved_model = {
                **saved_model,
                "config": with_defaults(saved_model.get("config"), config_type),
            }
            diffs += [f"model {d}" for d in resume_differences(saved_model, current)]
        if info.get("data") and info["data"] != self._fingerprint:
            diffs.append(f"data: {info['data']} -> {self._fingerprint}")
        if diffs:
            allowable = [d.split(":")[0] for d in diffs if d.split(":")[0] in RESUMABLE_CHANGES]
            hint = f" (allow with --allow-change {' '.join(allowable)})" if allowable else ""
            raise ConfigError(
                f"--resume of {path.parent} with other settings than the saved run: "
                f"{'; '.join(diffs)}{hint}; or start afresh with --overwrite"
            )


def fit(
    model: nn.Module,
    x_train: Any,
    x_val: Any = None,
    *,
    config: TrainConfig | None = None,
    callbacks: Iterable[Callback] = (),
    checkpoint_dir: str | Path | None = None,
    resume: bool | str = False,
    progress: bool | None = None,
    log: Any = None,
    overwrite: bool = False,
    allow_changes: tuple[str, ...] = (),
    **overrides: Any,
) -> History:
    """Train ``model`` on ``x_train`` (validating on ``x_val`` each epoch); keyword
    overrides such as ``epochs=5, batch_size=256, lr=3e-3`` patch the config."""
    config = config or TrainConfig()
    if overrides:
        config = config.replace(**overrides)
    trainer = Trainer(
        model,
        config,
        callbacks=list(callbacks),
        checkpoint_dir=checkpoint_dir,
        progress=progress,
        log=log,
        overwrite=overwrite,
    )
    return trainer.fit(x_train, x_val, resume=resume, allow_changes=allow_changes)
