"""The hand-derived MLP step must be autograd's step, only faster: same loss, same gradients,
same training; and it must step aside for every model it does not cover."""

import itertools

import pytest
import torch

import sparseae
from sparseae.models.autoencoder.fused_mlp import FusedMLPStep, supports
from sparseae.training.optim import LeanAdam
from sparseae.training.trainer import Trainer

from .helpers import digits

SPARSITY = {
    "none": ("relu", {}),
    "l1": ("relu", {"weight": 1e-2}),
    "kl": ("sigmoid", {"rho": 0.1, "weight": 0.05}),
    "topk": ("linear", {"k": 5}),
}
CASES = list(
    itertools.product(
        [False, True],  # tied
        ["gelu", "relu", "tanh", "sigmoid"],
        list(SPARSITY),
        ["bce", "mse"],
        ["none", "gaussian", "dropout"],
    )
)


def _model(tied, act, sparsity, loss, corruption="none", hidden=(24,), output="sigmoid"):
    code_act, params = SPARSITY[sparsity]
    torch.manual_seed(0)
    return sparseae.Autoencoder(
        d_in=64,
        hidden=list(hidden),
        n_latents=12,
        activation=act,
        code_activation=code_act,
        sparsity=sparsity,
        sparsity_params=params,
        loss=loss,
        output_activation=output,
        tied=tied,
        corruption=corruption,
    )


def _autograd_step(model, x, seed=1):
    torch.manual_seed(seed)  # the same corruption noise for both paths
    out = model.step(x)
    model.zero_grad(set_to_none=True)
    out.loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    return out, grads


def _assert_step_equals_autograd(model, x, loss_abs=None):
    """One hand-derived step against autograd's (same corruption noise): loss and every
    parameter's gradient; returns both outputs for further checks."""
    ref, ref_grads = _autograd_step(model, x)
    torch.manual_seed(1)
    out = FusedMLPStep(model).step(x)
    assert float(out.loss) == pytest.approx(float(ref.loss), rel=1e-12, abs=loss_abs)
    for (name, p), g in zip(model.named_parameters(), ref_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-13, msg=name)
    return out, ref


@pytest.mark.parametrize(("tied", "act", "sparsity", "loss", "corruption"), CASES)
def test_loss_and_every_gradient_equal_autograds(tied, act, sparsity, loss, corruption):
    x, _ = digits(48)
    model = _model(tied, act, sparsity, loss, corruption).double()
    out, ref = _assert_step_equals_autograd(model, x.double(), loss_abs=1e-14)
    for name in ("recon", "sparsity"):
        assert float(out.terms[name]) == pytest.approx(float(ref.terms[name]), abs=1e-13)
    torch.testing.assert_close(out.code, ref.code.detach(), rtol=0, atol=0)


def test_deep_and_linear_output_models_too():
    x, _ = digits(40)
    for model in (
        _model(False, "gelu", "kl", "bce", hidden=(48, 32, 20)),
        _model(True, "relu", "l1", "mse", hidden=(40, 20), output="linear"),
    ):
        _assert_step_equals_autograd(model.double(), x.double())


def test_kl_gradient_is_zero_where_the_batch_mean_is_clamped():
    # a code pinned at 0 for some latents: autograd's clamp passes no gradient there
    x, _ = digits(32)
    model = _model(False, "relu", "kl", "bce").double()
    with torch.no_grad():
        model.backbone.enc_biases[-1][:4] = -80.0  # sigmoid(-80) < eps: clamped
    _assert_step_equals_autograd(model, x.double())


def test_training_through_the_manual_step_matches_autograd_training():
    x, _ = digits()
    runs = {}
    for manual in (True, False):
        model = _model(False, "gelu", "kl", "bce", hidden=(32,))
        hist = sparseae.fit(
            model,
            x[:1000],
            x[1000:1200],
            epochs=3,
            batch_size=32,
            seed=0,
            manual_backward=manual,
            progress=False,
        )
        runs[manual] = (hist, [p.detach().clone() for p in model.parameters()])
    (h_fast, w_fast), (h_ref, w_ref) = runs[True], runs[False]
    assert h_fast["val_recon"][-1] < 0.9 * h_fast["val_recon"][0]  # it really trains
    for key in ("loss", "recon", "sparsity", "val_recon"):
        assert h_fast[key] == pytest.approx(h_ref[key], rel=1e-4), key
    for a, b in zip(w_fast, w_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_the_trainer_uses_it_only_where_it_is_exact():
    from sparseae.training.config import TrainConfig

    x, _ = digits(64)
    cfg = TrainConfig(epochs=1, device="cpu")
    mlp = _model(False, "gelu", "kl", "bce")
    assert supports(mlp) is None
    assert isinstance(mlp.fused_step(), FusedMLPStep)

    def fused_used(config):
        trainer = Trainer(mlp, config)
        trainer.fit(x)
        return trainer.fused

    assert isinstance(fused_used(cfg), FusedMLPStep)
    assert fused_used(cfg.replace(manual_backward=False)) is None

    class Custom(sparseae.Autoencoder):
        pass

    assert "plain Autoencoder" in supports(Custom(mlp.config), sparseae.Autoencoder)
    assert Custom(mlp.config).fused_step() is None  # a subclass may change the objective
    torch.manual_seed(0)
    conv = sparseae.Autoencoder(d_in=784, n_latents=576, backbone="conv", input_shape=(28, 28))
    assert "conv" in supports(conv)
    assert "elu" in supports(
        sparseae.Autoencoder(d_in=64, hidden=[8], n_latents=4, activation="elu")
    )
    btk = sparseae.Autoencoder(
        d_in=64,
        n_latents=16,
        code_activation="linear",
        sparsity="batchtopk",
        sparsity_params={"k": 4},
    )
    assert "batchtopk" in supports(btk)
    frozen = _model(False, "relu", "none", "mse")
    frozen.backbone.enc_weights[0].requires_grad_(False)
    assert supports(frozen) == "frozen parameters"
    with pytest.raises(ValueError, match="frozen"):
        FusedMLPStep(frozen)


def test_gradient_buffers_survive_zero_grad_and_new_storage():
    x, _ = digits(32)
    model = _model(False, "relu", "l1", "mse")
    step = FusedMLPStep(model)
    step.step(x)
    model.zero_grad(set_to_none=True)
    step.step(x)
    assert all(p.grad is not None for p in model.parameters())
    model.double()  # new storage: the step must follow it, not write into the old tensors
    ref, ref_grads = _autograd_step(model, x.double())
    step.step(x.double())
    for p, g in zip(model.parameters(), ref_grads, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_lean_adam_update_is_stock_adam():
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(3))]
    b = [torch.nn.Parameter(t.detach().clone()) for t in a]
    lean = LeanAdam(a, lr=1e-2, eps=1e-7)
    stock = torch.optim.Adam(b, lr=1e-2, eps=1e-7)
    for i in range(6):
        for pa, pb in zip(a, b, strict=True):
            g = torch.randn_like(pa) * (i + 1)
            pa.grad, pb.grad = g.clone(), g.clone()
        lean.update() if i % 2 else lean.step()  # both entry points, interleaved
        stock.step()
    for pa, pb in zip(a, b, strict=True):
        torch.testing.assert_close(pa, pb)
    steps = [float(s["step"]) for s in lean.state_dict()["state"].values()]
    assert steps == [6.0, 6.0]


def test_optimizer_hooks_still_run_during_training():
    x, _ = digits(256)
    model = _model(False, "relu", "none", "mse")
    calls = []

    class CountSteps(sparseae.Callback):
        def on_train_begin(self, trainer):
            trainer.optimizer.register_step_post_hook(lambda *_: calls.append(1))

    sparseae.fit(model, x, epochs=1, batch_size=64, callbacks=[CountSteps()], progress=False)
    assert len(calls) == 4
