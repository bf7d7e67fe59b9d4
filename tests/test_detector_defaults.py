"""SparseAEDetector's defaults on small real data: the one-class protocol in miniature (a few
hundred MNIST images of one digit), the ``scale="auto"`` rule, the combined score's pieces
and its save/load round trip. benchmarks/one_class_auroc.py is the full-size version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from sparseae.apps.combined_score import PARTS
from sparseae.data import find_shared_data_dir, load_dataset
from sparseae.estimator import SparseAEDetector, SparseAutoencoder, resolve_scale

from .helpers import digits


@pytest.fixture(scope="module")
def mnist_one_class() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """400 training images of digit 3, 1,500 test images of every digit, labels 'not 3'."""
    d = find_shared_data_dir()
    if d is None or not (d / "mnist").is_dir():
        pytest.skip("shared reference data (../shared/data or $SPARSEAE_TEST_DATA) not present")
    data = load_dataset("mnist", data_dir=d, val_size=0)
    x_train = data.train.x[data.train.y == 3][:400].astype(np.float64)
    return x_train, data.test.x[:1500].astype(np.float64), data.test.y[:1500] != 3


def test_default_detector_beats_trivial_scores_on_one_mnist_class(mnist_one_class):
    x_train, x_test, is_anomaly = mnist_one_class
    det = SparseAEDetector().fit(x_train)
    assert det.scale_mode_ == "unit"  # pixels in [0, 1]: kept as they are
    ours = roc_auc_score(is_anomaly, det.decision_function(x_test))
    mean = x_train.mean(axis=0)
    trivial = {
        "distance to the class mean": ((x_test - mean) ** 2).sum(axis=1),
        "ink": x_test.sum(axis=1),
    }
    for name, score in trivial.items():
        assert ours > roc_auc_score(is_anomaly, score) + 0.005, name
    assert ours > 0.85
    flags = det.predict(x_test)
    assert set(np.unique(flags)) <= {0, 1}
    assert flags[is_anomaly].mean() > 3 * flags[~is_anomaly].mean()


def test_combined_training_scores_are_standardised_and_thresholded(mnist_one_class):
    x_train, _, _ = mnist_one_class
    det = SparseAEDetector(epochs=3, contamination=0.05).fit(x_train)
    assert det.scorer_.parts == PARTS
    # every part standardised on the training rows: mean 0 in sum
    assert abs(det.decision_scores_.mean()) < 1e-6
    assert np.mean(det.decision_scores_ > det.threshold_) == pytest.approx(0.05, abs=0.01)
    assert det.scorer_.reference_codes.shape == (len(x_train), det.n_latents)
    norms = np.linalg.norm(det.scorer_.reference_inputs, axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    # a training row scored as a query sees itself at distance 0 in both kNN parts; scored
    # as training, leave-one-out, it does not
    raw = det.scorer_.raw_parts(*det._views(x_train[:5]))
    assert np.all(raw["knn"] < det.scorer_.raw_parts(*det._views(x_train[:5]), True)["knn"])
    assert np.all(raw["input_knn"] > 0)
    plain = SparseAEDetector(epochs=3, anomaly_score="reconstruction").fit(x_train)
    np.testing.assert_allclose(
        plain.decision_function(x_train[:50]), plain.reconstruction_error(x_train[:50])
    )


def test_scale_auto_resolves_from_the_training_data():
    x, _ = digits(300)
    x = 16.0 * x.numpy().astype(np.float64)  # the helper's digits lie in [0, 1]: 0..16 here
    assert resolve_scale("auto", x) == "standard"
    assert resolve_scale("auto", x / 16.0) == "unit"
    assert resolve_scale("auto", x / 16.0 - 0.5) == "standard"
    assert resolve_scale("none", x) == "none"
    det = SparseAEDetector(epochs=2).fit(x)
    assert det.scale_mode_ == "standard" and hasattr(det, "mean_")
    det = SparseAEDetector(epochs=2).fit(x / 16.0)
    assert det.scale_mode_ == "unit" and not hasattr(det, "mean_")
    assert det.model_.config.output_activation == "sigmoid"


@pytest.mark.parametrize("scaled", [False, True])
def test_save_load_round_trip_keeps_the_combined_score(tmp_path: Path, scaled: bool):
    x, _ = digits(400)
    x = x.numpy().astype(np.float64) * (1.0 if scaled else 16.0)  # [0, 1] or 0..16
    det = SparseAEDetector(epochs=2, n_neighbors=3).fit(x[:300])
    det.save(tmp_path / "det")
    back = SparseAEDetector.load(tmp_path / "det")
    assert back.scale_mode_ == det.scale_mode_ and back.n_neighbors == 3
    np.testing.assert_array_equal(back.decision_function(x[300:]), det.decision_function(x[300:]))
    np.testing.assert_array_equal(back.predict(x[300:]), det.predict(x[300:]))
    assert back.threshold_ == det.threshold_
    np.testing.assert_array_equal(back.decision_scores_, det.decision_scores_)


def test_a_folder_without_the_scoring_state_scores_by_squared_error(tmp_path: Path):
    """Folders saved before the combined score existed hold no reference codes: the detector
    they load as scores as it did then, by squared error."""
    x, _ = digits(300)
    x = x.numpy().astype(np.float64)
    det = SparseAEDetector(epochs=2).fit(x)
    det.save(tmp_path / "det")
    (tmp_path / "det" / "reference_codes.safetensors").unlink()
    back = SparseAEDetector.load(tmp_path / "det")
    assert back.anomaly_score == "reconstruction"
    np.testing.assert_allclose(back.decision_function(x[:40]), det.reconstruction_error(x[:40]))


@parametrize_with_checks(
    [
        SparseAutoencoder(n_latents=4, epochs=2, batch_size=16, scale="auto"),
        SparseAEDetector(n_latents=4, epochs=2, batch_size=16),
    ]
)
def test_scale_auto_and_the_detector_pass_scikit_learn_checks(estimator, check):
    check(estimator)


def test_a_folder_with_the_three_part_score_loads_and_scores_with_three_parts(tmp_path: Path):
    """Folders saved when the combined score had three parts (squared error, cosine, code
    kNN) hold only the reference codes: they load and score with those three parts."""
    from sparseae.atomic import atomic_save_tensors, load_tensors

    x, _ = digits(300)
    x = x.numpy().astype(np.float64)
    det = SparseAEDetector(epochs=2).fit(x[:200])
    det.save(tmp_path / "det")
    folder = tmp_path / "det"
    codes = load_tensors(folder / "reference_codes.safetensors")["codes"]
    atomic_save_tensors(folder / "reference_codes.safetensors", {"codes": codes})
    stats = {k: list(v) for k, v in det.scorer_.stats.items() if k in ("mse", "cosine", "knn")}
    (folder / "score_stats.json").write_text(json.dumps(stats))
    back = SparseAEDetector.load(folder)
    assert back.scorer_.parts == ("mse", "cosine", "knn")
    raw = det.scorer_.raw_parts(*det._views(x[200:]))
    expected = sum(
        (np.log(raw[k] + 1e-12) - det.scorer_.stats[k][0]) / det.scorer_.stats[k][1]
        for k in ("mse", "cosine", "knn")
    )
    np.testing.assert_allclose(back.decision_function(x[200:]), expected, rtol=1e-6)


def test_wide_inputs_and_codes_keep_the_score_bounded(tmp_path: Path, monkeypatch):
    """Past the caps, the input reference keeps fewer rows and a wide code drops the
    Gaussian part (its precision matrix is latents^2): the score still fits, scores and
    round-trips, with the parts it has."""
    from sparseae.apps import combined_score

    monkeypatch.setattr(combined_score, "MAX_INPUT_VALUES", 64 * 50)
    monkeypatch.setattr(combined_score, "MAX_GAUSS_LATENTS", 4)
    x, _ = digits(300)
    x = x.numpy().astype(np.float64)
    det = SparseAEDetector(epochs=2, n_latents=8).fit(x[:200])
    assert det.scorer_.reference_inputs.shape == (50, 64)
    assert det.scorer_.parts == ("mse", "cosine", "knn", "input_knn")
    assert abs(det.decision_scores_.mean()) < 1e-6
    det.save(tmp_path / "det")
    back = SparseAEDetector.load(tmp_path / "det")
    np.testing.assert_array_equal(back.decision_function(x[200:]), det.decision_function(x[200:]))
