"""SAELens folders: ``cfg.json`` + ``sae_weights.safetensors`` (``W_enc (d_in, d_sae)``,
``b_enc``, ``W_dec (d_sae, d_in)``, ``b_dec``; JumpReLU adds ``threshold``, gated SAEs
``b_gate``, ``b_mag``, ``r_mag``).

Mapped: architectures ``standard`` (ReLU; its L1 was a training term), ``topk``,
``jumprelu`` and ``gated`` (to `GatedSAE`); ``apply_b_dec_to_input=False`` is folded into the
encoder biases; the norm-scaling mode ``expected_average_only_in`` needs no work at
inference (SAELens folds its factor into the weights when saving). A TopK SAE trained with
``rescale_acts_by_decoder_norm`` (decoder rows not unit norm, as training folders hold them)
is folded into plain weights. Refused with the reason: transcoders (another target),
per-sample normalisations (``constant_norm_rescale``, ``layer_norm``, whitening) and
``hook_z`` reshaping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sparseae.atomic import atomic_save_tensors, atomic_write_text, load_tensors
from sparseae.errors import CheckpointError
from sparseae.interop.common import build_sae, exportable, log_threshold, read_json

CONFIG, WEIGHTS = "cfg.json", "sae_weights.safetensors"
ARCHITECTURES = {"standard": "none", "topk": "topk", "jumprelu": "jumprelu", "gated": "gated"}


def is_folder(folder: Path) -> bool:
    return (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()


def load(folder: Path) -> Any:
    cfg = read_json(folder / CONFIG)
    _refuse_unsupported(cfg, folder)
    t = load_tensors(folder / WEIGHTS)
    if cfg.get("architecture") == "gated":
        return _gated(t, cfg, folder)
    try:
        w_enc, b_enc, w_dec, b_dec = t["W_enc"], t["b_enc"], t["W_dec"], t["b_dec"]
    except KeyError as exc:
        raise CheckpointError(f"{folder / WEIGHTS} has no tensor {exc}") from None
    arch = cfg.get("architecture", "standard")
    if cfg.get("apply_b_dec_to_input", True) is False:
        b_enc = b_enc + b_dec @ w_enc  # sparseae always subtracts b_dec before encoding
    if cfg.get("rescale_acts_by_decoder_norm"):
        w_enc, b_enc, w_dec = _fold_decoder_norm(w_enc, b_enc, w_dec, arch, folder)
    sparsity = ARCHITECTURES[arch]
    params = {"k": int(cfg["k"])} if arch == "topk" else {}
    sae = build_sae(sparsity, params, w_enc, b_enc, w_dec, b_dec, folder)
    if arch == "jumprelu":
        if "threshold" not in t:
            raise CheckpointError(f"{folder / WEIGHTS}: a jumprelu SAE needs its 'threshold'")
        with torch.no_grad():
            sae.sparsity.log_threshold.copy_(log_threshold(t["threshold"]))
    return sae


def _gated(t: dict[str, torch.Tensor], cfg: dict[str, Any], folder: Path) -> Any:
    """SAELens' gated SAE is sparseae's `GatedSAE` tensor for tensor (b_dec folded into the
    biases where SAELens does not subtract it from the input)."""
    from sparseae.models.gated import GatedConfig, GatedSAE

    try:
        w_enc, w_dec, b_dec = t["W_enc"], t["W_dec"], t["b_dec"]
        b_gate, b_mag, r_mag = t["b_gate"], t["b_mag"], t["r_mag"]
    except KeyError as exc:
        raise CheckpointError(f"{folder / WEIGHTS} has no tensor {exc}") from None
    if cfg.get("apply_b_dec_to_input", True) is False:
        b_gate = b_gate + b_dec @ w_enc
        b_mag = b_mag + b_dec @ (w_enc * r_mag.exp())
    d, n = w_enc.shape
    model = GatedSAE(GatedConfig(d_in=d, n_latents=n))
    with torch.no_grad():
        for name, value in (("W_enc", w_enc), ("W_dec", w_dec), ("b_dec", b_dec),
                            ("b_gate", b_gate), ("b_mag", b_mag), ("r_mag", r_mag)):  # fmt: skip
            getattr(model, name).copy_(value.float())
    return model


def _fold_decoder_norm(w_enc: Any, b_enc: Any, w_dec: Any, arch: str, folder: Path) -> tuple:
    """SAELens' TopK with ``rescale_acts_by_decoder_norm`` selects on ``pre * ||d_j||`` and
    decodes with unit atoms: exactly a plain TopK SAE whose encoder rows are scaled by the
    norms and whose atoms are divided by them."""
    if arch != "topk":
        raise CheckpointError(
            f"{folder / CONFIG}: rescale_acts_by_decoder_norm is mapped for topk SAEs only"
        )
    norms = w_dec.norm(dim=1).clamp_min(1e-12)
    return w_enc * norms, b_enc * norms, w_dec / norms[:, None]


def _refuse_unsupported(cfg: dict[str, Any], folder: Path) -> None:
    arch = cfg.get("architecture", "standard")
    if arch not in ARCHITECTURES:
        raise CheckpointError(
            f"{folder / CONFIG}: SAELens architecture {arch!r} is not representable by the "
            "one-layer dictionary SAE (mapped: standard, topk, jumprelu)"
        )
    norm = cfg.get("normalize_activations", "none")
    if norm not in ("none", "expected_average_only_in"):
        raise CheckpointError(
            f"{folder / CONFIG}: normalize_activations={norm!r} rescales each input by its own "
            "statistics, which a per-feature input transform cannot express"
        )
    if cfg.get("reshape_activations", "none") != "none":
        raise CheckpointError(f"{folder / CONFIG}: hook_z reshaping is not supported")


def save(model: Any, folder: Path) -> Path:
    sparsity, params = exportable(model, "SAELens")
    tensors = {
        "W_enc": model.W_enc.detach(),
        "b_enc": model.b_enc.detach(),
        "W_dec": model.W_dec.detach(),
        "b_dec": model.b_dec.detach(),
    }
    cfg: dict[str, Any] = {
        "d_in": model.d_in,
        "d_sae": model.n_latents,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {"model_name": "sparseae"},
    }
    if sparsity in ("none", "l1"):
        cfg["architecture"] = "standard"
    elif sparsity == "topk":
        if not params["relu"]:
            raise CheckpointError("SAELens' TopK applies ReLU: export a topk SAE with relu=True")
        cfg.update(architecture="topk", k=model.sparsity.inference_k)
        cfg["rescale_acts_by_decoder_norm"] = False
    elif sparsity in ("jumprelu", "batchtopk"):
        cfg["architecture"] = "jumprelu"
        tensors["threshold"] = _thresholds(model)
    else:
        raise CheckpointError(f"SAELens has no {sparsity!r} SAE at inference")
    atomic_save_tensors(folder / WEIGHTS, tensors)
    atomic_write_text(folder / CONFIG, json.dumps(cfg, indent=2))
    return folder


def _thresholds(model: Any) -> torch.Tensor:
    """Per-latent thresholds: JumpReLU's own, or BatchTopK's single inference threshold."""
    s = model.sparsity
    if s.name == "jumprelu":
        return s.theta.detach()
    theta = float(s.threshold)
    if theta < 0:
        raise CheckpointError("this BatchTopK SAE has no inference threshold yet: train it first")
    return torch.full((model.n_latents,), theta)
