"""EleutherAI sparsify folders (one per hookpoint): ``cfg.json`` + ``sae.safetensors``
(``encoder.weight (num_latents, d_in)``, ``encoder.bias``, ``W_dec (num_latents, d_in)``,
``b_dec (d_in,)``; ``skip_connection`` adds ``W_skip (d_in, d_in)``, applied as
``x @ W_skip.T``). sparsify encodes ``topk(relu(encoder(x - b_dec)))``, ``transcode`` drops
the ``- b_dec``: sparseae's TopK SAE, and with ``transcode`` or ``skip_connection`` its
`Transcoder` (sparsify's predicts an output as wide as its input, so only ``d_out == d_in``
transcoders export). Refused: the ``groupmax`` activation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sparseae.atomic import atomic_save_tensors, atomic_write_text, load_tensors
from sparseae.errors import CheckpointError
from sparseae.interop.common import (
    build_sae,
    build_transcoder,
    exportable,
    read_json,
    transcoder_exportable,
)
from sparseae.models.transcoder import Transcoder

CONFIG, WEIGHTS = "cfg.json", "sae.safetensors"


def is_folder(folder: Path) -> bool:
    return (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()


def load(folder: Path) -> Any:
    cfg = read_json(folder / CONFIG)
    if cfg.get("activation", "topk") != "topk":
        raise CheckpointError(
            f"{folder / CONFIG}: sparsify activation {cfg.get('activation')!r} is not supported "
            "(only topk)"
        )
    t = load_tensors(folder / WEIGHTS)
    params = {"k": int(cfg.get("k", 32))}
    try:
        if cfg.get("transcode") or cfg.get("skip_connection"):
            return _transcoder(cfg, t, params, folder)
        enc, bias, w_dec, b_dec = t["encoder.weight"], t["encoder.bias"], t["W_dec"], t["b_dec"]
    except KeyError as exc:
        raise CheckpointError(f"{folder / WEIGHTS} has no tensor {exc}") from None
    return build_sae("topk", params, enc.t(), bias, w_dec, b_dec, folder)


def _transcoder(
    cfg: dict[str, Any], t: dict[str, torch.Tensor], params: dict[str, Any], folder: Path
) -> Transcoder:
    """sparsify's transcoder, or its SAE with a skip connection, as a `Transcoder` with
    ``d_out == d_in``. A non-transcoding coder subtracts ``b_dec`` before encoding, which is
    ``b_enc - encoder.weight @ b_dec``; sparsify's ``W_skip`` is sparseae's transposed."""
    enc, bias = t["encoder.weight"], t["encoder.bias"]
    if not cfg.get("transcode"):
        bias = bias - enc @ t["b_dec"]
    tensors = {"W_enc": enc.t(), "b_enc": bias, "W_dec": t["W_dec"], "b_dec": t["b_dec"]}
    if cfg.get("skip_connection"):
        tensors["W_skip"] = t["W_skip"].t()
    return build_transcoder("topk", params, tensors, folder)


def save(model: Any, folder: Path) -> Path:
    transcoder = isinstance(model, Transcoder)
    if transcoder:
        sparsity, params = transcoder_exportable(model, "sparsify")
    else:
        sparsity, params = exportable(model, "sparsify", "TopK SAEs and transcoders")
    if sparsity != "topk" or not params["relu"]:
        raise CheckpointError("sparsify holds TopK codes (with ReLU): export a topk model")
    tensors = _transcoder_tensors(model) if transcoder else _sae_tensors(model)
    d, n = model.d_in, model.n_latents
    cfg = {
        "activation": "topk",
        "expansion_factor": max(1, n // d),
        "normalize_decoder": True,
        "num_latents": n,
        "k": model.sparsity.inference_k,
        "multi_topk": False,
        "skip_connection": "W_skip" in tensors,
        "transcode": transcoder,
        "d_in": d,
    }
    atomic_save_tensors(folder / WEIGHTS, tensors)
    atomic_write_text(folder / CONFIG, json.dumps(cfg, indent=2))
    return folder


def _sae_tensors(model: Any) -> dict[str, torch.Tensor]:
    return {
        "encoder.weight": model.W_enc.detach().t(),
        "encoder.bias": model.b_enc.detach(),
        "W_dec": model.W_dec.detach(),
        "b_dec": model.b_dec.detach(),
    }


def _transcoder_tensors(model: Transcoder) -> dict[str, torch.Tensor]:
    """sparsify sizes a transcoder's decoder and skip by ``d_in`` alone (one width for both
    sides), so a transcoder that changes the width has no sparsify layout."""
    c = model.config
    if c.d_out != c.d_in:
        raise CheckpointError(
            f"sparsify's transcoders predict an output as wide as the input (W_dec is "
            f"num_latents x d_in), this one maps {c.d_in} -> {c.d_out}: SAELens' layout allows it"
        )
    tensors = _sae_tensors(model)
    if model.W_skip is not None:
        tensors["W_skip"] = model.W_skip.detach().t()
    return tensors
