"""Evaluation the way the field does it: statistics that mean what they say, and the
downstream loss with an SAE spliced into a real network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import sparseae
from sparseae.apps.classifier import train_classifier
from sparseae.apps.sae_eval import accuracy_error, cross_entropy, evaluate_dictionary, splice_eval
from sparseae.cli import main
from sparseae.data.activations import extract_activations

from .helpers import digits


def _identity_sae(d: int) -> sparseae.SAE:
    """A relu dictionary that reconstructs non-negative inputs exactly."""
    sae = sparseae.SAE(d_in=d, n_latents=d, sparsity="none")
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(d))
        sae.W_dec.copy_(torch.eye(d))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


def test_statistics_of_a_perfect_and_a_trained_dictionary():
    x = torch.rand(500, 12)
    perfect = evaluate_dictionary(_identity_sae(12), x)
    assert perfect["fvu"] == pytest.approx(0.0, abs=1e-10) and perfect["rows"] == 500
    assert perfect["cosine"] == pytest.approx(1.0) and perfect["dead_latents"] == 0
    zero = _identity_sae(12)
    with torch.no_grad():
        zero.W_dec.zero_()
        zero.b_dec.copy_(x.mean(0))  # predicts the mean: explains no variance
    assert evaluate_dictionary(zero, x)["fvu"] == pytest.approx(1.0, rel=1e-5)
    torch.manual_seed(0)
    sae = sparseae.SAE(d_in=12, n_latents=48, sparsity_params={"k": 3})
    sparseae.fit(sae, x, epochs=5, batch_size=64)
    r = evaluate_dictionary(sae, x, max_rows=300)
    assert r["rows"] == 300 and r["l0"] == pytest.approx(3.0)
    assert 0 < r["fvu"] < 1 and r["explained_variance"] == pytest.approx(1 - r["fvu"])
    assert r["dead_latents"] == int((r["firing"] == 0).sum())


@pytest.fixture(scope="module")
def classifier():
    x, y = digits()
    clf = train_classifier(x[:1200], y[:1200], epochs=3, seed=0, hidden=(32, 16))
    batches = [(x[i : i + 200], y[i : i + 200]) for i in range(1200, 1797, 200)]
    return clf, batches


def test_an_identity_sae_recovers_all_of_the_loss_and_zeros_equal_zero_ablation(classifier):
    clf, batches = classifier
    full = splice_eval(clf, "act2", batches, _identity_sae(16), cross_entropy)
    assert full["spliced"] == pytest.approx(full["clean"], abs=1e-6)
    assert full["recovered_vs_zero"] == pytest.approx(1.0, abs=1e-6)
    assert full["recovered_vs_mean"] == pytest.approx(1.0, abs=1e-6)
    zero = _identity_sae(16)
    with torch.no_grad():
        zero.W_dec.zero_()
    none = splice_eval(clf, "act2", batches, zero, cross_entropy)
    assert none["spliced"] == pytest.approx(none["zero"], abs=1e-6)
    assert none["recovered_vs_zero"] == pytest.approx(0.0, abs=1e-6)


def test_a_trained_sae_recovers_most_of_the_classifiers_accuracy(classifier):
    clf, batches = classifier
    x, _ = digits()
    acts = extract_activations(clf, "act2", x[:1200]).x
    torch.manual_seed(0)
    sae = sparseae.SAE(d_in=16, n_latents=64, sparsity_params={"k": 4})
    sparseae.fit(sae, acts, epochs=20, batch_size=64, lr=3e-3)
    r = splice_eval(clf, "act2", batches, sae, accuracy_error)
    # the fixture's classifier is weak (about 77% error on these rows), so a good SAE may
    # land a hair either side of it; it must be far better than mean ablation
    assert r["clean"] - 0.01 < r["spliced"] < r["mean"]
    assert 0.5 < r["recovered_vs_mean"] <= 1.05


def test_the_evaluate_command_compares_models_on_the_same_rows(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "acts.npy", rng.random((400, 12)).astype(np.float32))
    for name in ("a", "b"):
        torch.manual_seed(len(name))
        sae = sparseae.SAE(d_in=12, n_latents=24, sparsity_params={"k": 2 if name == "a" else 6})
        sparseae.save(sae, tmp_path / name)
    out = tmp_path / "eval"
    code = main(["evaluate", str(tmp_path / "a"), str(tmp_path / "b"), "--dataset",
                 str(tmp_path / "acts.npy"), "--out", str(out)])  # fmt: skip
    assert code == 0
    assert "fvu" in capsys.readouterr().out
    results = json.loads((out / "eval.json").read_text())
    assert [r["rows"] for r in results] == [400, 400]
    assert [round(r["l0"]) for r in results] == [2, 6]
    assert (out / "firing_0.png").is_file() and (out / "firing_1.png").is_file()


def test_the_dashboard_panel_shows_the_numbers_and_the_histogram(tmp_path):
    from sparseae.report import dashboard

    x = torch.rand(200, 12)
    result = evaluate_dictionary(_identity_sae(12), x)
    result["recovered_vs_mean"] = 0.987
    panel = dashboard.evaluation_panel(result, "identity dictionary")
    assert "FVU" in panel and "0.987" in panel and "data:image/png;base64," in panel
    page = dashboard.write_page(tmp_path / "d.html", "t", [panel])
    assert "identity dictionary" in page.read_text()
