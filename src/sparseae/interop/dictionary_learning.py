"""dictionary_learning folders: ``ae.pt`` (a ``torch.save``d state dict) + ``config.json``
whose ``trainer`` block names ``dict_class``, ``activation_dim``, ``dict_size``, ``k``.

``ae.pt`` is a pickle container: it is read only with ``torch.load(weights_only=True)``,
which restores tensors and refuses any other object, so a hostile file cannot run code.
Mapped: ``AutoEncoder`` (ReLU), ``AutoEncoderTopK``, ``BatchTopKSAE`` (its inference
threshold), ``JumpReluAutoEncoder`` (load only), ``GatedAutoEncoder`` (`GatedSAE`) and
``MatryoshkaBatchTopKSAE`` (`MatryoshkaSAE`, its group sizes as nested widths); all but
JumpReLU both ways. A Matryoshka SAE with another code than BatchTopK exports as the plain
dictionary of its code (its widths only shape training). Transcoders have no class here
(dictionary_learning trains ordinary dictionaries on (input, output) pairs), so they are
refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sparseae.atomic import atomic_write_bytes, atomic_write_text
from sparseae.errors import CheckpointError
from sparseae.interop.common import (
    build_sae,
    exportable,
    log_threshold,
    read_json,
    refuse_input_transform,
)
from sparseae.models.gated import GatedConfig, GatedSAE
from sparseae.models.matryoshka import MatryoshkaConfig, MatryoshkaSAE
from sparseae.models.transcoder import Transcoder

CONFIG, WEIGHTS = "config.json", "ae.pt"


def is_folder(folder: Path) -> bool:
    if not ((folder / CONFIG).is_file() and (folder / WEIGHTS).is_file()):
        return False
    try:
        return "trainer" in read_json(folder / CONFIG)
    except CheckpointError:
        return False


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any refusal of the unpickler is the same answer
        raise CheckpointError(
            f"{path} is not a tensors-only state dict ({type(exc).__name__}): it was not "
            "loaded, since a pickle that holds other objects could run code"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return state


def load(folder: Path) -> Any:
    trainer = read_json(folder / CONFIG).get("trainer", {})
    cls = trainer.get("dict_class")
    s = _read_state(folder / WEIGHTS)
    try:
        return _build(cls, s, trainer, folder)
    except KeyError as exc:
        raise CheckpointError(f"{folder / WEIGHTS}: {cls} state has no tensor {exc}") from None


def _build(cls: Any, s: dict[str, torch.Tensor], trainer: dict[str, Any], folder: Path) -> Any:
    if cls == "AutoEncoder":
        w_dec = s["decoder.weight"].t()
        return build_sae("none", {}, s["encoder.weight"].t(), s["encoder.bias"], w_dec,
                         s["bias"], folder)  # fmt: skip
    if cls in ("AutoEncoderTopK", "BatchTopKSAE"):
        k = int(s["k"]) if "k" in s else int(trainer["k"])
        sparsity = "topk" if cls == "AutoEncoderTopK" else "batchtopk"
        sae = build_sae(sparsity, {"k": k}, s["encoder.weight"].t(), s["encoder.bias"],
                        s["decoder.weight"].t(), s["b_dec"], folder)  # fmt: skip
        if sparsity == "batchtopk":
            with torch.no_grad():
                sae.sparsity.threshold.copy_(s["threshold"].float().reshape(()))
        return sae
    if cls == "JumpReluAutoEncoder":
        b_enc = s["b_enc"]
        if not trainer.get("apply_b_dec_to_input", False):
            b_enc = b_enc + s["b_dec"] @ s["W_enc"]
        sae = build_sae("jumprelu", {}, s["W_enc"], b_enc, s["W_dec"], s["b_dec"], folder)
        with torch.no_grad():
            sae.sparsity.log_threshold.copy_(log_threshold(s["threshold"]))
        return sae
    if cls == "GatedAutoEncoder":
        return _gated(s, folder)
    if cls == "MatryoshkaBatchTopKSAE":
        return _matryoshka(s, trainer, folder)
    raise CheckpointError(
        f"{folder / CONFIG}: dictionary_learning class {cls!r} is not representable (mapped: "
        "AutoEncoder, AutoEncoderTopK, BatchTopKSAE, JumpReluAutoEncoder, GatedAutoEncoder, "
        "MatryoshkaBatchTopKSAE)"
    )


def _gated(s: dict[str, torch.Tensor], folder: Path) -> Any:
    n, d = s["encoder.weight"].shape
    model = GatedSAE(GatedConfig(d_in=d, n_latents=n))
    with torch.no_grad():
        model.W_enc.copy_(s["encoder.weight"].t())
        model.W_dec.copy_(s["decoder.weight"].t())
        model.b_dec.copy_(s["decoder_bias"])
        model.b_gate.copy_(s["gate_bias"])
        model.b_mag.copy_(s["mag_bias"])
        model.r_mag.copy_(s["r_mag"])
    return model


def _matryoshka(s: dict[str, torch.Tensor], trainer: dict[str, Any], folder: Path) -> Any:
    d, n = s["W_enc"].shape
    widths = tuple(int(w) for w in torch.cumsum(s["group_sizes"], 0)[:-1])
    k = int(s["k"]) if "k" in s else int(trainer["k"])
    config = MatryoshkaConfig(d_in=d, n_latents=n, sparsity_params={"k": k}, widths=widths)
    model = MatryoshkaSAE(config)
    with torch.no_grad():
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            getattr(model, name).copy_(s[name])
        model.sparsity.threshold.copy_(s["threshold"].float().reshape(()))
    return model


def save(model: Any, folder: Path) -> Path:
    if isinstance(model, Transcoder):
        raise CheckpointError(
            "dictionary_learning has no transcoder class (it trains ordinary dictionaries on "
            "(input, output) pairs): export the transcoder to SAELens or sparsify"
        )
    if isinstance(model, GatedSAE):
        cls, state = "GatedAutoEncoder", _gated_state(model)
    elif isinstance(model, MatryoshkaSAE) and model.config.sparsity == "batchtopk":
        cls, state = "MatryoshkaBatchTopKSAE", _matryoshka_state(model)
    else:
        cls, state = _sae_state(model)
    trainer: dict[str, Any] = {"dict_class": cls, "activation_dim": model.d_in,
                               "dict_size": model.n_latents}  # fmt: skip
    if "k" in state:
        trainer["k"] = int(state["k"])
    if "group_sizes" in state:
        trainer["group_sizes"] = [int(g) for g in state["group_sizes"]]
    import io

    buffer = io.BytesIO()
    torch.save({k: v.contiguous().cpu() for k, v in state.items()}, buffer)  # their format
    atomic_write_bytes(folder / WEIGHTS, buffer.getvalue())
    atomic_write_text(folder / CONFIG, json.dumps({"trainer": trainer}, indent=2))
    return folder


def _sae_state(model: Any) -> tuple[str, dict[str, torch.Tensor]]:
    sparsity, params = exportable(model, "dictionary_learning",
                                  "dictionary, gated and Matryoshka SAEs")  # fmt: skip
    enc, dec = model.W_enc.detach().t().contiguous(), model.W_dec.detach().t().contiguous()
    if sparsity in ("none", "l1"):
        state = {"bias": model.b_dec.detach(), "encoder.weight": enc,
                 "encoder.bias": model.b_enc.detach(), "decoder.weight": dec}  # fmt: skip
        return "AutoEncoder", state
    if sparsity not in ("topk", "batchtopk"):
        raise CheckpointError(f"export of a {sparsity!r} SAE to dictionary_learning is not mapped")
    if sparsity == "topk" and not params["relu"]:
        raise CheckpointError("dictionary_learning's TopK applies ReLU: export relu=True")
    cls = "AutoEncoderTopK" if sparsity == "topk" else "BatchTopKSAE"
    k = model.sparsity.inference_k if sparsity == "topk" else model.sparsity.k
    threshold = -1.0 if sparsity == "topk" else _threshold(model)
    return cls, {
        "encoder.weight": enc,
        "encoder.bias": model.b_enc.detach(),
        "decoder.weight": dec,
        "b_dec": model.b_dec.detach(),
        "k": torch.tensor(k, dtype=torch.int),
        "threshold": torch.tensor(threshold),
    }


def _threshold(model: Any) -> float:
    """BatchTopK's inference threshold: without one (never trained) dictionary_learning
    would keep every positive activation where sparseae keeps each batch's top k."""
    theta = float(model.sparsity.threshold)
    if theta < 0:
        raise CheckpointError("this BatchTopK SAE has no inference threshold yet: train it first")
    return theta


def _gated_state(model: GatedSAE) -> dict[str, torch.Tensor]:
    """GatedAutoEncoder's names for sparseae's gated tensors (its linears hold W transposed)."""
    refuse_input_transform(model, "dictionary_learning")
    return {
        "decoder_bias": model.b_dec.detach(),
        "encoder.weight": model.W_enc.detach().t(),
        "r_mag": model.r_mag.detach(),
        "gate_bias": model.b_gate.detach(),
        "mag_bias": model.b_mag.detach(),
        "decoder.weight": model.W_dec.detach().t(),
    }


def _matryoshka_state(model: MatryoshkaSAE) -> dict[str, torch.Tensor]:
    """MatryoshkaBatchTopKSAE's buffers and parameters: the nested widths become group sizes
    (differences of 0, widths..., n_latents), decoded at inference through the threshold."""
    exportable(model, "dictionary_learning")
    edges = [0, *model.config.widths, model.n_latents]
    return {
        "k": torch.tensor(model.sparsity.k, dtype=torch.int),
        "threshold": torch.tensor(_threshold(model), dtype=torch.float32),
        "group_sizes": torch.tensor([b - a for a, b in zip(edges, edges[1:], strict=False)]),
        **{name: getattr(model, name).detach() for name in ("W_enc", "b_enc", "W_dec", "b_dec")},
    }
