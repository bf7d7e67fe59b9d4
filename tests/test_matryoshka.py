"""Matryoshka SAE: every prefix's reconstruction is in the loss, and the prefixes' errors
fall with their size; it trains through the one train command and reloads exactly."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import sparseae
from sparseae.cli import main
from sparseae.errors import ConfigError
from sparseae.models import MatryoshkaSAE


def _data(n: int = 2048, d: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    atoms = F.normalize(torch.randn(64, d, generator=g), dim=1)
    freq = torch.linspace(3.0, 0.05, 64)  # a few common features, many rare ones
    on = torch.rand(n, 64, generator=g) < freq / 8
    return (on * (torch.rand(n, 64, generator=g) + 0.5)) @ atoms


@pytest.mark.parametrize("sparse", [True, False])
def test_every_prefix_reconstruction_is_in_the_loss(sparse):
    torch.manual_seed(0)
    model = MatryoshkaSAE(d_in=16, n_latents=64, sparsity_params={"k": 4}, widths=(8, 24),
                          sparse_decode=sparse)  # fmt: skip
    x = _data(64)
    out = model.step(x)
    assert set(out.terms) == {"recon", "sparsity", "prefix_8", "prefix_24"}
    total = out.terms["recon"] + out.terms["prefix_8"] + out.terms["prefix_24"]
    torch.testing.assert_close(out.loss, total)
    # the 8-prefix term reaches exactly the first 8 atoms
    (grad,) = torch.autograd.grad(out.terms["prefix_8"], model.W_dec)
    touched = grad.abs().sum(1) > 0
    assert bool(touched[:8].any()) and not bool(touched[8:].any())


def test_the_prefixes_errors_fall_with_their_size_and_beat_a_plain_sae_prefix():
    x = _data()
    torch.manual_seed(0)
    model = MatryoshkaSAE(d_in=16, n_latents=64, sparsity_params={"k": 4}, widths=(4, 16))
    sparseae.fit(model, x, epochs=15, batch_size=128, lr=3e-3)
    model.eval()
    with torch.no_grad():
        code = model.code(x)
        errors = [float(F.mse_loss(r, x)) for r in model.prefix_reconstructions(code)]
        errors.append(float(F.mse_loss(model.decode(code), x)))
    assert errors == sorted(errors, reverse=True) and errors[0] > errors[-1]
    torch.manual_seed(0)
    plain = sparseae.SAE(d_in=16, n_latents=64, sparsity="batchtopk", sparsity_params={"k": 4})
    sparseae.fit(plain, x, epochs=15, batch_size=128, lr=3e-3)
    plain.eval()
    with torch.no_grad():
        h = plain.code(x)
        plain_first4 = float(F.mse_loss(h[:, :4] @ plain.W_dec[:4] + plain.b_dec, x))
    assert errors[0] < plain_first4  # only the Matryoshka makes its first latents count


def test_it_trains_through_the_train_command_and_reloads(tmp_path, capsys):
    import numpy as np

    np.save(tmp_path / "acts.npy", _data(600).numpy())
    args = ["train", "--model", "matryoshka-sae", "--dataset", str(tmp_path / "acts.npy"),
            "--scale", "none", "--n-latents", "64", "--widths", "8,24", "--k", "4",
            "--epochs", "2", "--no-progress", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(args) == 0
    model = sparseae.load(tmp_path / "run")
    assert isinstance(model, MatryoshkaSAE) and model.config.widths == (8, 24)
    history = sparseae.read_history(tmp_path / "run")
    assert "prefix_8" in history[-1]
    capsys.readouterr()


def test_bad_widths_are_refused():
    with pytest.raises(ConfigError, match="increase strictly"):
        MatryoshkaSAE(d_in=4, n_latents=16, widths=(8, 4))
    with pytest.raises(ConfigError, match="needs widths"):
        MatryoshkaSAE(d_in=4, n_latents=16)
