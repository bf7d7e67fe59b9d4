"""Gated SAE: the gate decides the support, the magnitude path the value, and the auxiliary
loss reaches the gate (not the frozen decoder); it trains through the train command."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import sparseae
from sparseae.cli import main
from sparseae.models import GatedSAE


def _data(n: int = 1024, d: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    atoms = F.normalize(torch.randn(48, d, generator=g), dim=1)
    on = torch.rand(n, 48, generator=g) < 0.06
    return (on * (torch.rand(n, 48, generator=g) + 0.5)) @ atoms + 1.0


def test_the_gate_decides_the_support_and_the_magnitude_the_value():
    torch.manual_seed(0)
    model = GatedSAE(d_in=16, n_latents=32)
    with torch.no_grad():
        model.b_gate.normal_()
        model.b_mag.normal_()
        model.r_mag.normal_(0, 0.5)
    x = _data(64)
    pi_gate, pi_mag = model._paths(x)
    h = model.code(x)
    open_ = pi_gate > 0
    assert torch.equal(h != 0, open_ & (pi_mag > 0))  # support: the gate (and relu(pi_mag))
    assert bool(((pi_mag > 0) & ~open_).any())  # some latents the magnitude alone would fire
    torch.testing.assert_close(h[open_], torch.relu(pi_mag)[open_])  # value: the magnitude


def test_the_auxiliary_loss_reaches_the_gate_and_not_the_decoder():
    torch.manual_seed(0)
    model = GatedSAE(d_in=16, n_latents=32)
    out = model.step(_data(64))
    grads = torch.autograd.grad(
        out.terms["gate_aux"], [model.b_gate, model.W_enc, model.W_dec, model.b_mag],
        allow_unused=True,
    )  # fmt: skip
    gate_b, w_enc, w_dec, b_mag = grads
    assert gate_b is not None and float(gate_b.abs().sum()) > 0
    assert w_enc is not None and float(w_enc.abs().sum()) > 0
    assert w_dec is None and b_mag is None  # frozen decoder, no magnitude path in the aux


def test_training_falls_and_sparsity_weight_lowers_l0(tmp_path, capsys):
    import numpy as np

    x = _data()
    l0 = {}
    for weight in (0.0, 0.05):
        torch.manual_seed(0)
        model = GatedSAE(d_in=16, n_latents=64, weight=weight)
        h = sparseae.fit(model, x, epochs=8, batch_size=64, lr=3e-3)
        assert h["recon"][-1] < h["recon"][0]
        with torch.no_grad():
            l0[weight] = float((model.encode(x) != 0).sum(1).float().mean())
    assert l0[0.05] < l0[0.0]
    np.save(tmp_path / "acts.npy", x.numpy())
    args = ["train", "--model", "gated-sae", "--dataset", str(tmp_path / "acts.npy"),
            "--scale", "none", "--n-latents", "32", "--weight", "0.01", "--epochs", "2",
            "--no-progress", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0
    loaded = sparseae.load(tmp_path / "run")
    assert isinstance(loaded, GatedSAE) and loaded.config.weight == pytest.approx(0.01)
    capsys.readouterr()
