"""The names of the registered parts, read from the package's source without importing it.

The registries (`sparseae.registry`) fill when their modules are imported, which imports
PyTorch; the command line only needs the names to offer them as choices, and a ``--help``
must not wait a second or more for PyTorch. So the names are read here from the decorators
that register them (``@register_sparsity("topk")``...): one definition still, and a test
holds each list equal to its live registry."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _decorated(files: list[Path], decorator: str) -> tuple[str, ...]:
    names = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef | ast.FunctionDef):
                continue
            for deco in node.decorator_list:
                func = getattr(deco, "func", None)
                called = getattr(func, "id", None) or getattr(func, "attr", None)
                if called == decorator and deco.args and isinstance(deco.args[0], ast.Constant):
                    names.append(str(deco.args[0].value))
    return tuple(sorted(names))


@cache
def sparsity_names() -> tuple[str, ...]:
    return _decorated(sorted((PACKAGE / "sparsities").glob("*.py")), "register_sparsity")


@cache
def backbone_names() -> tuple[str, ...]:
    folder = PACKAGE / "models" / "autoencoder" / "backbones"
    return _decorated(sorted(folder.glob("*.py")), "register_backbone")


@cache
def coder_names() -> tuple[str, ...]:
    """The sparse coders of `sparseae.coding` (``@CODERS.register("omp")``)."""
    return _decorated(sorted((PACKAGE / "coding").glob("*.py")), "register")


@cache
def corruption_names() -> tuple[str, ...]:
    return _decorated([PACKAGE / "corruptions.py"], "register_corruption")


@cache
def activation_names() -> tuple[str, ...]:
    """The keys of `sparseae.nn_utils.ACTIVATIONS`, in their order."""
    tree = ast.parse((PACKAGE / "nn_utils.py").read_text(encoding="utf-8"))
    for node in tree.body:
        target = getattr(node, "target", None) or (getattr(node, "targets", [None]) or [None])[0]
        if getattr(target, "id", None) == "ACTIVATIONS" and isinstance(node.value, ast.Dict):
            return tuple(str(k.value) for k in node.value.keys if isinstance(k, ast.Constant))
    raise RuntimeError("sparseae.nn_utils.ACTIVATIONS is not a dict literal")
