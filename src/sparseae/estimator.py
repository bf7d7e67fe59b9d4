"""scikit-learn estimators on top of sparseae's models.

`SparseAutoencoder` is a transformer (``fit``/``transform``/``inverse_transform``) and an
outlier detector in scikit-learn's convention (``score_samples`` = -reconstruction error,
``decision_function`` positive for inliers, ``predict`` -1/+1), so it passes
``check_estimator`` and composes with sklearn tools. `SparseAEDetector` is the same model in
PyOD's convention, which anomaly-detection users expect: ``decision_function`` is the
reconstruction error (higher = more abnormal), ``predict`` gives 1 for outliers and 0 for
inliers, with ``decision_scores_`` (training errors) and ``threshold_``.

Inputs are arbitrary real arrays (scikit-learn's checks feed anything), so the defaults are
an MSE loss with a linear output on standardised inputs; ``scale="unit"`` keeps [0, 1] data
as is for the image recipes (sigmoid output, BCE allowed).
"""

from __future__ import annotations

from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    OutlierMixin,
    TransformerMixin,
)
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from sparseae.atomic import atomic_write_text
from sparseae.checkpoint import load, save
from sparseae.errors import ConfigError
from sparseae.models.autoencoder.config import ModelConfig
from sparseae.models.autoencoder.model import Autoencoder
from sparseae.training.config import TrainConfig
from sparseae.training.evaluate import map_batches
from sparseae.training.trainer import Trainer


class ParameterError(ConfigError, InvalidParameterError):
    """A parameter outside its declared domain: sparseae's ConfigError and scikit-learn's
    InvalidParameterError at once, so both kinds of caller can catch it."""


def _parameter_constraints() -> dict[str, list[Any]]:
    from sparseae.corruptions import corruption_names
    from sparseae.nn_utils import ACTIVATIONS
    from sparseae.sparsities import sparsity_names

    positive_int = Interval(Integral, 1, None, closed="left")
    return {
        "n_latents": [positive_int],
        "hidden": [list, tuple],
        "sparsity": [StrOptions(set(sparsity_names()))],
        "sparsity_params": [dict, None],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "code_activation": [StrOptions(set(ACTIVATIONS)), None],
        "loss": [StrOptions({"mse", "bce"})],
        "scale": [StrOptions({"standard", "unit", "none"})],
        "corruption": [StrOptions(set(corruption_names()))],
        "corruption_params": [dict, None],
        "epochs": [positive_int],
        "batch_size": [positive_int],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "threshold": [StrOptions({"contamination", "mean_std"})],
        "contamination": [Interval(Real, 0, 0.5, closed="neither")],
        "n_std": [Interval(Real, 0, None, closed="left")],
        "random_state": [Interval(Integral, 0, 2**63 - 1, closed="both"), None],
        "device": [str],
        "verbose": ["boolean"],
    }


class SparseAutoencoder(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, OutlierMixin, BaseEstimator
):
    """A (sparse) autoencoder as a scikit-learn estimator.

    Parameters mirror `ModelConfig` and `TrainConfig`; ``sparsity_params`` is a dict
    (e.g. ``{"k": 8}`` for topk). ``threshold`` picks the outlier threshold on the training
    reconstruction errors: ``"contamination"`` (the ``contamination`` quantile) or
    ``"mean_std"`` (mean + ``n_std`` standard deviations: the mean + k·std rule).
    """

    def __init__(
        self,
        n_latents: int = 32,
        hidden: tuple[int, ...] = (),
        sparsity: str = "none",
        sparsity_params: dict[str, Any] | None = None,
        activation: str = "relu",
        code_activation: str | None = None,
        loss: str = "mse",
        scale: str = "standard",
        corruption: str = "none",
        corruption_params: dict[str, Any] | None = None,
        epochs: int = 20,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        threshold: str = "contamination",
        contamination: float = 0.1,
        n_std: float = 3.0,
        random_state: int | None = 0,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.n_latents = n_latents
        self.hidden = hidden
        self.sparsity = sparsity
        self.sparsity_params = sparsity_params
        self.activation = activation
        self.code_activation = code_activation
        self.loss = loss
        self.scale = scale
        self.corruption = corruption
        self.corruption_params = corruption_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.threshold = threshold
        self.contamination = contamination
        self.n_std = n_std
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    @property
    def _n_features_out(self) -> int:
        """Codes have one column per latent: ``get_feature_names_out`` names them
        sparseautoencoder0, sparseautoencoder1, ... and ``set_output`` labels the frame."""
        return int(self.n_latents)

    #: every parameter's domain, declared once (scikit-learn's convention), checked by fit
    _parameter_constraints: dict[str, list[Any]] = _parameter_constraints()

    # -- helpers ------------------------------------------------------------------------------
    def _check_params(self) -> None:
        try:
            self._validate_params()
        except InvalidParameterError as exc:
            raise ParameterError(str(exc)) from None

    def _model_config(self, d_in: int) -> ModelConfig:
        code_act = self.code_activation or {"kl": "sigmoid", "topk": "linear"}.get(
            self.sparsity, self.activation
        )
        unit = self.scale == "unit"
        return ModelConfig(
            d_in=d_in,
            n_latents=self.n_latents,
            hidden=tuple(self.hidden),
            activation=self.activation,
            code_activation=code_act,
            output_activation="sigmoid" if unit else "linear",
            loss=self.loss,
            sparsity=self.sparsity,
            sparsity_params=dict(self.sparsity_params or {}),
            corruption=self.corruption,
            corruption_params=dict(self.corruption_params or {}),
        )

    def _train_config(self, epochs: int) -> TrainConfig:
        return TrainConfig(
            epochs=epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            seed=0 if self.random_state is None else int(self.random_state),
            device=self.device,
        )

    def _scale(self, X: np.ndarray) -> np.ndarray:
        if self.scale == "standard":
            return ((X - self.mean_) / self.scale_).astype(np.float32)
        return X.astype(np.float32)

    def _unscale(self, X: np.ndarray) -> np.ndarray:
        if self.scale == "standard":
            return X * self.scale_ + self.mean_
        return X

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> SparseAutoencoder:
        X = self._start(X)
        self._train(X, self.epochs)
        self._set_threshold(X)
        return self

    def partial_fit(self, X: Any, y: Any = None) -> SparseAutoencoder:
        """One more epoch on X (fits from scratch on the first call). Adam's moments restart
        at each call: simpler, and harmless for the incremental use it serves."""
        if not hasattr(self, "model_"):
            self._start(X)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        self._train(X, 1)
        self._set_threshold(X)
        return self

    def _start(self, X: Any) -> np.ndarray:
        """Validate, fit the scaling, build the model (which keeps the scaling as its input
        transform, so the saved model folder encodes raw rows by itself)."""
        self._check_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        if self.scale == "standard":
            self.mean_ = X.mean(axis=0)
            std = X.std(axis=0)
            self.scale_ = np.where(std > 0, std, 1.0)
        if self.random_state is not None:
            torch.manual_seed(int(self.random_state))
        self.model_ = Autoencoder(self._model_config(X.shape[1]))
        if self.scale == "standard":
            self.model_.input_transform.set(self.mean_, 1.0 / self.scale_)
        self.history_: list[dict[str, Any]] = []
        return X

    def _train(self, X: np.ndarray, epochs: int) -> None:
        trainer = Trainer(self.model_, self._train_config(epochs), progress=self.verbose)
        history = trainer.fit(self._scale(X))
        self.history_.extend(history.records)
        self.model_.eval()

    def _set_threshold(self, X: np.ndarray) -> None:
        self.decision_scores_ = self._errors(X)
        if self.threshold == "mean_std":
            s = self.decision_scores_
            self.threshold_ = float(s.mean() + self.n_std * s.std())
        else:
            self.threshold_ = float(np.quantile(self.decision_scores_, 1 - self.contamination))
        # sklearn's OutlierMixin convention: decision > 0 inlier -> offset on -error
        self.offset_ = -self.threshold_

    # -- using it -----------------------------------------------------------------------------
    def _map(self, X: Any, fn: Any, name: str = "X") -> np.ndarray:
        """``fn`` over rows of ``X`` through the shared eval loop: batches go to the model's
        device (``device="auto"`` leaves it on a GPU), results come back as NumPy."""
        return map_batches(self.model_, X, fn, name=name).numpy()

    def _recon(self, xs: Any) -> Any:
        """Reconstruction in the model's (scaled) space."""
        return self.model_.decode(self.model_.code(xs))

    def _errors(self, X: np.ndarray) -> np.ndarray:
        xs = self._scale(X)
        recon = self._map(xs, self._recon).astype(np.float64)
        return ((recon - xs) ** 2).mean(axis=1)

    def transform(self, X: Any) -> np.ndarray:
        """The sparse codes."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._map(self._scale(X), self.model_.code).astype(np.float64)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Codes back to input space."""
        check_is_fitted(self, "model_")
        H = np.asarray(X, dtype=np.float32)
        if H.ndim != 2 or H.shape[1] != self.n_latents:
            raise ConfigError(f"inverse_transform expects codes of shape (n, {self.n_latents})")
        out = self._map(H, self.model_.decode, name="codes")
        return self._unscale(out.astype(np.float64))

    def reconstruct(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._unscale(self._map(self._scale(X), self._recon).astype(np.float64))

    def score_samples(self, X: Any) -> np.ndarray:
        """Negative reconstruction error: higher means more normal (sklearn's convention)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return -self._errors(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """scikit-learn's sign: threshold minus reconstruction error, > 0 for inliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """scikit-learn's outlier labels: -1 for outliers, +1 for inliers."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def reconstruction_error(self, X: Any) -> np.ndarray:
        """Mean squared reconstruction error per sample (in the scaled space)."""
        return -self.score_samples(X)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean negative reconstruction error (higher is better), for GridSearchCV."""
        return float(self.score_samples(X).mean())

    # -- persistence (safetensors + JSON, never pickle) ---------------------------------------
    def save(self, folder: str | Path) -> Path:
        check_is_fitted(self, "model_")
        folder = Path(folder)
        extra = {
            "estimator": {k: v for k, v in self.get_params().items()},
            "threshold_": self.threshold_,
            "n_features_in_": int(self.n_features_in_),
        }
        if self.scale == "standard":
            extra["mean_"] = self.mean_.tolist()
            extra["scale_"] = self.scale_.tolist()
        save(self.model_, folder, history=self.history_, extra=extra)
        scores = folder / "decision_scores.json"
        import json

        atomic_write_text(scores, json.dumps(self.decision_scores_.tolist()))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> SparseAutoencoder:
        import json

        from sparseae.checkpoint import read_config, read_history

        folder = Path(folder)
        config = read_config(folder)
        extra = config.get("extra", {})
        if "estimator" not in extra:
            raise ConfigError(f"{folder} was not saved by SparseAutoencoder.save")
        params = dict(extra["estimator"])
        for key in ("hidden",):
            params[key] = tuple(params[key])
        est = cls(**params)
        est.model_ = load(folder)
        est.history_ = read_history(folder)
        est.threshold_ = float(extra["threshold_"])
        est.offset_ = -est.threshold_
        est.n_features_in_ = int(extra["n_features_in_"])
        if "mean_" in extra:
            est.mean_ = np.asarray(extra["mean_"])
            est.scale_ = np.asarray(extra["scale_"])
        scores = folder / "decision_scores.json"
        if scores.is_file():
            est.decision_scores_ = np.asarray(json.loads(scores.read_text()))
        return est


class SparseAEDetector(SparseAutoencoder):
    """The autoencoder as an anomaly detector with PyOD's conventions: ``decision_function``
    is the reconstruction error (higher = more abnormal), ``predict`` returns 1 for outliers
    and 0 for inliers using ``threshold_`` (the ``contamination`` quantile of the training
    errors, or the mean + k·std rule, mean + ``n_std`` x std, with ``threshold="mean_std"``)."""

    def decision_function(self, X: Any) -> np.ndarray:
        return self.reconstruction_error(X)

    def predict(self, X: Any) -> np.ndarray:
        return (self.decision_function(X) > self.threshold_).astype(int)

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.estimator_type = None  # not sklearn's -1/+1 outlier API: PyOD's 0/1 instead
        return tags
