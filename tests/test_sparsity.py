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


def test_lp_steps_p_down_and_rescales_so_the_penalty_keeps_its_magnitude():
    # stages of 2 steps from step 2 + 8/4 = 4 on: p 1, 0.8, 0.6, 0.4, then 0.2 from step 10
    lp = make_sparsity("lp", 3, weight=1.0, p_end=0.2, anneal_start=2, anneal_steps=8, stages=4)
    h = torch.tensor([[0.0, 0.05, 3.0], [0.2, 0.0, 0.01]])  # codes below and above 1
    lp.train()
    seen = []
    for step in range(12):
        lp.on_step(step)
        seen.append((lp.current_p, float(lp.penalty(h, h))))
    steps = [1, 1, 1, 1, 0.8, 0.8, 0.6, 0.6, 0.4, 0.4, 0.2, 0.2]
    assert [p for p, _ in seen] == pytest.approx(steps)
    # the same codes cost the same before and after each change of p: the coefficient took
    # the ratio of Lp^p at the old and the new exponent, so in all L1 / L0.2^0.2
    assert [v for _, v in seen] == pytest.approx([seen[0][1]] * 12, rel=1e-5)
    expected = float(h.sum() / h[h > 0].pow(0.2).sum())
    assert float(lp.scale) == pytest.approx(expected, rel=1e-5) and int(lp.stage_applied) == 4
    fixed = make_sparsity("lp", 3, weight=1.0, p_end=0.2, anneal_steps=8, stages=4, rescale=False)
    fixed.on_step(8)
    assert float(fixed.penalty(h, h)) == pytest.approx(seen[0][1] / expected)  # it drifts
    assert "scale" not in dict(fixed.named_buffers())


def test_lp_decoder_norm_prices_each_latent_with_its_atom():
    lp = make_sparsity("lp", 2, weight=1.0, p=0.5, decoder_norm=True)
    h, norms = torch.tensor([[4.0, 1.0]]), torch.tensor([0.25, 4.0])
    assert float(lp.penalty(h, h, norms)) == pytest.approx(1.0 + 2.0)  # sqrt(4/4) + sqrt(4)
    c = torch.tensor([3.0, 0.5])  # a latent scaled by c and its atom by 1/c: same price
    assert float(lp.penalty(h * c, h * c, norms / c)) == pytest.approx(3.0)
    assert lp.needs_atom_norms and not make_sparsity("lp", 2).needs_atom_norms
    with pytest.raises(ConfigError, match="decoder_norm.*linear dictionary"):
        lp.penalty(h, h)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"stages": 0}, "lp stages must be an integer >= 1"),
        ({"anneal_start": -1}, "lp anneal_start must be an integer >= 0"),
        ({"rescale": "yes"}, "lp rescale must be true or false"),
        ({"p_end": 0.0}, "lp p_end must lie in (0, 1]"),
    ],
)
def test_lp_refuses_bad_schedules(params, fragment):
    with pytest.raises(ConfigError) as err:
        make_sparsity("lp", 4, **params)
    assert fragment in str(err.value)


@pytest.mark.parametrize("p", [1.0, 0.5, 0.2])
def test_the_lp_power_sum_has_autograds_value_and_gradient(p):
    """The hand-written |h|^p sum against the expression autograd differentiates, at zeros,
    below and at eps, and above."""
    from sparseae.sparsities.lp import _PowerSum

    eps = 1e-4
    torch.manual_seed(0)
    m = torch.rand(64, 40) * torch.randint(0, 2, (64, 40))  # half exact zeros
    m[0, :4] = torch.tensor([eps / 2, eps, 2 * eps, 0.0])
    a = m.clone().requires_grad_(True)
    want = torch.where(a > 0, a.clamp_min(eps).pow(p), 0.0).sum()
    (g_want,) = torch.autograd.grad(want, a)
    b = m.clone().requires_grad_(True)
    got = _PowerSum.apply(b, p, eps)
    (g_got,) = torch.autograd.grad(got, b)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(g_got, g_want)
