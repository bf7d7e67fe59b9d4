"""EleutherAI sparsify folders (one per hookpoint): ``cfg.json`` + ``sae.safetensors``
(``encoder.weight (num_latents, d_in)``, ``encoder.bias``, ``W_dec (num_latents, d_in)``,
``b_dec``). sparsify encodes ``topk(relu(encoder(x - b_dec)))``: sparseae's TopK SAE.
Refused: the ``groupmax`` activation, skip connections and transcoders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sparseae.atomic import atomic_save_tensors, atomic_write_text, load_tensors
from sparseae.errors import CheckpointError
from sparseae.interop.common import build_sae, exportable, read_json

CONFIG, WEIGHTS = "cfg.json", "sae.safetensors"


def is_folder(folder: Path) -> bool:
    return (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()


def load(folder: Path) -> Any:
    cfg = read_json(folder / CONFIG)
    for flag, why in (("skip_connection", "a skip connection"), ("transcode", "a transcoder")):
        if cfg.get(flag):
            raise CheckpointError(
                f"{folder / CONFIG}: {why} is not representable by the one-layer dictionary SAE"
            )
    if cfg.get("activation", "topk") != "topk":
        raise CheckpointError(
            f"{folder / CONFIG}: sparsify activation {cfg.get('activation')!r} is not supported "
            "(only topk)"
        )
    t = load_tensors(folder / WEIGHTS)
    try:
        enc, bias, w_dec, b_dec = t["encoder.weight"], t["encoder.bias"], t["W_dec"], t["b_dec"]
    except KeyError as exc:
        raise CheckpointError(f"{folder / WEIGHTS} has no tensor {exc}") from None
    params = {"k": int(cfg.get("k", 32))}
    return build_sae("topk", params, enc.t(), bias, w_dec, b_dec, folder)


def save(model: Any, folder: Path) -> Path:
    sparsity, params = exportable(model, "sparsify")
    if sparsity != "topk" or not params["relu"]:
        raise CheckpointError("sparsify holds TopK SAEs (with ReLU): export a topk SAE")
    d, n = model.d_in, model.n_latents
    tensors = {
        "encoder.weight": model.W_enc.detach().t(),
        "encoder.bias": model.b_enc.detach(),
        "W_dec": model.W_dec.detach(),
        "b_dec": model.b_dec.detach(),
    }
    cfg = {
        "activation": "topk",
        "expansion_factor": max(1, n // d),
        "normalize_decoder": True,
        "num_latents": n,
        "k": model.sparsity.inference_k,
        "multi_topk": False,
        "skip_connection": False,
        "transcode": False,
        "d_in": d,
    }
    atomic_save_tensors(folder / WEIGHTS, tensors)
    atomic_write_text(folder / CONFIG, json.dumps(cfg, indent=2))
    return folder
