"""What the three readers and writers share: building an `SAE` from named tensors, and the
checks that a sparseae SAE can be written in a layout that has no input transform."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sparseae.errors import CheckpointError
from sparseae.models.sae import SAE, SAEConfig


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return data


def build_sae(
    sparsity: str,
    params: dict[str, Any],
    w_enc: Tensor,
    b_enc: Tensor,
    w_dec: Tensor,
    b_dec: Tensor,
    source: Path,
) -> SAE:
    """An SAE from (d_in, n) encoder, (n,) bias, (n, d_in) atoms and (d_in,) decoder bias."""
    d_in, n = w_enc.shape
    if w_dec.shape != (n, d_in) or b_enc.shape != (n,) or b_dec.shape != (d_in,):
        raise CheckpointError(f"{source}: tensor shapes do not form one dictionary")
    with torch.device("meta"):
        SAE(SAEConfig(d_in, n, sparsity, params))  # validates the settings, allocates nothing
    sae = SAE(SAEConfig(d_in, n, sparsity, params, code_activation="relu"))
    with torch.no_grad():
        sae.W_enc.copy_(w_enc.float())
        sae.b_enc.copy_(b_enc.float())
        sae.W_dec.copy_(w_dec.float())
        sae.b_dec.copy_(b_dec.float())
    bad = [t for t in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec) if not t.isfinite().all()]
    if bad:
        raise CheckpointError(f"{source}: the weights hold NaN or inf values")
    return sae


def exportable(model: Any, what: str) -> tuple[str, dict[str, Any]]:
    """(sparsity, params) of an SAE that a layout without input transform can hold."""
    if not isinstance(model, SAE):
        raise CheckpointError(f"{what} holds one-layer dictionaries: export an SAE")
    t = model.input_transform
    if t.active:
        raise CheckpointError(
            f"{what} has no input scaling: fold it first (SAE.fold_input_transform(), for a "
            "zero-shift scalar scale) or export a model trained on unscaled inputs"
        )
    if model.config.code_activation != "relu":
        raise CheckpointError(f"{what} SAEs use a relu code activation, this one has "
                              f"{model.config.code_activation!r}")  # fmt: skip
    return model.config.sparsity, dict(model.sparsity.params())


def log_threshold(theta: Tensor) -> Tensor:
    """JumpReLU's stored log-threshold from thresholds (0 stays a negligible positive)."""
    return theta.float().clamp_min(math.ldexp(1.0, -126)).log()
