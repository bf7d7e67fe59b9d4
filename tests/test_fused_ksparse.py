"""The sparse k-sparse step must be autograd's step on the one-layer top-k autoencoder (the
paper's tied model and its untied twin), only faster: same loss, gradients, code and
reconstruction; the trainer must pick it, train with it exactly as through autograd, and
leave every model it does not cover to the other paths."""

import itertools

import pytest
import torch

import sparseae
from sparseae.models.autoencoder.fused_ksparse import KSparseStep, supports
from sparseae.models.autoencoder.fused_mlp import FusedMLPStep

from .helpers import digits

CASES = list(
    itertools.product(
        [True, False],  # tied
        [False, True],  # relu clamp on the kept values
        ["linear", "relu", "tanh"],  # code activation
        ["none", "gaussian"],  # corruption (the encoder sees it, the target is clean)
        [4, 20],  # k: a sparse code and a dense one (20 of 48)
    )
)


def _model(tied=True, relu=False, code_act="linear", corruption="none", k=4, **kw):
    torch.manual_seed(0)
    return sparseae.Autoencoder(
        d_in=64,
        n_latents=48,
        code_activation=code_act,
        sparsity="topk",
        sparsity_params={"k": k, "alpha": 2.0, "relu": relu},
        output_activation="linear",
        loss="mse",
        tied=tied,
        corruption=corruption,
        **kw,
    )


def _autograd(model, x):
    torch.manual_seed(1)  # the same corruption noise for both paths
    out = model.step(x)
    model.zero_grad(set_to_none=True)
    out.loss.backward()
    return out, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize(("tied", "relu", "code_act", "corruption", "k"), CASES)
def test_loss_gradients_code_and_reconstruction_equal_autograds(
    tied, relu, code_act, corruption, k
):
    x, _ = digits(40)
    model = _model(tied, relu, code_act, corruption, k).double()
    x = x.double()
    ref, ref_grads = _autograd(model, x)
    step = model.fused_step()
    assert isinstance(step, KSparseStep)
    torch.manual_seed(1)
    out = step.step(x)
    assert float(out.loss) == pytest.approx(float(ref.loss), rel=1e-12)
    for (name, p), g in zip(model.named_parameters(), ref_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-13, msg=name)
    torch.testing.assert_close(out.code.to_dense(), ref.code.detach(), rtol=0, atol=1e-15)
    torch.testing.assert_close(out.x_hat, ref.x_hat, rtol=1e-12, atol=1e-13)
    assert (out.code.to_dense() != 0).sum(1).le(k).all()
    assert out.code.is_coalesced()  # marked so, and truly so: coalescing changes nothing
    unmarked = torch.sparse_coo_tensor(out.code.indices(), out.code.values(), out.code.shape)
    assert not unmarked.is_coalesced()
    torch.testing.assert_close(out.code.indices(), unmarked.coalesce().indices(), rtol=0, atol=0)


def test_training_with_the_trainer_matches_autograd_and_the_loss_falls():
    """The paper's recipe in small (SGD with momentum, k warm-up, dead-latent resampling) on
    real digits, once through the sparse step and once through autograd: the same weights
    up to float32 rounding (1e-7 of their norm after 4 epochs)."""
    data = sparseae.load_dataset("digits")
    runs = {}
    for manual in (True, False):
        model = _model(tied=True, k=6)
        history = sparseae.fit(
            model,
            data.train.x,
            epochs=4,
            batch_size=32,
            optimizer="sgd",
            lr=0.5,
            sgd_momentum=0.9,
            k_start=24,
            sparsity_warmup=60,
            dead_after=200,
            resample_every=40,
            manual_backward=manual,
            progress=False,
            seed=0,
            num_threads=1,
        )
        runs[manual] = (model, history)
    fast, slow = runs[True][0], runs[False][0]
    for (name, p), q in zip(fast.named_parameters(), slow.parameters(), strict=True):
        assert float((p - q).norm() / q.norm()) < 1e-5, name  # float32 rounding apart
    losses = [r["loss"] for r in runs[True][1].records]
    assert losses[-1] < 0.6 * losses[0]


def test_models_it_does_not_cover_take_the_other_paths():
    assert supports(_model(), sparseae.Autoencoder) is None
    deep = _model(hidden=[24])
    assert "one-layer" in supports(deep, sparseae.Autoencoder)
    assert isinstance(deep.fused_step(), FusedMLPStep | type(None))
    assert "bce" not in (supports(_model(), sparseae.Autoencoder) or "")
    sigmoid_out = sparseae.Autoencoder(
        d_in=64, n_latents=48, sparsity="topk", sparsity_params={"k": 4}, loss="bce"
    )
    assert "linear with MSE" in supports(sigmoid_out, sparseae.Autoencoder)
    assert "not monotone" in supports(_model(code_act="gelu"), sparseae.Autoencoder)
    l1 = sparseae.Autoencoder(d_in=64, n_latents=48, sparsity="l1", output_activation="linear")
    assert "l1 sparsity" in supports(l1, sparseae.Autoencoder)

    class Custom(sparseae.Autoencoder):
        pass

    assert not isinstance(Custom(_model().config).fused_step(), KSparseStep)
