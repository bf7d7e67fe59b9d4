"""The SAE's fast paths against plain autograd on small sizes: the fused sparse step
(`SAEFusedStep`), the CSR kernels (`SparseDecode`, `GatherEncode`'s weight gradient), the
in-place parallel-gradient removal and AuxK's dead-column top-k."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

import sparseae
from sparseae.models.base import Atoms
from sparseae.models.sae import SAE, SAEConfig, kernels
from sparseae.training.dictionary import dead_topk, remove_parallel_grad


def _model(sparsity: str, act: str, tied: bool) -> SAE:
    torch.manual_seed(0)
    m = SAE(d_in=24, n_latents=96, sparsity=sparsity, sparsity_params={"k": 5},
            code_activation=act, tied_init=tied)  # fmt: skip
    with torch.no_grad():
        m.b_dec.normal_()
        m.b_enc.normal_(std=0.1)
    return m


def _plain_loss(m: SAE, x: torch.Tensor) -> torch.Tensor:
    """The SAE objective written densely, autograd for everything."""
    pre = (x - m.b_dec) @ m.W_enc + m.b_enc
    rows, cols = m.sparsity.support(pre.detach())
    h = torch.zeros_like(pre).index_put(
        (rows, cols), m.sparsity.kept_values(m.code_act(pre[rows, cols]))
    )
    return F.mse_loss(h @ m.W_dec + m.b_dec, x)


@pytest.mark.parametrize("sparsity,act,tied", [("topk", "relu", True), ("topk", "tanh", False),
                                               ("batchtopk", "relu", False)])  # fmt: skip
def test_the_fused_step_gives_autograds_loss_and_gradients(sparsity, act, tied):
    m = _model(sparsity, act, tied)
    ref = copy.deepcopy(m)
    x = torch.randn(37, 24)
    fused = m.fused_step()
    assert fused is not None
    for p in m.parameters():  # garbage in the buffers must not leak into the gradients
        p.grad = torch.full_like(p, float("nan"))
    out = fused.step(x)
    loss = _plain_loss(ref, x)
    loss.backward()
    torch.testing.assert_close(out.loss, loss.detach())
    for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name, atol=1e-6, rtol=1e-5)
    assert out.code.is_sparse and out.x_hat.shape == x.shape


def test_the_fused_step_reuses_its_buffers_and_rebuilds_after_a_move():
    m = _model("topk", "relu", True)
    fused = m.fused_step()
    x = torch.randn(16, 24)
    fused.step(x)
    grads = [p.grad for p in m.parameters()]
    for p in m.parameters():
        p.grad = None
    fused.step(x)
    assert all(p.grad is g for p, g in zip(m.parameters(), grads, strict=True))
    m.double()
    fused.step(x.double())
    assert all(p.grad.dtype == torch.float64 for p in m.parameters())


def test_no_fused_step_where_it_would_not_be_exact():
    assert SAE(d_in=8, n_latents=32, sparsity="l1").fused_step() is None  # dense path
    assert SAE(d_in=8, n_latents=32, bf16=True).fused_step() is None
    m = SAE(d_in=8, n_latents=32)
    m.b_dec.requires_grad_(False)
    assert m.fused_step() is None


@pytest.mark.parametrize("auxk", [{}, {"dead_after": 64, "aux_k": 8}])
def test_training_through_the_fused_step_equals_training_through_autograd(auxk):
    x = torch.randn(512, 24)
    runs, histories = [], []
    for manual in (True, False):
        m = _model("topk", "relu", True)
        histories.append(sparseae.fit(m, x, epochs=2, batch_size=64, manual_backward=manual,
                                      progress=False, **auxk))  # fmt: skip
        runs.append(m)
    if auxk:  # dead latents were found and AuxK trained them, the same on both paths
        assert histories[0]["aux"][-1] > 0
        assert histories[0]["aux"] == pytest.approx(histories[1]["aux"], rel=1e-4)
    for p, q in zip(runs[0].parameters(), runs[1].parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4)


def test_sparse_decode_and_the_encoder_weight_gradient_match_dense_autograd():
    torch.manual_seed(1)
    batch, n, d, k = 9, 40, 7, 3
    cols = torch.stack([torch.randperm(n)[:k] for _ in range(batch)]).reshape(-1)
    rows = torch.arange(batch).repeat_interleave(k)
    vals = torch.randn(batch * k, requires_grad=True)
    atoms = torch.randn(n, d, requires_grad=True)
    out = kernels.sparse_decode(rows, cols, vals, atoms, batch)
    h = torch.zeros(batch, n).index_put((rows, cols), vals)
    torch.testing.assert_close(out, h @ atoms)
    g = torch.randn(batch, d)
    got = torch.autograd.grad(out, (vals, atoms), g)
    want = torch.autograd.grad(h @ atoms, (vals, atoms), g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
    xc = torch.randn(batch, d)
    gv = torch.randn(batch * k)
    dense = torch.zeros(batch, n).index_put((rows, cols), gv)
    torch.testing.assert_close(kernels.encoder_weight_grad(rows, cols, gv, xc, n), xc.t() @ dense)


@pytest.mark.parametrize("transposed", [False, True])
def test_the_in_place_parallel_gradient_removal_is_the_projection(transposed):
    torch.manual_seed(2)
    w, g = torch.randn(30, 6) * 3, torch.randn(30, 6)
    unit = w / w.norm(dim=1, keepdim=True)
    want = g - (g * unit).sum(1, keepdim=True) * unit
    p = torch.nn.Parameter(w.t().clone() if transposed else w.clone())
    p.grad = g.t().clone() if transposed else g.clone()
    remove_parallel_grad(Atoms(p, None, transposed))
    torch.testing.assert_close(p.grad.t() if transposed else p.grad, want)


def test_auxks_dead_column_topk_is_the_masked_topk():
    torch.manual_seed(3)
    pre = torch.randn(11, 50)
    dead = torch.rand(50) < 0.4
    got = dead_topk(pre, dead, 4)
    want = pre.masked_fill(~dead, float("-inf")).topk(4, dim=-1).indices
    assert torch.equal(got.sort(1).values, want.sort(1).values)
    assert torch.equal(dead_topk(pre, torch.ones(50, dtype=torch.bool), 4).sort(1).values,
                       pre.topk(4, dim=-1).indices.sort(1).values)  # fmt: skip


def test_an_old_config_without_the_encoder_init_norm_loads():
    old = {
        "d_in": 8,
        "n_latents": 16,
        "sparsity": "topk",
        "sparsity_params": {},
        "code_activation": "relu",
        "tied_init": True,
        "sparse_decode": True,
        "bf16": False,
    }
    assert SAEConfig.from_dict(old).encoder_init_norm == 1.0  # fmt: skip
    m = SAE(d_in=8, n_latents=64, sparsity_params={"k": 4}, encoder_init_norm=0.5)
    torch.testing.assert_close(m.W_enc.norm(dim=0), torch.full((64,), 0.5))


@pytest.mark.parametrize("act,relu,n,dead_every,aux_k,kinds", [
    # the kept entries as CSR products, the dead latents' as a dense block, and the reverse
    ("relu", True, 96, 3, 16, ["SparseEntries", "BlockEntries"]),
    ("tanh", True, 96, 3, 16, ["SparseEntries", "BlockEntries"]),
    ("linear", False, 96, 3, 16, ["SparseEntries", "BlockEntries"]),
    ("relu", True, 24, 1, 1, ["BlockEntries", "SparseEntries"]),  # every latent dead
])  # fmt: skip
def test_the_fused_step_with_auxk_gives_autograds_loss_and_gradients(
    act, relu, n, dead_every, aux_k, kinds, monkeypatch
):
    import sparseae.models.sae.fused as fused_module
    from sparseae.training.dictionary import AuxK, DeadLatents

    torch.manual_seed(0)
    m = SAE(d_in=24, n_latents=n, sparsity="topk",
            sparsity_params={"k": 5, "relu": relu}, code_activation=act)  # fmt: skip
    with torch.no_grad():
        m.b_dec.normal_()
        m.b_enc.normal_(std=0.1)
    ref = copy.deepcopy(m)
    dead = DeadLatents(n, dead_after=1)
    dead.since_fired[::dead_every] = 5.0
    aux = AuxK(dead, k=aux_k, weight=1 / 32)
    used, build = [], fused_module.code_entries
    monkeypatch.setattr(fused_module, "code_entries",
                        lambda *a: used.append(build(*a)) or used[-1])  # fmt: skip
    x = torch.randn(37, 24)
    out = m.fused_step().step(x, aux)
    assert [type(e).__name__ for e in used] == kinds
    want = aux(ref, x, ref.step(x))
    want.loss.backward()
    assert float(out.terms["aux"]) > 0
    torch.testing.assert_close(out.terms["aux"], want.terms["aux"].detach())
    torch.testing.assert_close(out.loss, want.loss.detach())
    for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name, atol=1e-6, rtol=1e-5)


def test_auxk_uses_the_models_own_code_a_linear_code_revives_through_negative_values():
    """With a linear k-sparse code the dead latents' AuxK values are their raw pre-activations
    (a fixed ReLU would zero the negative ones and revive nothing there)."""
    from sparseae.training.dictionary import AuxK, DeadLatents

    torch.manual_seed(0)
    m = SAE(d_in=24, n_latents=96, sparsity="topk", sparsity_params={"k": 5, "relu": False},
            code_activation="linear")  # fmt: skip
    with torch.no_grad():
        m.b_enc.fill_(-20.0)  # every pre-activation negative
    dead = DeadLatents(96, dead_after=1)
    dead.since_fired[:] = 5.0
    x = torch.randn(37, 24)
    out = AuxK(dead, k=16, weight=1 / 32)(m, x, m.step(x))
    out.terms["aux"].backward()
    assert float(m.b_enc.grad.abs().sum()) > 0  # the term's gradient reaches dead latents
