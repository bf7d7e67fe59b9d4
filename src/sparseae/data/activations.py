"""Activations of any ``torch.nn.Module`` layer, collected offline with a forward hook.

``extract_activations(model, "encoder.layer.3", batches, out=ShardWriter(...))`` runs the
model over the inputs, catches the layer's output with ``register_forward_hook`` (no change
to the model's code) and keeps one row per example, or one row per real token for sequence
outputs (batch, seq, d): padding tokens are dropped using the attention mask. Every row keeps
its provenance (which input it came from and at which token position) so a dashboard can show
the inputs and tokens that make a latent fire. The forward pass stops right after the hooked
layer: later layers would only cost time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sparseae.errors import ConfigError, DataError

REDUCTIONS = ("auto", "tokens", "mean", "first", "flatten")


@dataclass
class Activations:
    """Rows of activations plus where each came from.

    ``x``: (rows, d) float32 (None when written to shards); ``source``: index of the input
    example of each row (counting across batches); ``position``: token position (0 for
    per-example rows); ``folder``: the shard folder when written with a `ShardWriter`.
    """

    x: np.ndarray | None
    source: np.ndarray
    position: np.ndarray
    folder: Path | None = None

    def __len__(self) -> int:
        return int(self.source.shape[0])


class _Stop(Exception):
    """Raised by the hook once the layer's output is caught, to skip the rest of the model."""


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    modules = dict(model.named_modules())
    if layer not in modules:
        names = [n for n in modules if n][:12]
        raise ConfigError(
            f"model has no layer {layer!r}: pass one of its named_modules() names, e.g. "
            f"{', '.join(names)}"
        )
    return modules[layer]


def _batches(inputs: Any, batch_size: int) -> Iterator[Any]:
    if isinstance(inputs, Tensor | np.ndarray):
        t = torch.as_tensor(inputs)
        for start in range(0, t.shape[0], batch_size):
            yield t[start : start + batch_size]
    elif isinstance(inputs, Iterable):
        yield from inputs
    else:
        raise DataError(
            f"inputs must be a tensor, an array or an iterable of batches, got {type(inputs)}"
        )


def _call(model: nn.Module, batch: Any, device: torch.device) -> None:
    if isinstance(batch, Mapping):  # tokenizer output: keyword arguments
        kwargs = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
        kwargs.pop("special_tokens_mask", None)  # ours, not the model's
        model(**kwargs)
        return
    if isinstance(batch, list | tuple):  # (inputs, labels) from a DataLoader
        batch = batch[0]
    model(torch.as_tensor(batch).to(device))


def _rows(out: Tensor, mask: Tensor | None, reduce: str) -> tuple[Tensor, Tensor, Tensor]:
    """(rows, example index within batch, token position) from one layer output."""
    n = out.shape[0]
    if reduce == "auto":
        reduce = "tokens" if out.ndim == 3 else "flatten"
    if out.ndim == 2 or reduce == "flatten":
        return out.reshape(n, -1), torch.arange(n), torch.zeros(n, dtype=torch.long)
    if out.ndim != 3:
        raise ConfigError(f"reduce={reduce!r} needs a (batch, seq, d) output, got {out.shape}")
    seq = out.shape[1]
    keep = torch.ones(n, seq, dtype=torch.bool) if mask is None else mask.bool().cpu()
    if reduce == "tokens":
        ex, pos = keep.nonzero(as_tuple=True)
        return out[ex.to(out.device), pos.to(out.device)], ex, pos
    if reduce == "mean":
        w = keep.to(out.device, out.dtype).unsqueeze(-1)
        rows = (out * w).sum(1) / w.sum(1).clamp_min(1)
        return rows, torch.arange(n), torch.zeros(n, dtype=torch.long)
    if reduce == "first":
        return out[:, 0], torch.arange(n), torch.zeros(n, dtype=torch.long)
    raise ConfigError(f"unknown reduce {reduce!r}: choose one of {', '.join(REDUCTIONS)}")


def _catching_hook(
    layer: str | nn.Module, caught: list[Tensor], pair: bool = False
) -> Callable[..., None]:
    """A forward hook that stores the layer's output (with ``pair``: its input and output,
    side by side on the last axis, for transcoders) in `caught` and raises `_Stop`, so the
    model's later layers never run (they would only cost time)."""

    def hook(_module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, tuple | list):  # transformer blocks return (hidden, ...)
            output = output[0]
        if not isinstance(output, Tensor):
            raise ConfigError(f"layer {layer!r} does not output a tensor ({type(output)})")
        if pair:
            if not args or not isinstance(args[0], Tensor):
                raise ConfigError(f"layer {layer!r} takes no tensor input to pair")
            output = torch.cat([args[0].reshape(*output.shape[:-1], -1), output], dim=-1)
        caught.append(output.detach())
        raise _Stop

    return hook


def _run_to_layer(
    model: nn.Module, batch: Any, device: torch.device, caught: list[Tensor]
) -> Tensor | None:
    """The hooked layer's output for one batch, or None when the forward never called it."""
    caught.clear()
    try:
        _call(model, batch, device)
    except _Stop:
        pass
    return caught[0] if caught else None


@dataclass
class _Collected:
    """Rows gathered batch by batch: kept in memory, or streamed to a `ShardWriter` with only
    their provenance kept here, so huge extractions never hold all activations at once."""

    out: Any
    xs: list[np.ndarray] = field(default_factory=list)
    sources: list[np.ndarray] = field(default_factory=list)
    positions: list[np.ndarray] = field(default_factory=list)
    n_rows: int = 0

    def add(self, rows: tuple[Tensor, Tensor, Tensor], seen: int) -> None:
        """One batch's (rows, example index within batch, position); `seen` is the number of
        examples in earlier batches, so `source` counts across batches."""
        x, ex, pos = rows
        rows_np = x.float().cpu().numpy()
        src = (ex + seen).numpy().astype(np.int64)
        pos_np = pos.numpy().astype(np.int64)
        if self.out is not None:
            self.out.append(rows_np, extra={"source": src, "position": pos_np})
        else:
            self.xs.append(rows_np)
        self.sources.append(src)
        self.positions.append(pos_np)
        self.n_rows += rows_np.shape[0]

    def finish(self) -> Activations:
        """The collected `Activations` (closing the shard writer, if any)."""
        if not self.sources:
            raise DataError("no inputs were given to extract activations from")
        folder = self.out.close() if self.out is not None else None
        return Activations(
            x=np.concatenate(self.xs) if self.xs else None,
            source=np.concatenate(self.sources),
            position=np.concatenate(self.positions),
            folder=folder,
        )


@torch.no_grad()
def extract_activations(
    model: nn.Module,
    layer: str | nn.Module,
    inputs: Any,
    *,
    out: Any = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    reduce: str = "auto",
    limit_rows: int | None = None,
    pair: bool = False,
) -> Activations:
    """Run ``model`` over ``inputs`` and collect ``layer``'s output rows.

    ``inputs``: a tensor/array (cut into ``batch_size`` batches), or any iterable of batches:
    tensors, ``(x, y)`` tuples (a DataLoader) or dicts of keyword arguments (tokenizer
    output; its ``attention_mask`` drops padding tokens, and its ``special_tokens_mask``, if
    asked for, drops [CLS]/[SEP]-like tokens). ``reduce``: ``auto`` (token rows
    for (batch, seq, d) outputs, else flattened rows), ``tokens``, ``mean`` (masked mean over
    the sequence), ``first`` (e.g. [CLS]), ``flatten``. ``out``: a `ShardWriter` to stream rows
    to disk (with ``source``/``position`` extra columns) instead of keeping them in memory.
    ``pair``: each row is the layer's input followed by its output, from one pass (the
    training data of a transcoder).
    """
    if reduce not in REDUCTIONS:
        raise ConfigError(f"unknown reduce {reduce!r}: choose one of {', '.join(REDUCTIONS)}")
    dev = torch.device(device)
    target = resolve_layer(model, layer)
    caught: list[Tensor] = []
    was_training = model.training
    model.eval()
    model.to(dev)
    handle = target.register_forward_hook(_catching_hook(layer, caught, pair))
    collected = _Collected(out)
    seen = 0
    try:
        for batch in _batches(inputs, batch_size):
            output = _run_to_layer(model, batch, dev, caught)
            n, mask = _batch_len_and_mask(batch)
            if output is None:
                raise ConfigError(f"layer {layer!r} was not called by the model's forward")
            collected.add(_rows(output, mask, reduce), seen)
            seen += n
            if limit_rows is not None and collected.n_rows >= limit_rows:
                break
    finally:
        handle.remove()
        model.train(was_training)
    return collected.finish()


def _batch_len_and_mask(batch: Any) -> tuple[int, Tensor | None]:
    """Rows to keep: the attention mask, minus special tokens if the tokenizer marked them."""
    if isinstance(batch, Mapping):
        first = next(v for v in batch.values() if isinstance(v, Tensor))
        mask = batch.get("attention_mask")
        special = batch.get("special_tokens_mask")
        if special is not None:
            mask = (torch.ones_like(special) if mask is None else mask).bool() & ~special.bool()
        return first.shape[0], mask
    if isinstance(batch, list | tuple):
        batch = batch[0]
    return len(batch), None
