"""Evaluating a dictionary the way the field does: reconstruction and sparsity statistics over
a stated number of rows, and the downstream loss with the SAE spliced into the network.

`evaluate_dictionary` streams any activation data (an array, a tensor, a shard folder)
through a model's ``encode`` and ``forward`` (raw units: the model's own input scaling is
applied) and reports, over the rows it saw:

- ``fvu``: fraction of variance unexplained, ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``;
  ``explained_variance = 1 - fvu``;
- ``normalized_mse``: ``sum ||x - x_hat||^2 / sum ||x||^2`` (the normaliser is the inputs'
  squared norm, as SAELens' "normalised MSE"; FVU's is their variance);
- ``cosine``: mean cosine similarity between each row and its reconstruction;
- ``l0``, ``dead_latents`` (never fired in those rows), ``dense_latents`` (firing on more than
  10% of rows) and the per-latent firing frequency (for the log10 density histogram).

`splice_eval` runs a network with a layer's output replaced by the SAE's reconstruction
(``spliced``), by zeros (``zero``) or by the mean output (``mean``), next to the untouched run
(``clean``), and reports the downstream loss of each and the fraction of loss recovered,
``(L_ablated - L_spliced) / (L_ablated - L_clean)``, against both ablations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sparseae.data.activations import extract_activations, resolve_layer
from sparseae.data.shards import ShardDataset, row_batches
from sparseae.data.tensors import as_tensor
from sparseae.devices import model_device

DENSE = 0.1  # a latent firing on more than this fraction of rows is dense


@torch.no_grad()
def evaluate_dictionary(
    model: nn.Module, x: Any, *, batch_size: int = 4096, max_rows: int | None = None
) -> dict[str, Any]:
    """The statistics above over (the first ``max_rows`` of) ``x``; ``firing`` is a NumPy
    array of per-latent firing frequencies."""
    dev = model_device(model)
    was = model.training
    model.eval()
    n, sse, sumsq, cos = 0, 0.0, 0.0, 0.0
    total: Tensor | None = None
    fired = torch.zeros(model.n_latents, dtype=torch.float64)
    l0 = 0.0
    try:
        rows = x if isinstance(x, ShardDataset) else as_tensor(x, "activations")
        for xb in row_batches(rows, batch_size, max_rows):
            xb = torch.as_tensor(xb).to(dev).float()
            h = model.encode(xb)
            x_hat = model(xb)
            n += xb.shape[0]
            sse += float((xb - x_hat).double().pow(2).sum())
            sumsq += float(xb.double().pow(2).sum())
            total = xb.double().sum(0) if total is None else total + xb.double().sum(0)
            cos += float(nn.functional.cosine_similarity(xb, x_hat, dim=1).double().sum())
            active = h != 0
            fired += active.sum(0).double().cpu()
            l0 += float(active.sum())
    finally:
        model.train(was)
    assert total is not None, "no rows to evaluate"
    sst = sumsq - float(total.pow(2).sum()) / n
    freq = (fired / n).numpy()
    return {
        "rows": n,
        "fvu": sse / max(sst, 1e-30),
        "explained_variance": 1.0 - sse / max(sst, 1e-30),
        "normalized_mse": sse / max(sumsq, 1e-30),
        "mse": sse / (n * int(total.numel())),
        "cosine": cos / n,
        "l0": l0 / n,
        "dead_latents": int((freq == 0).sum()),
        "dense_latents": int((freq > DENSE).sum()),
        "firing": freq,
    }


# -- downstream loss with the SAE spliced in -----------------------------------------------------
def _forward(net: nn.Module, batch: Any, device: torch.device) -> Any:
    if isinstance(batch, dict):
        kwargs = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
        kwargs.pop("special_tokens_mask", None)
        return net(**kwargs)
    if isinstance(batch, list | tuple):
        batch = batch[0]
    return net(torch.as_tensor(batch).to(device))


def _replacing(fn: Callable[[Tensor], Tensor]) -> Callable[..., Any]:
    """A forward hook that replaces the layer's output (the first item of a tuple)."""

    def hook(_module: nn.Module, _args: Any, output: Any) -> Any:
        if isinstance(output, tuple | list):
            return (fn(output[0]), *output[1:])
        return fn(output)

    return hook


def through_sae(sae: nn.Module) -> Callable[[Tensor], Tensor]:
    """The SAE's reconstruction of a layer output of any shape (..., d_in)."""

    def apply(out: Tensor) -> Tensor:
        flat = out.reshape(-1, out.shape[-1])
        return sae(flat.to(model_device(sae))).to(out.dtype).to(out.device).reshape(out.shape)

    return apply


@torch.no_grad()
def splice_eval(
    net: nn.Module,
    layer: str,
    batches: Iterable[Any],
    sae: nn.Module,
    loss_fn: Callable[[Any, Any, Any], float],
) -> dict[str, float]:
    """Mean of ``loss_fn(output, batch, clean_output)`` over ``batches`` (lower is better)
    for the clean, spliced, zero-ablated and mean-ablated network, and the fractions of
    loss recovered. Token outputs (batch, seq, d) are reconstructed at every position; the
    mean used for mean ablation is over real tokens, as extraction defines them."""
    batches = list(batches)
    module = resolve_layer(net, layer)
    dev = model_device(net)
    net.eval()
    mean = torch.as_tensor(extract_activations(net, layer, batches).x).mean(0).to(dev)
    clean = [_forward(net, b, dev) for b in batches]
    variants: dict[str, Callable[[Tensor], Tensor]] = {
        "spliced": through_sae(sae),
        "zero": torch.zeros_like,
        "mean": lambda out: mean.to(out.dtype).expand_as(out),
    }
    losses = {
        "clean": float(np.mean([loss_fn(c, b, c) for c, b in zip(clean, batches, strict=True)]))
    }
    for name, fn in variants.items():
        handle = module.register_forward_hook(_replacing(fn))
        try:
            values = [
                loss_fn(_forward(net, b, dev), b, c) for c, b in zip(clean, batches, strict=True)
            ]
        finally:
            handle.remove()
        losses[name] = float(np.mean(values))
    for ablation in ("zero", "mean"):
        gap = losses[ablation] - losses["clean"]
        losses[f"recovered_vs_{ablation}"] = (
            (losses[ablation] - losses["spliced"]) / gap if abs(gap) > 1e-12 else float("nan")
        )
    return losses


def cross_entropy(output: Tensor, batch: Any, clean: Any) -> float:
    """A classifier's loss, for batches of (inputs, labels)."""
    labels = torch.as_tensor(batch[1]).long().to(output.device)
    return float(nn.functional.cross_entropy(output, labels))


def accuracy_error(output: Tensor, batch: Any, clean: Any) -> float:
    """1 - accuracy (a loss: lower is better), for batches of (inputs, labels)."""
    labels = torch.as_tensor(batch[1]).long().to(output.device)
    return 1.0 - float((output.argmax(-1) == labels).float().mean())
