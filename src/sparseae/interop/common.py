"""What the three readers and writers share: building an `SAE` or a `Transcoder` from named
tensors, and the checks that a sparseae model can be written in a layout that has no input
transform."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sparseae.errors import CheckpointError
from sparseae.models.sae import SAE, SAEConfig
from sparseae.models.transcoder import Transcoder, TranscoderConfig


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


def exportable(model: Any, what: str, holds: str = "dictionary SAEs") -> tuple[str, dict[str, Any]]:
    """(sparsity, params) of an SAE that a layout without input transform can hold; any other
    model is refused naming what the layout does hold."""
    if not isinstance(model, SAE):
        kind = getattr(model, "checkpoint_kind", "") or type(model).__name__
        raise CheckpointError(f"{what} has no layout for a {kind} model: it holds {holds}")
    return _plain(model, what)


def transcoder_exportable(model: Transcoder, what: str) -> tuple[str, dict[str, Any]]:
    """(sparsity, params) of a transcoder; the same refusals as an SAE's."""
    return _plain(model, what)


def _plain(model: Any, what: str) -> tuple[str, dict[str, Any]]:
    """The peers' layouts take raw inputs and a ReLU code: a fitted scaling or another code
    activation would be silently lost, so they are refused with the fix."""
    refuse_input_transform(model, what)
    if model.config.code_activation != "relu":
        raise CheckpointError(f"{what} SAEs use a relu code activation, this one has "
                              f"{model.config.code_activation!r}")  # fmt: skip
    return model.config.sparsity, dict(model.sparsity.params())


def refuse_input_transform(model: Any, what: str) -> None:
    """No peer layout has sparseae's per-feature input transform: weights that expect scaled
    inputs would be read as raw-input weights, so an active transform is refused."""
    if not model.input_transform.active:
        return
    fold = (
        "fold it first (SAE.fold_input_transform(), for a zero-shift scalar scale) or "
        if hasattr(model, "fold_input_transform")
        else ""
    )
    raise CheckpointError(
        f"{what} has no input scaling: {fold}export a model trained on unscaled inputs"
    )


def build_transcoder(
    sparsity: str, params: dict[str, Any], tensors: dict[str, Tensor], source: Path
) -> Transcoder:
    """A Transcoder from sparseae-layout tensors: ``W_enc (d_in, n)``, ``b_enc (n,)``,
    ``W_dec (n, d_out)``, ``b_dec (d_out,)`` and, with a skip connection, ``W_skip
    (d_in, d_out)``; the shapes are checked before anything is allocated."""
    d_in, n = tensors["W_enc"].shape
    d_out = tensors["W_dec"].shape[-1]
    shapes = {"W_enc": (d_in, n), "b_enc": (n,), "W_dec": (n, d_out), "b_dec": (d_out,),
              "W_skip": (d_in, d_out)}  # fmt: skip
    if any(tuple(v.shape) != shapes[k] for k, v in tensors.items()):
        raise CheckpointError(f"{source}: tensor shapes do not form one transcoder")
    config = TranscoderConfig(d_in, d_out, n, sparsity, params, "relu", "W_skip" in tensors)
    with torch.device("meta"):
        Transcoder(config)  # validates the settings, allocates nothing
    model = Transcoder(config)
    copy_weights(model, tensors, source)
    return model


def copy_weights(model: Any, tensors: dict[str, Tensor], source: Path) -> None:
    """Copy named tensors into the model's parameters (as float32), refusing NaN or inf: a
    corrupt file is named here rather than surfacing as NaN outputs later."""
    with torch.no_grad():
        for name, value in tensors.items():
            getattr(model, name).copy_(value.float())
    if not all(getattr(model, name).isfinite().all() for name in tensors):
        raise CheckpointError(f"{source}: the weights hold NaN or inf values")


def log_threshold(theta: Tensor) -> Tensor:
    """JumpReLU's stored log-threshold from thresholds (0 stays a negligible positive)."""
    return theta.float().clamp_min(math.ldexp(1.0, -126)).log()
