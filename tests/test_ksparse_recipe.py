"""`linear_probe`: the probe of k-sparse codes (benchmarks/linear_probe_mnist.py), on real
digits codes of a small TopK SAE, in seconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparseae
from sparseae.apps.features import encode, linear_probe, linear_probe_accuracy


@pytest.fixture(scope="module")
def codes():
    torch.manual_seed(0)
    data = sparseae.load_dataset("digits")
    model = sparseae.SAE(
        d_in=data.d_in, n_latents=128, sparsity="topk", sparsity_params={"k": 6, "alpha": 2.0}
    )
    sparseae.fit(model, data.train.x, epochs=5, batch_size=64, progress=False, num_threads=1)
    return encode(model, data.train.x), data.train.y, encode(model, data.test.x), data.test.y


def test_sparse_codes_are_probed_as_csr_and_C_is_chosen_on_training_rows(codes):
    ctr, ytr, cte, yte = codes
    result = linear_probe(ctr, ytr, cte, yte, Cs=(0.01, 1.0, 100.0))
    assert result.sparse and not result.standardize
    assert set(result.val_accuracy) == {0.01, 1.0, 100.0}
    assert result.C == max(result.val_accuracy, key=result.val_accuracy.get)
    assert result.accuracy > 0.85  # 10 classes; chance is 0.1
    assert "C = " in result.settings() and "sparse CSR" in result.settings()
    # the choice never looks at the test labels: scrambling them leaves it unchanged
    scrambled = np.random.default_rng(0).permutation(yte)
    assert linear_probe(ctr, ytr, cte, scrambled, Cs=(0.01, 1.0, 100.0)).C == result.C


def test_csr_and_dense_probes_agree(codes):
    ctr, ytr, cte, yte = codes
    sparse = linear_probe(ctr, ytr, cte, yte)
    dense = linear_probe(ctr, ytr, cte, yte, standardize=True)
    assert sparse.sparse and not dense.sparse
    assert abs(sparse.accuracy - dense.accuracy) < 0.05
    assert linear_probe_accuracy(ctr, ytr, cte, yte) == pytest.approx(dense.accuracy, abs=0.02)


def test_a_held_out_split_needs_rows_on_both_sides(codes):
    ctr, ytr, cte, yte = codes
    with pytest.raises(sparseae.ConfigError, match="val_fraction"):
        linear_probe(ctr, ytr, cte, yte, Cs=(0.1, 1.0), val_fraction=0.0)
