"""sparseae: train, compare, inspect and apply sparse autoencoders.

>>> import sparseae
>>> data = sparseae.load_dataset("digits")
>>> model = sparseae.Autoencoder(d_in=data.d_in, hidden=[32], n_latents=64,
...                              sparsity="topk", sparsity_params={"k": 8})
>>> history = sparseae.fit(model, data.train.x, data.val.x, epochs=5)
>>> sparseae.save(model, "runs/topk"); model = sparseae.load("runs/topk")

The public names are imported on first use (PEP 562), so ``import sparseae`` and the
command line's ``--help`` do not pay for PyTorch until something needs it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from sparseae._version import __version__

#: public name -> the module that defines it
_PUBLIC = {
    "load": "sparseae.checkpoint",
    "read_history": "sparseae.checkpoint",
    "save": "sparseae.checkpoint",
    "CheckpointError": "sparseae.errors",
    "ConfigError": "sparseae.errors",
    "DataError": "sparseae.errors",
    "SparseAEError": "sparseae.errors",
    "TrainingDivergedError": "sparseae.errors",
    "SAE": "sparseae.models",
    "Autoencoder": "sparseae.models",
    "ModelConfig": "sparseae.models",
    "NeuralSparseCoding": "sparseae.models",
    "SAEConfig": "sparseae.models",
    "SparseCodingConfig": "sparseae.models",
    "MatryoshkaSAE": "sparseae.models",
    "MatryoshkaConfig": "sparseae.models",
    "GatedSAE": "sparseae.models",
    "GatedConfig": "sparseae.models",
    "Transcoder": "sparseae.models",
    "TranscoderConfig": "sparseae.models",
    "Sparsity": "sparseae.sparsities",
    "register_sparsity": "sparseae.sparsities",
    "sparsity_names": "sparseae.sparsities",
    "Callback": "sparseae.training.callbacks",
    "History": "sparseae.training.callbacks",
    "TrainConfig": "sparseae.training.config",
    "evaluate": "sparseae.training.evaluate",
    "Trainer": "sparseae.training.trainer",
    "fit": "sparseae.training.trainer",
    "SparseAutoencoder": "sparseae.estimator",
    "SparseAEDetector": "sparseae.estimator",
    "DictionaryLearning": "sparseae.dictionary_estimator",
    "sparse_encode": "sparseae.coding",
    "load_dataset": "sparseae.data",
}

__all__ = [
    "__version__",
    "Autoencoder",
    "Callback",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DictionaryLearning",
    "GatedConfig",
    "GatedSAE",
    "History",
    "MatryoshkaConfig",
    "MatryoshkaSAE",
    "ModelConfig",
    "NeuralSparseCoding",
    "SAE",
    "SAEConfig",
    "SparseAEDetector",
    "SparseAEError",
    "SparseAutoencoder",
    "SparseCodingConfig",
    "Sparsity",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "Transcoder",
    "TranscoderConfig",
    "evaluate",
    "fit",
    "load",
    "load_dataset",
    "read_history",
    "register_sparsity",
    "save",
    "sparse_encode",
    "sparsity_names",
]


#: subpackages and modules reachable as attributes (``sparseae.errors.ConfigError``)
_SUBMODULES = frozenset({
    "apps", "atomic", "catalog", "checkpoint", "cli", "coding", "config", "corruptions", "data",
    "devices", "dictionary_estimator", "errors", "estimator", "experiments", "interop",
    "metrics", "models", "nn_utils", "registry", "report", "sparsities", "training",
})  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return import_module(f"sparseae.{name}")
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'sparseae' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from sparseae.checkpoint import load, read_history, save
    from sparseae.coding import sparse_encode
    from sparseae.data import load_dataset
    from sparseae.dictionary_estimator import DictionaryLearning
    from sparseae.errors import (
        CheckpointError,
        ConfigError,
        DataError,
        SparseAEError,
        TrainingDivergedError,
    )
    from sparseae.estimator import SparseAEDetector, SparseAutoencoder
    from sparseae.models import (
        SAE,
        Autoencoder,
        GatedConfig,
        GatedSAE,
        MatryoshkaConfig,
        MatryoshkaSAE,
        ModelConfig,
        NeuralSparseCoding,
        SAEConfig,
        SparseCodingConfig,
        Transcoder,
        TranscoderConfig,
    )
    from sparseae.sparsities import Sparsity, register_sparsity, sparsity_names
    from sparseae.training.callbacks import Callback, History
    from sparseae.training.config import TrainConfig
    from sparseae.training.evaluate import evaluate
    from sparseae.training.trainer import Trainer, fit
