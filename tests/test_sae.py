"""SAE dictionaries: each sparsity's defining property, sparse == dense, training tricks."""

from __future__ import annotations

import pytest
import torch

import sparseae
from sparseae.models.sae.config import SAEConfig
from sparseae.models.sae.model import SAE
from sparseae.sparsities import make_sparsity
from sparseae.training.config import TrainConfig
from sparseae.training.dictionary import (
    AuxK,
    DeadLatents,
    ResampleDeadLatents,
    geometric_median,
    init_decoder_bias,
    remove_parallel_grad,
)
from sparseae.training.trainer import Trainer


def input_scale(x):
    """The s with E||s x||^2 = d_in (SAELens' normalisation)."""
    return float((x.shape[1] / x.pow(2).sum(1).mean()).sqrt())


def _dictionary_data(n: int = 1024, d: int = 32, atoms: int = 48, k: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    dic = torch.randn(atoms, d, generator=g)
    dic /= dic.norm(dim=1, keepdim=True)
    idx = torch.randint(0, atoms, (n, k), generator=g)
    coef = torch.rand(n, k, generator=g) + 0.5
    x = torch.einsum("nk,nkd->nd", coef, dic[idx]) + 0.02 * torch.randn(n, d, generator=g)
    return x + 3.0  # an offset, so the decoder bias has something to learn


def test_batchtopk_keeps_k_times_batch_in_training_and_uses_threshold_in_eval():
    s = make_sparsity("batchtopk", 64, k=5)
    a = torch.randn(16, 64).abs() + 0.1  # all positive: relu removes none of the kept
    h = s(a)
    assert int((h != 0).sum()) == 5 * 16
    assert not torch.equal((h != 0).sum(1), torch.full((16,), 5))  # varies per sample
    theta = float(s.threshold)
    assert theta > 0
    s.eval()
    b = torch.randn(4, 64)
    torch.testing.assert_close(s(b), b * (b > theta))


def test_jumprelu_gradient_reaches_threshold():
    torch.manual_seed(0)
    s = make_sparsity("jumprelu", 32, weight=1.0, bandwidth=0.5, threshold_init=0.5)
    a = torch.randn(64, 32, requires_grad=True)
    h = s(a)
    (h.pow(2).sum() + s.penalty(a, h)).backward()
    assert s.log_threshold.grad is not None
    assert int((s.log_threshold.grad != 0).sum()) > 16
    assert torch.equal(h != 0, a.detach() > s.theta.detach())


def test_jumprelu_l0_penalty_raises_threshold_and_lowers_l0():
    x = _dictionary_data(n=512)

    def train(weight: float) -> tuple[float, float]:
        torch.manual_seed(0)
        params = {"weight": weight, "bandwidth": 0.5, "threshold_init": 0.1}
        model = SAE(d_in=32, n_latents=64, sparsity="jumprelu", sparsity_params=params)
        sparseae.fit(model, x, epochs=10, batch_size=64, lr=2e-2, progress=False)
        with torch.no_grad():
            l0 = float((model.encode(x) != 0).sum(1).float().mean())
            return l0, float(model.sparsity.theta.mean())

    (l0_free, theta_free), (l0_pen, theta_pen) = train(0.0), train(0.3)
    assert theta_pen > 2 * theta_free, (theta_free, theta_pen)
    assert l0_pen < l0_free, (l0_free, l0_pen)


@pytest.mark.parametrize("sparsity", ["topk", "batchtopk"])
def test_sparse_path_equals_dense_path(sparsity):
    torch.manual_seed(0)
    cfg = SAEConfig(d_in=24, n_latents=96, sparsity=sparsity, sparsity_params={"k": 6})
    x = torch.randn(40, 24)
    grads, losses, codes = [], [], []
    for sparse in (True, False):
        torch.manual_seed(1)
        model = SAE(cfg.replace(sparse_decode=sparse))
        with torch.no_grad():
            model.b_dec.normal_()
        assert model.uses_sparse_path is sparse
        dead = DeadLatents(96, dead_after=1)
        dead.since_fired[::3] = 5.0  # a third of the latents count as dead
        out = AuxK(dead, k=16, weight=1 / 32)(model, x, model.step(x))
        out.loss.backward()
        losses.append(out.loss.detach())
        codes.append(out.code.to_dense() if out.code.is_sparse else out.code)
        grads.append({n: p.grad for n, p in model.named_parameters()})
        assert "aux" in out.terms
    torch.testing.assert_close(losses[0], losses[1])
    torch.testing.assert_close(codes[0], codes[1].detach())
    for name in grads[1]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4)


def test_unit_norm_decoder_projected_gradient_and_norms():
    torch.manual_seed(0)
    x = _dictionary_data(n=256)
    model = SAE(d_in=32, n_latents=64, sparsity="topk", sparsity_params={"k": 4})
    model.step(x).loss.backward()
    remove_parallel_grad(model.decoder_atoms())
    parallel = (model.W_dec.grad * model.W_dec).sum(1).detach() / model.W_dec.norm(dim=1).detach()
    assert float(parallel.abs().max()) < 1e-6
    sparseae.fit(model, x, epochs=3, batch_size=64, lr=1e-2, progress=False)  # SAE default
    torch.testing.assert_close(model.W_dec.norm(dim=1), torch.ones(64))
    free = SAE(d_in=32, n_latents=64, sparsity="topk", sparsity_params={"k": 4})
    sparseae.fit(free, x, epochs=3, batch_size=64, lr=1e-2, unit_norm_decoder=False)
    assert float((free.W_dec.norm(dim=1) - 1).abs().max()) > 1e-3


def test_auxk_trains_only_dead_latents_to_explain_the_residual():
    torch.manual_seed(0)
    x = _dictionary_data(n=2048, atoms=256, k=4)
    model = SAE(
        d_in=32, n_latents=512, sparsity="topk", sparsity_params={"k": 4}, encoder_init_norm=1.0
    )  # AuxK mechanics, measured from unit-norm encoder rows
    cfg = TrainConfig(epochs=6, batch_size=128, lr=3e-3, b_dec_init="mean", dead_after=256, aux_k=4)
    trainer = Trainer(model, cfg, progress=False)
    history = trainer.fit(x)
    aux = history["aux"]
    assert aux[-1] < 0.6 * aux[0], aux  # the dead latents learn the residual
    model.train()
    out = trainer.aux(model, x[:256], model.step(x[:256]))
    dead = trainer.aux.dead.mask()
    assert 0 < int(dead.sum()) < model.n_latents
    (grad_dec,) = torch.autograd.grad(out.terms["aux"], model.W_dec)
    touched = grad_dec.abs().sum(1) > 0
    assert bool(touched.any()) and not bool((touched & ~dead).any())


def test_geometric_median_is_robust_and_sets_decoder_bias():
    torch.manual_seed(0)
    x = torch.randn(200, 5) * 0.1 + 1.0
    x[:20] += 100.0  # outliers drag the mean, not the median
    gm = geometric_median(x)
    assert float((gm - 1.0).abs().max()) < 0.1
    assert float((x.mean(0) - 1.0).abs().max()) > 5
    model = SAE(d_in=5, n_latents=8, sparsity="topk", sparsity_params={"k": 2})
    init_decoder_bias(model, x, "geometric_median")
    torch.testing.assert_close(model.b_dec.detach(), gm)
    with pytest.raises(sparseae.errors.ConfigError, match="geometric_median"):
        init_decoder_bias(model, x, "median")


@pytest.mark.parametrize("sparsity", ["topk", "batchtopk", "jumprelu"])
def test_input_normalisation_kept_or_folded_takes_raw_inputs(tmp_path, sparsity):
    torch.manual_seed(0)
    x = _dictionary_data(n=512) * 7.0
    s = input_scale(x)
    assert abs(float((x * s).pow(2).sum(1).mean()) - 32) < 1e-2
    params = {"k": 4} if sparsity != "jumprelu" else {"threshold_init": 0.1}
    model = SAE(d_in=32, n_latents=64, sparsity=sparsity, sparsity_params=params)
    sparseae.fit(model, x * s, epochs=2, batch_size=64, progress=False)
    model.input_transform.set(0.0, s)  # the model carries the scaling it was trained with
    model.eval()
    with torch.no_grad():
        expected = model.decode(model.code(x * s)) / s
        torch.testing.assert_close(model(x), expected, atol=1e-4, rtol=1e-4)
        sparseae.save(model, tmp_path / "kept")
        torch.testing.assert_close(sparseae.load(tmp_path / "kept")(x), expected)
        sparseae.save(model.fold_input_transform(), tmp_path / "folded")
        loaded = sparseae.load(tmp_path / "folded")
        assert not loaded.input_transform.active
        torch.testing.assert_close(loaded(x), expected, atol=1e-4, rtol=1e-4)


def test_save_load_exact(tmp_path):
    torch.manual_seed(0)
    x = _dictionary_data(n=256)
    model = SAE(d_in=32, n_latents=64, sparsity="batchtopk", sparsity_params={"k": 4})
    sparseae.fit(model, x, epochs=2, batch_size=64, progress=False, dead_after=100, aux_k=8)
    sparseae.save(model, tmp_path / "m")
    loaded = sparseae.load(tmp_path / "m")
    assert isinstance(loaded, SAE) and loaded.config == model.config
    model.eval()
    assert float(loaded.sparsity.threshold) == float(model.sparsity.threshold) > 0
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_k_warmup_and_resampling_callbacks():
    torch.manual_seed(0)
    x = _dictionary_data(n=512)
    model = SAE(d_in=32, n_latents=128, sparsity="topk", sparsity_params={"k": 4})
    seen = []

    class Spy(sparseae.Callback):
        def on_step_end(self, trainer, out):
            seen.append(model.sparsity.k)

    cfg = TrainConfig(
        epochs=2, batch_size=64, dead_after=64, resample_every=4, sparsity_warmup=8, k_start=16
    )
    trainer = Trainer(model, cfg, callbacks=[Spy()], progress=False)
    trainer.fit(x)
    assert seen[0] < 16 and seen[0] > 4 and seen[-1] == 4
    assert seen == sorted(seen, reverse=True)
    (resample,) = [cb for cb in trainer.callbacks if isinstance(cb, ResampleDeadLatents)]
    assert resample.resampled > 0


def test_bad_config_errors():
    with pytest.raises(sparseae.errors.ConfigError, match="dead_after"):
        TrainConfig(aux_k=4)
    with pytest.raises(sparseae.errors.ConfigError, match="no linear dictionary"):
        Trainer(
            sparseae.Autoencoder(d_in=4, hidden=[6], n_latents=3),
            TrainConfig(dead_after=9, aux_k=2),
        )
    with pytest.raises(sparseae.errors.ConfigError, match="k <= n_latents"):
        SAE(d_in=4, n_latents=8, sparsity="batchtopk", sparsity_params={"k": 9})
    with pytest.raises(sparseae.errors.ConfigError, match="bandwidth"):
        make_sparsity("jumprelu", 8, bandwidth=0)


def test_train_sae_cli_and_firing_histogram(tmp_path, capsys):
    import numpy as np

    from sparseae.cli import main
    from sparseae.metrics import SparsityStats
    from sparseae.report.figures import firing_frequency_histogram

    np.save(tmp_path / "acts.npy", _dictionary_data(n=1200).numpy())
    args = ["train-sae", "--dataset", str(tmp_path / "acts.npy"), "--scale", "none"]
    args += ["--n-latents", "64", "--sparsity", "batchtopk", "--k", "4", "--normalize"]
    args += ["--dead-after", "500", "--aux-k", "8", "--epochs", "2", "--batch-size", "64"]
    args += ["--no-progress", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "fve" in out and "dead_latents" in out and (tmp_path / "run" / "firing.png").is_file()
    model = sparseae.load(tmp_path / "run")
    assert isinstance(model, SAE)
    assert main(args[:-2] + ["--bandwidth", "0.1", "--out", str(tmp_path / "x")]) == 2
    assert "does not apply" in capsys.readouterr().err
    stats = SparsityStats(64)
    with torch.no_grad():
        stats.update(model.encode(_dictionary_data(n=300)))
    freq = stats.firing_frequency()
    png, counts = firing_frequency_histogram(freq, tmp_path / "freq.png")
    assert png.is_file()
    assert int(counts.sum()) == int((freq > 0).sum()) > 0  # every alive latent drawn once


@pytest.mark.parametrize("sparsity", ["topk", "jumprelu"])
def test_bf16_autocast_step_trains_close_to_fp32(sparsity):
    # the CUDA path's autocast, exercised on CPU (the same code with device_type "cpu")
    x = _dictionary_data(n=512)
    params = {"k": 4} if sparsity == "topk" else {"threshold_init": 0.1}
    losses = []
    for bf16 in (False, True):
        torch.manual_seed(0)
        model = SAE(d_in=32, n_latents=64, sparsity=sparsity, sparsity_params=params, bf16=bf16)
        history = sparseae.fit(model, x, epochs=3, batch_size=64, progress=False)
        assert history["loss"][-1] < history["loss"][0]
        losses.append(history["loss"][-1])
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert abs(losses[1] - losses[0]) < 0.1 * losses[0], losses
