"""Sparse coding on a fixed dictionary (`sparseae.coding`) and `DictionaryLearning`: checked
against scikit-learn's own solvers and on real data (the bundled 8x8 digits)."""

import numpy as np
import pytest
import torch
from sklearn.decomposition import MiniBatchDictionaryLearning
from sklearn.linear_model import Lasso, orthogonal_mp_gram
from sklearn.utils.estimator_checks import parametrize_with_checks

import sparseae
from sparseae import DictionaryLearning, sparse_encode
from sparseae.errors import CheckpointError, ConfigError, DataError

from .helpers import digits


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def digit_rows() -> np.ndarray:
    x, _ = digits()
    return x.numpy().astype(np.float64)


def test_omp_is_scikit_learns_omp(digit_rows):
    """Same supports and coefficients as orthogonal_mp_gram, on a dictionary of real rows."""
    rng = np.random.default_rng(0)
    atoms = _unit_rows(digit_rows[rng.choice(len(digit_rows), 40, replace=False)])
    x = digit_rows[:300]
    ours = sparse_encode(x, atoms, algorithm="omp", n_nonzero_coefs=6)
    ref = orthogonal_mp_gram(atoms @ atoms.T, (x @ atoms.T).T, n_nonzero_coefs=6).T
    assert ((ours != 0).sum(1) == 6).all()
    np.testing.assert_allclose(ours, ref, atol=2e-3 * np.abs(ref).max())


def test_omp_recovers_a_planted_support():
    g = torch.Generator().manual_seed(0)
    atoms = torch.randn(128, 64, generator=g)
    atoms /= atoms.norm(dim=1, keepdim=True)
    support = torch.stack([torch.randperm(128, generator=g)[:4] for _ in range(200)])
    coefs = (1.0 + torch.rand(200, 4, generator=g)) * torch.sign(torch.randn(200, 4, generator=g))
    codes = torch.zeros(200, 128).scatter_(1, support, coefs)
    found = sparse_encode(codes @ atoms, atoms, algorithm="omp", n_nonzero_coefs=4)
    assert isinstance(found, torch.Tensor)  # tensors in, tensors out
    assert torch.equal(found != 0, codes != 0)
    torch.testing.assert_close(found, codes, atol=1e-4, rtol=1e-4)


def test_lasso_reaches_scikit_learns_objective(digit_rows):
    """FISTA solves the objective sklearn's Lasso solves (both scaled by 1/n_features)."""
    rng = np.random.default_rng(1)
    atoms = _unit_rows(digit_rows[rng.choice(len(digit_rows), 50, replace=False)])
    x, alpha = digit_rows[:40], 0.5
    ours = sparse_encode(x, atoms, algorithm="lasso", alpha=alpha, max_iter=2000)
    d = x.shape[1]
    ref = np.stack(
        [
            Lasso(alpha=alpha / d, fit_intercept=False, max_iter=10000, tol=1e-8)
            .fit(atoms.T, row)
            .coef_
            for row in x
        ]
    )

    def objective(h: np.ndarray) -> float:
        return float(0.5 * ((x - h @ atoms) ** 2).sum() + alpha * np.abs(h).sum())

    assert objective(ours) <= objective(ref) * (1 + 1e-3)
    assert (ours == 0).mean() > 0.3  # the l1 penalty made zeros


def test_positive_lasso_and_topk_codes(digit_rows):
    atoms = _unit_rows(digit_rows[100:164])
    pos = sparse_encode(digit_rows[:50], atoms, algorithm="lasso", alpha=1.0, positive=True)
    assert (pos >= 0).all() and (pos > 0).any()
    top = sparse_encode(digit_rows[:50], atoms, algorithm="topk", n_nonzero_coefs=3)
    assert ((top != 0).sum(1) == 3).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"algorithm": "lars"}, ConfigError, "choose one of lasso, omp"),
        ({"n_nonzero_coefs": 500}, ConfigError, "n_nonzero_coefs must be an integer in 1..64"),
        ({"algorithm": "lasso", "alpha": -1.0}, ConfigError, "alpha must be a number >= 0"),
        ({"algorithm": "omp", "positive": True}, ConfigError, "no positive variant"),
    ],
)
def test_bad_settings_are_one_line_errors(digit_rows, kwargs, error, words):
    with pytest.raises(error, match=words):
        sparse_encode(digit_rows[:5], digit_rows[:64], **kwargs)


def test_bad_data_are_one_line_errors(digit_rows):
    with pytest.raises(DataError, match="NaN or inf"):
        sparse_encode(np.full((2, 64), np.nan), digit_rows[:10])
    with pytest.raises(DataError, match="has 63 features but the dictionary's atoms have 64"):
        sparse_encode(digit_rows[:2, :63], digit_rows[:10])
    with pytest.raises(DataError, match="must be numeric"):
        sparse_encode([["a", "b"]], digit_rows[:10, :2])


@parametrize_with_checks(
    [DictionaryLearning(n_components=5, epochs=2, omp_epochs=1, batch_size=16)]
)
def test_passes_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_learned_dictionary_beats_scikit_learns_on_digits(digit_rows):
    """On held-out digits, OMP codes at L0 5 on our dictionary reconstruct better than on
    MiniBatchDictionaryLearning's (same atoms count, same OMP transform)."""
    train, test = digit_rows[:1400], digit_rows[1400:]
    ours = DictionaryLearning(n_components=64, transform_n_nonzero_coefs=5).fit(train)
    peer = MiniBatchDictionaryLearning(
        n_components=64, transform_algorithm="omp", transform_n_nonzero_coefs=5, random_state=0
    ).fit(train)
    mse_ours = ((ours.inverse_transform(ours.transform(test)) - test) ** 2).mean()
    mse_peer = ((peer.transform(test) @ peer.components_ - test) ** 2).mean()
    assert mse_ours < mse_peer
    assert ((ours.transform(test) != 0).sum(1) <= 5).all()
    assert ours.history_["mse"][-1] < 0.5 * ours.history_["mse"][0]  # it learned
    np.testing.assert_allclose(np.linalg.norm(ours.components_, axis=1), 1.0, atol=1e-5)


def test_save_load_round_trip(tmp_path, digit_rows):
    est = DictionaryLearning(n_components=20, transform_n_nonzero_coefs=3, epochs=2)
    est.fit(digit_rows[:500])
    est.save(tmp_path / "dict")
    back = DictionaryLearning.load(tmp_path / "dict")
    np.testing.assert_allclose(
        back.transform(digit_rows[500:600]), est.transform(digit_rows[500:600]), atol=1e-5
    )
    assert back.get_params() == est.get_params()
    (tmp_path / "other").mkdir()
    with pytest.raises(CheckpointError, match="missing or not JSON"):
        DictionaryLearning.load(tmp_path / "other")


def test_omp_on_an_sae_dictionary_beats_its_own_encoder():
    """The SAE's one-step TopK encoder against OMP on the same atoms, same L0."""
    x, _ = digits()
    sae = sparseae.SAE(d_in=64, n_latents=128, sparsity="topk", sparsity_params={"k": 6})
    sparseae.fit(sae, x[:1400], epochs=8, batch_size=64, progress=False)
    sae.eval()
    test = x[1400:]
    with torch.no_grad():
        own = float(((sae(test) - test) ** 2).mean())
    coder = DictionaryLearning.from_model(sae, transform_n_nonzero_coefs=6)
    codes = coder.transform(test.numpy())
    assert ((codes != 0).sum(1) <= 6).all()
    omp = float(((coder.inverse_transform(codes) - test.numpy()) ** 2).mean())
    assert omp < 0.9 * own


def test_arora_learner_delivers_the_l0_it_is_asked_for():
    x, _ = digits()
    for k in (4, 10):
        model = sparseae.NeuralSparseCoding(d_in=64, n_latents=96, target_l0=k)
        sparseae.fit(model, x[:1400], epochs=6, batch_size=64, progress=False)
        model.eval()
        with torch.no_grad():
            l0 = float((model.encode(x[1400:]) != 0).sum(1).float().mean())
        assert abs(l0 - k) <= 0.1 * k, (k, l0)
    # its atoms coded by OMP (around its data mean) beat its hard-thresholded codes
    test = x[1400:]
    with torch.no_grad():
        own = float(((model.decode(model.encode(test)) - test) ** 2).mean())
    coder = DictionaryLearning.from_components(
        model.filters().numpy(), offset=model.mean.numpy(), transform_n_nonzero_coefs=10
    )
    assert float(coder.reconstruction_error(test.numpy()).mean()) < own


def test_cli_encode_codes_a_saved_sae_by_omp(tmp_path, capsys):
    """``sparseae encode --algorithm omp``: same L0 as the model's own encoder, smaller
    reconstruction error of the test rows; an unknown model type for OMP is a one-line error."""
    from sparseae.cli import main

    x, _ = digits()
    sae = sparseae.SAE(d_in=64, n_latents=64, sparsity="topk", sparsity_params={"k": 5})
    sparseae.fit(sae, x[:1400], epochs=4, batch_size=64, progress=False)
    sparseae.save(sae, tmp_path / "sae")
    errors = {}
    for algorithm in ("encoder", "omp"):
        out = tmp_path / f"{algorithm}.npy"
        argv = ["encode", str(tmp_path / "sae"), "--dataset", "digits", "--out", str(out)]
        assert main([*argv, "--algorithm", algorithm, "--n-nonzero", "5"]) == 0
        codes = np.load(out)
        rows = np.load(tmp_path / f"{algorithm}_rows.npy")
        assert ((codes != 0).sum(1) <= 5).all()
        if algorithm == "omp":
            coder = DictionaryLearning.from_model(sae)
            recon = coder.inverse_transform(codes)
        else:
            recon = sae.decode(torch.tensor(codes, dtype=torch.float32)).detach().numpy()
        errors[algorithm] = float(((recon - x.numpy()[rows]) ** 2).mean())
    assert errors["omp"] < errors["encoder"]
    ae = sparseae.Autoencoder(d_in=64, hidden=[16], n_latents=8)
    sparseae.save(ae, tmp_path / "deep")
    capsys.readouterr()
    argv = [
        "encode",
        str(tmp_path / "deep"),
        "--dataset",
        "digits",
        "--out",
        str(tmp_path / "d.npy"),
    ]
    assert main([*argv, "--algorithm", "omp"]) == 2
    assert "has no linear dictionary" in capsys.readouterr().err
