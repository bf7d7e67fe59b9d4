"""dictionary_learning folders: ``ae.pt`` (a ``torch.save``d state dict) + ``config.json``
whose ``trainer`` block names ``dict_class``, ``activation_dim``, ``dict_size``, ``k``.

``ae.pt`` is a pickle container: it is read only with ``torch.load(weights_only=True)``,
which restores tensors and refuses any other object, so a hostile file cannot run code.
Mapped: ``AutoEncoder`` (ReLU), ``AutoEncoderTopK``, ``BatchTopKSAE`` (its inference
threshold), ``JumpReluAutoEncoder``, ``GatedAutoEncoder`` (to `GatedSAE`) and
``MatryoshkaBatchTopKSAE`` (to `MatryoshkaSAE`, its group sizes as nested widths)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sparseae.atomic import atomic_write_bytes, atomic_write_text
from sparseae.errors import CheckpointError
from sparseae.interop.common import build_sae, exportable, log_threshold, read_json

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
    from sparseae.models.gated import GatedConfig, GatedSAE

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
    from sparseae.models.matryoshka import MatryoshkaConfig, MatryoshkaSAE

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
    sparsity, params = exportable(model, "dictionary_learning")
    enc, dec = model.W_enc.detach().t().contiguous(), model.W_dec.detach().t().contiguous()
    if sparsity in ("none", "l1"):
        cls = "AutoEncoder"
        state = {"bias": model.b_dec.detach(), "encoder.weight": enc,
                 "encoder.bias": model.b_enc.detach(), "decoder.weight": dec}  # fmt: skip
    elif sparsity in ("topk", "batchtopk"):
        if sparsity == "topk" and not params["relu"]:
            raise CheckpointError("dictionary_learning's TopK applies ReLU: export relu=True")
        cls = "AutoEncoderTopK" if sparsity == "topk" else "BatchTopKSAE"
        k = model.sparsity.inference_k if sparsity == "topk" else model.sparsity.k
        threshold = -1.0 if sparsity == "topk" else float(model.sparsity.threshold)
        state = {
            "encoder.weight": enc,
            "encoder.bias": model.b_enc.detach(),
            "decoder.weight": dec,
            "b_dec": model.b_dec.detach(),
            "k": torch.tensor(k, dtype=torch.int),
            "threshold": torch.tensor(threshold),
        }
    else:
        raise CheckpointError(f"export of a {sparsity!r} SAE to dictionary_learning is not mapped")
    trainer = {"dict_class": cls, "activation_dim": model.d_in, "dict_size": model.n_latents}
    if "k" in state:
        trainer["k"] = int(state["k"])
    import io

    buffer = io.BytesIO()
    torch.save({k: v.contiguous().cpu() for k, v in state.items()}, buffer)  # their format
    atomic_write_bytes(folder / WEIGHTS, buffer.getvalue())
    atomic_write_text(folder / CONFIG, json.dumps({"trainer": trainer}, indent=2))
    return folder
