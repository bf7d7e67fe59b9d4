"""SAELens folders: ``cfg.json`` + ``sae_weights.safetensors`` (``W_enc (d_in, d_sae)``,
``b_enc``, ``W_dec (d_sae, d_in)``, ``b_dec``; JumpReLU adds ``threshold``, gated SAEs
``b_gate``, ``b_mag``, ``r_mag``).

Mapped both ways: architectures ``standard`` (ReLU; its L1 was a training term), ``topk``,
``jumprelu`` and ``gated`` (`GatedSAE`), and the transcoders ``transcoder``,
``skip_transcoder``, ``jumprelu_transcoder`` and ``jumprelu_skip_transcoder`` (`Transcoder`;
``W_dec (d_sae, d_out)``, ``b_dec (d_out,)``, ``W_skip (d_out, d_in)`` applied as
``x @ W_skip.T``; SAELens' transcoders never subtract ``b_dec`` from the input). A BatchTopK
model (also a Matryoshka SAE) exports as JumpReLU with its inference threshold, as SAELens'
own BatchTopK and Matryoshka trainers save. On load ``apply_b_dec_to_input=False`` is folded
into the encoder biases; the norm-scaling mode ``expected_average_only_in`` needs no work at
inference (SAELens folds its factor into the weights when saving). A TopK SAE trained with
``rescale_acts_by_decoder_norm`` (decoder rows not unit norm, as training folders hold them)
is folded into plain weights. Refused with the reason: per-sample normalisations
(``constant_norm_rescale``, ``layer_norm``, whitening), ``hook_z`` reshaping, and on export
TopK transcoders (SAELens has none)."""

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
    copy_weights,
    exportable,
    log_threshold,
    read_json,
    refuse_input_transform,
    transcoder_exportable,
)
from sparseae.models.gated import GatedConfig, GatedSAE
from sparseae.models.transcoder import Transcoder

CONFIG, WEIGHTS = "cfg.json", "sae_weights.safetensors"
ARCHITECTURES = {"standard": "none", "topk": "topk", "jumprelu": "jumprelu", "gated": "gated"}
# architecture -> (sparseae sparsity, skip connection)
TRANSCODERS = {
    "transcoder": ("none", False),
    "skip_transcoder": ("none", True),
    "jumprelu_transcoder": ("jumprelu", False),
    "jumprelu_skip_transcoder": ("jumprelu", True),
}


def is_folder(folder: Path) -> bool:
    return (folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()


def load(folder: Path) -> Any:
    cfg = read_json(folder / CONFIG)
    _refuse_unsupported(cfg, folder)
    t = load_tensors(folder / WEIGHTS)
    if cfg.get("architecture") == "gated":
        return _gated(t, cfg, folder)
    if cfg.get("architecture") in TRANSCODERS:
        return _transcoder(t, cfg, folder)
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
    tensors = {"W_enc": w_enc, "W_dec": w_dec, "b_dec": b_dec, "b_gate": b_gate,
               "b_mag": b_mag, "r_mag": r_mag}  # fmt: skip
    if any(tuple(v.shape) != tuple(getattr(model, k).shape) for k, v in tensors.items()):
        raise CheckpointError(f"{folder}: tensor shapes do not form one gated SAE")
    copy_weights(model, tensors, folder)
    return model


def _transcoder(t: dict[str, torch.Tensor], cfg: dict[str, Any], folder: Path) -> Transcoder:
    """SAELens' transcoders as a `Transcoder`: the same encoder and decoder, ``W_skip``
    transposed. ``apply_b_dec_to_input`` is not read: SAELens' transcoder never subtracts
    ``b_dec`` (its width is ``d_out``), whatever the flag says."""
    sparsity, skip = TRANSCODERS[cfg["architecture"]]
    try:
        tensors = {k: t[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
        if skip:
            tensors["W_skip"] = t["W_skip"].t()
        threshold = t["threshold"] if sparsity == "jumprelu" else None
    except KeyError as exc:
        raise CheckpointError(f"{folder / WEIGHTS} has no tensor {exc}") from None
    model = build_transcoder(sparsity, {}, tensors, folder)
    if threshold is not None:
        with torch.no_grad():
            model.sparsity.log_threshold.copy_(log_threshold(threshold))
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
    if arch not in ARCHITECTURES and arch not in TRANSCODERS:
        raise CheckpointError(
            f"{folder / CONFIG}: SAELens architecture {arch!r} is not representable in "
            f"sparseae (mapped: {', '.join([*ARCHITECTURES, *TRANSCODERS])})"
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
    if isinstance(model, Transcoder):
        cfg, tensors = _transcoder_export(model)
    elif isinstance(model, GatedSAE):
        cfg, tensors = _gated_export(model)
    else:
        cfg, tensors = _sae_export(model)
    atomic_save_tensors(folder / WEIGHTS, tensors)
    atomic_write_text(folder / CONFIG, json.dumps(cfg, indent=2))
    return folder


def _base_cfg(d_in: int, d_sae: int, apply_b_dec_to_input: bool) -> dict[str, Any]:
    return {
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {"model_name": "sparseae"},
    }


def _weights(model: Any, *names: str) -> dict[str, torch.Tensor]:
    return {name: getattr(model, name).detach() for name in names}


def _sae_export(model: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    sparsity, params = exportable(model, "SAELens", "SAEs, gated SAEs and transcoders")
    tensors = _weights(model, "W_enc", "b_enc", "W_dec", "b_dec")
    cfg = _base_cfg(model.d_in, model.n_latents, True)
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
    return cfg, tensors


def _gated_export(model: GatedSAE) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """SAELens' gated SAE holds sparseae's gated tensors under the same names."""
    refuse_input_transform(model, "SAELens")
    cfg = {**_base_cfg(model.d_in, model.n_latents, True), "architecture": "gated"}
    return cfg, _weights(model, "W_enc", "W_dec", "b_dec", "b_gate", "b_mag", "r_mag")


def _transcoder_export(model: Transcoder) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """SAELens' transcoders are ReLU or JumpReLU (a BatchTopK code goes as JumpReLU with its
    inference threshold); it has no TopK transcoder, so that is refused."""
    sparsity, _ = transcoder_exportable(model, "SAELens")
    if sparsity in ("none", "l1"):
        arch = "transcoder"
    elif sparsity in ("jumprelu", "batchtopk"):
        arch = "jumprelu_transcoder"
    else:
        raise CheckpointError(
            f"SAELens has no {sparsity!r} transcoder (it has ReLU and JumpReLU ones): export "
            "a jumprelu, batchtopk or none/l1 transcoder"
        )
    tensors = _weights(model, "W_enc", "b_enc", "W_dec", "b_dec")
    if model.W_skip is not None:
        arch = arch.replace("transcoder", "skip_transcoder")
        tensors["W_skip"] = model.W_skip.detach().t()
    if arch.startswith("jumprelu"):
        tensors["threshold"] = _thresholds(model)
    cfg = {**_base_cfg(model.d_in, model.n_latents, False), "architecture": arch}
    cfg["d_out"] = model.config.d_out
    return cfg, tensors


def _thresholds(model: Any) -> torch.Tensor:
    """Per-latent thresholds: JumpReLU's own, or BatchTopK's single inference threshold."""
    s = model.sparsity
    if s.name == "jumprelu":
        return s.theta.detach()
    theta = float(s.threshold)
    if theta < 0:
        raise CheckpointError("this BatchTopK SAE has no inference threshold yet: train it first")
    return torch.full((model.n_latents,), theta)
