import pytest
import torch

import sparseae
from sparseae.errors import ConfigError
from sparseae.sparsities import keras_kl_weight, make_sparsity, topk_mask

from .helpers import digits


def _train(model, epochs=15, batch_size=64, lr=3e-3):
    x, _ = digits()
    torch.manual_seed(0)
    sparseae.fit(model, x[:1400], epochs=epochs, batch_size=batch_size, lr=lr, progress=False)
    model.eval()
    with torch.no_grad():
        return model.encode(x[1400:])


def test_topk_keeps_exactly_k_in_training_and_alpha_k_at_inference():
    torch.manual_seed(0)
    model = sparseae.Autoencoder(
        d_in=64,
        n_latents=48,
        code_activation="linear",
        sparsity="topk",
        sparsity_params={"k": 5, "alpha": 2, "relu": False},
    )
    x, _ = digits(256)
    model.train()
    h = model.encode(x)
    assert ((h != 0).sum(dim=1) == 5).all()
    model.eval()
    h = model.encode(x)
    assert ((h != 0).sum(dim=1) == 10).all()


def test_topk_gradient_flows_only_through_kept_units():
    a = torch.randn(4, 10, requires_grad=True)
    h = topk_mask(a, 3)
    h.sum().backward()
    assert torch.equal(a.grad != 0, h != 0)
    assert ((a.grad != 0).sum(dim=1) == 3).all()


def test_kl_reaches_target_mean_activation_on_digits():
    torch.manual_seed(0)
    model = sparseae.Autoencoder(
        d_in=64,
        hidden=[64],
        n_latents=100,
        activation="relu",
        code_activation="sigmoid",
        loss="bce",
        sparsity="kl",
        sparsity_params={"rho": 0.05, "weight": 0.5},
    )
    h = _train(model, epochs=30)
    mean = h.mean().item()
    assert abs(mean - 0.05) < 0.02, mean


def test_l1_gives_more_exact_zeros_than_no_penalty():
    def zeros(sparsity, params):
        torch.manual_seed(1)
        model = sparseae.Autoencoder(
            d_in=64, hidden=[32], n_latents=32, sparsity=sparsity, sparsity_params=params
        )
        h = _train(model)
        return (h == 0).float().mean().item()

    plain = zeros("none", {})
    l1 = zeros("l1", {"weight": 3e-3})
    assert l1 > plain + 0.15, (plain, l1)


def test_kl_penalty_is_finite_when_activations_saturate():
    kl = make_sparsity("kl", 4, rho=0.1, weight=1.0)
    for h in (torch.zeros(8, 4), torch.ones(8, 4)):
        assert torch.isfinite(kl.penalty(h, h))


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("topk", {"k": 0}, "1 <= k <= n_latents"),
        ("topk", {"k": 11}, "1 <= k <= n_latents (10)"),
        ("kl", {"rho": 1.5}, "rho must lie strictly inside (0, 1)"),
        ("kl", {"rho": 0.0}, "rho must lie strictly inside (0, 1)"),
        ("kl", {"weight": -1.0}, "kl weight must be a finite number >= 0"),
        ("l1", {"weight": -0.1}, "l1 weight must be a finite number >= 0"),
        ("l1", {"rho": 0.1}, "takes no parameter rho"),
        ("bogus", {}, "unknown sparsity 'bogus': choose one of"),
    ],
)
def test_invalid_settings_raise_clear_errors(name, params, fragment):
    with pytest.raises(ConfigError) as err:
        make_sparsity(name, 10, **params)
    assert fragment in str(err.value)


def test_kl_refuses_a_code_outside_unit_interval():
    with pytest.raises(ConfigError, match="needs a code in \\(0, 1\\).*sigmoid"):
        sparseae.Autoencoder(d_in=8, n_latents=4, code_activation="relu", sparsity="kl")


def test_keras_weight_conversion_matches_document_003():
    assert keras_kl_weight(0.05, 32) == pytest.approx(0.0015625)


def test_lp_is_annealed_from_l1_towards_a_count_by_the_trainer():
    from sparseae.sparsities import make_sparsity

    h = torch.tensor([[0.0, 0.5, 2.0]])
    lp = make_sparsity("lp", 3, weight=1.0, p=1.0, p_end=0.05, anneal_steps=10)
    assert float(lp.penalty(h, h)) == pytest.approx(2.5, rel=1e-4)  # p = 1: the L1
    lp.on_step(10)
    assert float(lp.penalty(h, h)) == pytest.approx(2.0, abs=0.1)  # p -> 0: counts non-zeros
    x, _ = digits(512)
    torch.manual_seed(0)
    params = {"weight": 1e-3, "p_end": 0.5, "anneal_steps": 12}
    model = sparseae.SAE(d_in=64, n_latents=32, sparsity="lp", sparsity_params=params)
    seen = []

    class Spy(sparseae.Callback):
        def on_step_end(self, trainer, out):
            seen.append(model.sparsity.current_p)

    sparseae.fit(model, x, epochs=2, batch_size=32, callbacks=[Spy()])
    assert seen[0] == pytest.approx(1.0) and seen[-1] == pytest.approx(0.5)
    assert seen[6] == pytest.approx(0.75) and seen == sorted(seen, reverse=True)
