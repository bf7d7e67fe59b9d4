"""The trainer's resumable state as one safetensors file: tensors (model, optimizer moments,
RNG states, callbacks' tensors) plus a JSON metadata entry (counters, history, settings).
Reading refuses anything that is not such a file with a `CheckpointError` naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from sparseae.atomic import atomic_save_tensors, load_tensors
from sparseae.errors import CheckpointError

TRAINER_STATE_FILE = "trainer_state.safetensors"


def optimizer_state_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON (the rest)."""
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            if isinstance(value, Tensor):  # a copy: LeanAdam's step counters share storage
                tensors[f"optim.{pid}.{key}"] = value.clone()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_state_from_tensors(
    opt: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, values in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(values)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    _match_param_layout(opt)


def _match_param_layout(opt: torch.optim.Optimizer) -> None:
    """Moments in the memory layout of their parameter, as the optimizer made them: fused
    kernels walk parameter and moments as flat arrays, so a transposed parameter (a tied
    initialisation's view) with contiguous loaded moments would be updated wrongly."""
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                if (
                    isinstance(value, Tensor)
                    and value.shape == p.shape
                    and value.stride() != p.stride()
                ):
                    opt.state[p][key] = torch.empty_like(p).copy_(value)


def split_state(prefix: str, state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A callback's state dict as prefixed tensors and the JSON rest."""
    tensors = {f"{prefix}.{k}": v for k, v in state.items() if isinstance(v, Tensor)}
    rest = {k: v for k, v in state.items() if not isinstance(v, Tensor)}
    return tensors, rest


def join_state(prefix: str, tensors: dict[str, Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    out = dict(rest)
    cut = len(prefix) + 1
    out.update({k[cut:]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
    return out


def write_state(path: Path, tensors: dict[str, Tensor], info: dict[str, Any]) -> None:
    atomic_save_tensors(path, tensors, metadata={"trainer": json.dumps(info)})


def read_state(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors, info) of a trainer state file, or a CheckpointError naming what is wrong."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable trainer state ({exc})") from None
    try:
        info = json.loads(meta["trainer"])
        for key in ("epoch", "global_step", "step_in_epoch", "optimizer", "history"):
            info[key]  # noqa: B018 - presence check
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CheckpointError(
            f"{path} is not a sparseae trainer state (no valid 'trainer' metadata): "
            "resume from the folder a sparseae run wrote, or start afresh"
        ) from None
    return load_tensors(path), info


def load_model_state(model: Any, tensors: dict[str, Tensor], path: Path) -> None:
    """The saved weights into ``model``, or a CheckpointError if they do not fit it."""
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{path} holds weights of another architecture ({first}): resume with the "
            "settings of the saved run, or start afresh in another folder"
        ) from None
