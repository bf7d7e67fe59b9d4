"""sparseae: train, compare, inspect and apply sparse autoencoders.

>>> import sparseae
>>> data = sparseae.load_dataset("digits")
>>> model = sparseae.Autoencoder(d_in=data.d_in, hidden=[32], n_latents=64,
...                              sparsity="topk", sparsity_params={"k": 8})
>>> history = sparseae.fit(model, data.train.x, data.val.x, epochs=5)
>>> sparseae.save(model, "runs/topk"); model = sparseae.load("runs/topk")
"""

from sparseae._version import __version__
from sparseae.checkpoint import load, read_history, save
from sparseae.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    SparseAEError,
    TrainingDivergedError,
)
from sparseae.models import (
    SAE,
    Autoencoder,
    ModelConfig,
    NeuralSparseCoding,
    SAEConfig,
    SparseCodingConfig,
)
from sparseae.sparsities import Sparsity, register_sparsity, sparsity_names
from sparseae.training.callbacks import Callback, History
from sparseae.training.config import TrainConfig
from sparseae.training.evaluate import evaluate
from sparseae.training.trainer import Trainer, fit


def __getattr__(name: str):  # noqa: ANN202 - lazy: scikit-learn loads only when asked
    if name in ("SparseAutoencoder", "SparseAEDetector"):
        from sparseae import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module 'sparseae' has no attribute {name!r}")


def load_dataset(*args, **kwargs):  # noqa: ANN002, ANN003 - thin lazy re-export
    """See `sparseae.data.load_dataset` (imported lazily: it pulls in scikit-learn)."""
    from sparseae.data import load_dataset as _load_dataset

    return _load_dataset(*args, **kwargs)


__all__ = [
    "SAE",
    "Autoencoder",
    "Callback",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "History",
    "ModelConfig",
    "NeuralSparseCoding",
    "SAEConfig",
    "SparseAEError",
    "SparseAEDetector",
    "SparseAutoencoder",
    "SparseCodingConfig",
    "Sparsity",
    "TrainConfig",
    "Trainer",
    "TrainingDivergedError",
    "__version__",
    "evaluate",
    "fit",
    "load",
    "load_dataset",
    "read_history",
    "register_sparsity",
    "save",
    "sparsity_names",
]
