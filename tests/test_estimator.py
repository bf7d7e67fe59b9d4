import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from sparseae.errors import ConfigError
from sparseae.estimator import SparseAEDetector, SparseAutoencoder

from .helpers import digits


@parametrize_with_checks([SparseAutoencoder(n_latents=4, epochs=2, batch_size=16)])
def test_passes_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _digits_np():
    x, y = digits()
    return x.numpy().astype(np.float64), y.numpy()


def test_transform_inverse_and_sparsity():
    x, _ = _digits_np()
    est = SparseAutoencoder(
        n_latents=32,
        hidden=(48,),
        sparsity="topk",
        sparsity_params={"k": 5},
        epochs=15,
        scale="unit",
    )
    codes = est.fit_transform(x[:1200])
    assert codes.shape == (1200, 32)
    assert ((codes != 0).sum(axis=1) <= 5).all()
    back = est.inverse_transform(est.transform(x[1200:]))
    assert back.shape == (x.shape[0] - 1200, 64)
    err = ((back - x[1200:]) ** 2).mean()
    assert err < ((x[1200:] - x[:1200].mean(axis=0)) ** 2).mean()  # better than the mean
    assert len(est.history_) == 15


def test_pipeline_gridsearch_and_clone():
    x, y = _digits_np()
    pipe = make_pipeline(
        SparseAutoencoder(n_latents=24, epochs=5, scale="unit"), LogisticRegression(max_iter=300)
    )
    search = GridSearchCV(pipe, {"sparseautoencoder__n_latents": [8, 24]}, cv=2)
    search.fit(x[:800], y[:800])
    assert search.best_params_["sparseautoencoder__n_latents"] in (8, 24)
    assert search.score(x[800:1200], y[800:1200]) > 0.8
    c = clone(pipe.steps[0][1])
    assert c.get_params()["n_latents"] == 24 and not hasattr(c, "model_")


def test_partial_fit_continues_training():
    x, _ = _digits_np()
    est = SparseAutoencoder(n_latents=16, epochs=1, scale="unit")
    est.partial_fit(x[:600])
    first = -est.score(x[600:900])
    for _ in range(5):
        est.partial_fit(x[:600])
    assert -est.score(x[600:900]) < first
    assert len(est.history_) == 6


def test_outlier_thresholds_follow_contamination_and_mean_std():
    x, y = _digits_np()
    normal = x[y == 0]
    det = SparseAEDetector(n_latents=8, epochs=30, scale="unit", contamination=0.1).fit(normal)
    assert np.mean(det.decision_scores_ > det.threshold_) == pytest.approx(0.1, abs=0.02)
    flags = det.predict(x)
    assert set(np.unique(flags)) <= {0, 1}
    # other digits are reconstructed worse than the training class
    assert flags[y != 0].mean() > 2 * flags[y == 0].mean()
    det2 = SparseAEDetector(
        n_latents=8, epochs=30, scale="unit", threshold="mean_std", n_std=2.0
    ).fit(normal)
    s = det2.decision_scores_
    assert det2.threshold_ == pytest.approx(s.mean() + 2.0 * s.std())
    est = SparseAutoencoder(n_latents=8, epochs=5, scale="unit").fit(normal)
    assert set(np.unique(est.predict(x))) <= {-1, 1}


def test_save_load_round_trip(tmp_path):
    x, _ = _digits_np()
    est = SparseAutoencoder(n_latents=12, hidden=(20,), epochs=3).fit(x[:300])
    est.save(tmp_path / "est")
    back = SparseAutoencoder.load(tmp_path / "est")
    np.testing.assert_array_equal(back.transform(x[300:400]), est.transform(x[300:400]))
    assert back.threshold_ == est.threshold_
    np.testing.assert_array_equal(back.decision_scores_, est.decision_scores_)


def test_bad_parameters_are_config_errors():
    x, _ = _digits_np()
    with pytest.raises(ConfigError, match="'threshold' parameter of SparseAutoencoder must be"):
        SparseAutoencoder(threshold="magic").fit(x[:50])
    for bad in ({"lr": -1.0}, {"epochs": 0}, {"contamination": 0.7}, {"random_state": 10**22}):
        name = next(iter(bad))
        with pytest.raises(ConfigError, match=f"'{name}' parameter"):  # declared once, checked
            SparseAutoencoder(**bad).fit(x[:50])
    with pytest.raises(ConfigError, match="topk needs 1 <= k <= n_latents"):
        SparseAutoencoder(n_latents=4, sparsity="topk", sparsity_params={"k": 9}).fit(x[:50])


def test_every_inference_path_feeds_the_models_device(monkeypatch):
    """device="auto" leaves the model on a GPU: transform, inverse_transform, reconstruct and
    the scores must move their batches to wherever the model lives, so each goes through the
    shared eval loop, which asks the model for its device (checked here without a GPU)."""
    import sparseae.training.evaluate as evaluate

    x, _ = _digits_np()
    asked = []

    def spy(model):
        asked.append(model)
        return next(model.parameters()).device

    monkeypatch.setattr(evaluate, "model_device", spy)
    est = SparseAutoencoder(n_latents=8, epochs=1, scale="unit").fit(x[:200])
    assert asked and all(m is est.model_ for m in asked)  # the training errors (threshold)
    before = len(asked)
    codes = est.transform(x[200:260])
    assert len(asked) > before
    for use in (
        lambda: est.inverse_transform(codes),
        lambda: est.reconstruct(x[200:260]),
        lambda: est.score_samples(x[200:260]),
        lambda: SparseAEDetector(n_latents=8, epochs=1, scale="unit").fit(x[:200]).predict(x),
    ):
        before = len(asked)
        use()
        assert len(asked) > before


def test_feature_names_and_pandas_output_in_a_pipeline():
    pd = pytest.importorskip("pandas")
    from sklearn.preprocessing import MinMaxScaler

    x, _ = _digits_np()
    est = SparseAutoencoder(n_latents=6, epochs=2, batch_size=64)
    pipe = make_pipeline(MinMaxScaler(), est).set_output(transform="pandas")
    frame = pipe.fit_transform(pd.DataFrame(x[:300], columns=[f"px{i}" for i in range(64)]))
    assert isinstance(frame, pd.DataFrame) and frame.shape == (300, 6)
    names = [f"sparseautoencoder{i}" for i in range(6)]
    assert list(frame.columns) == names
    assert list(est.get_feature_names_out()) == names
    np.testing.assert_allclose(frame.to_numpy(), est.transform(pipe[0].transform(x[:300])))
