"""A hand-derived training step for fully connected autoencoders.

At the reference recipes' batch size of 32, autograd's bookkeeping (building the graph,
saving tensors, one Python-visible node per op, allocating every gradient) costs more than
the arithmetic: on two CPU cores the eleven matrix products of a 784-100-300-100-784 step
take about 0.5 ms, the autograd step with Adam about 2.2 ms. This module computes the same
loss and the same gradients directly (with Adam, about 1.2 ms): one pass forward keeping
what the backward needs, one pass backward writing every gradient into a buffer owned by
its parameter, and the output layer's sigmoid and binary cross-entropy fused into
``(sigmoid(z) - x) / N``.

It covers what the MLP recipes use (any depth, tied or untied decoder weights, relu / gelu /
sigmoid / tanh / linear layers, every sparsity whose ``fused`` flag is set (its
``fused_penalty`` and ``fused_backward`` give the gradient), any input corruption, mse or
bce) and `supports` says so exactly; anything else (another backbone or sparsity, frozen
parameters, a subclass that overrides the objective, DDP) trains through autograd. Tests
compare every supported combination against autograd. The model offers it through
``Autoencoder.fused_step()``; the trainer never imports this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from sparseae.corruptions import NoCorruption
from sparseae.models.autoencoder.backbones.mlp import MLPBackbone
from sparseae.models.base import StepOutput
from sparseae.models.fused_base import OwnedGradients, not_plain, untrainable_parts
from sparseae.nn_utils import ACTIVATIONS

_SUPPORTED_ACTIVATIONS = frozenset({"relu", "gelu", "sigmoid", "tanh", "linear"})

_gelu_backward = torch.ops.aten.gelu_backward.default
_sigmoid_backward = torch.ops.aten.sigmoid_backward.default
_tanh_backward = torch.ops.aten.tanh_backward.default
_threshold_backward = torch.ops.aten.threshold_backward.default

# On CPU, PyTorch hands gelu and its backward to oneDNN whenever oneDNN is enabled; building
# oneDNN's primitive costs ~20 us a call, more than a 32x100 gelu itself, while ATen's own
# kernel takes 3 us on 8 values and half oneDNN's time on 32x100. The step switches oneDNN
# off for its duration only (convolutions elsewhere keep it). Flag accessors are private in
# torch, hence the guarded lookup: without them the step simply runs with oneDNN on.
_get_mkldnn = getattr(torch._C, "_get_mkldnn_enabled", lambda: False)
_set_mkldnn = getattr(torch._C, "_set_mkldnn_enabled", lambda flag: None)


def supports(model: Any, plain: type | None = None) -> str | None:
    """None when `FusedMLPStep` trains ``model`` exactly as autograd would, else the reason
    it does not (for logs and tests)."""
    if (why := not_plain(model, plain)) is not None:
        return why
    if type(model.backbone) is not MLPBackbone:
        return f"{model.config.backbone} backbone"
    cfg = model.config
    for name in (cfg.activation, cfg.code_activation):
        if name not in _SUPPORTED_ACTIVATIONS:
            return f"{name} activation"
    if not model.sparsity.fused:
        return f"{cfg.sparsity} sparsity (without a hand-derived gradient in this setting)"
    return untrainable_parts(model)


class _Layer:
    """One affine map ``a = h @ w_fwd + bias`` and what its backward pass needs: ``w_bwd``
    (``grad_h = grad_a @ w_bwd``), the gradient buffers and how to fill the weight's (the
    first writer of a tied weight overwrites it, the second adds to it). All tensors are
    detached views of the parameters, so no op here touches autograd."""

    def __init__(self, weight: nn.Parameter, tied: bool, bias: nn.Parameter, act: str) -> None:
        w = weight.detach()
        # untied: a = h @ W^T (W is out x in); tied decoder: a = h @ W (its encoder twin's W)
        self.w_fwd = w if tied else w.t()
        self.w_bwd = w.t() if tied else w
        self.tied = tied
        self.weight = weight
        self.bias = bias.detach()
        # the output layer's activation belongs to the loss (`_reconstruction`)
        self.act_fwd = ACTIVATIONS["linear" if act == "output" else act]
        self.act_bwd = None if act == "output" else _ACT_BACKWARD[act]
        self.grad_w: Tensor = torch.empty(0)
        self.grad_b: Tensor = torch.empty(0)
        self.first_writer = True

    def write_weight_grad(self, grad_a: Tensor, h_in: Tensor) -> None:
        gw = self.grad_w
        if self.tied:
            if self.first_writer:
                torch.mm(h_in.t(), grad_a, out=gw)
            else:
                gw.addmm_(h_in.t(), grad_a)
        elif self.first_writer:
            torch.mm(grad_a.t(), h_in, out=gw)
        else:
            gw.addmm_(grad_a.t(), h_in)


class FusedMLPStep(OwnedGradients):
    """``step(x)`` -> `StepOutput` with every parameter's ``.grad`` already set, as
    ``model.step(x)`` followed by ``loss.backward()`` on freshly zeroed gradients.

    The parameters' gradient buffers are allocated once and reused; the step re-attaches
    them if something set ``.grad`` to None, and rebuilds its views if a parameter was
    given new storage (``model.to(...)``)."""

    def __init__(self, model: Any) -> None:
        reason = supports(model)
        if reason is not None:
            raise ValueError(f"FusedMLPStep does not support this model: {reason}")
        self.model = model
        self.params = list(model.parameters())
        self._storage: list[int] = []
        self._corrupt = None if type(model.corruption) is NoCorruption else model.corruption.corrupt
        self._sparsity = model.sparsity
        self._bce = model.config.loss == "bce"
        self._sigmoid_out = model.config.output_activation == "sigmoid"
        self._build()

    def _build(self) -> None:
        model = self.model
        bb: MLPBackbone = model.backbone  # type: ignore[assignment]
        cfg = model.config
        n_enc = len(bb.enc_weights)
        layers = []
        for i in range(n_enc):
            act = cfg.code_activation if i == n_enc - 1 else cfg.activation
            layers.append(_Layer(bb.enc_weights[i], False, bb.enc_biases[i], act))
        for i in range(len(bb.dec_biases)):
            act = "output" if i == len(bb.dec_biases) - 1 else cfg.activation
            if bb.dec_weights is None:
                layers.append(_Layer(bb.enc_weights[n_enc - 1 - i], True, bb.dec_biases[i], act))
            else:
                layers.append(_Layer(bb.dec_weights[i], False, bb.dec_biases[i], act))
        self.n_encoder = n_enc
        self.layers = layers
        self.grads = [torch.empty_like(p) for p in self.params]
        by_param = {id(p): g for p, g in zip(self.params, self.grads, strict=True)}
        written: set[int] = set()
        for layer in reversed(layers):  # backward order decides who writes a tied weight first
            layer.grad_w = by_param[id(layer.weight)]
            layer.first_writer = id(layer.weight) not in written
            written.add(id(layer.weight))
        for layer, bias in zip(layers, [*bb.enc_biases, *bb.dec_biases], strict=True):
            layer.grad_b = by_param[id(bias)]
        self._storage = [p.data_ptr() for p in self.params]

    # -- the step -------------------------------------------------------------------------------
    def step(self, x: Tensor) -> StepOutput:
        mkldnn_was = _get_mkldnn()
        _set_mkldnn(False)  # see _set_mkldnn
        try:
            return self._step(x)
        finally:
            _set_mkldnn(mkldnn_was)

    def _step(self, x: Tensor) -> StepOutput:
        with torch.no_grad():
            self._attach_grads()
            x = x.reshape(x.shape[0], -1)
            # corruption in training mode only, as `Corruption.forward`
            h = x if self._corrupt is None or not self.model.training else self._corrupt(x)
            layers = self.layers
            code_index = self.n_encoder - 1
            ins: list[Tensor] = []
            pres: list[Tensor] = []
            outs: list[Tensor] = []  # each layer's activation output (before the sparsity)
            code = h
            for i, layer in enumerate(layers):
                ins.append(h)
                a = torch.addmm(layer.bias, h, layer.w_fwd)
                h = layer.act_fwd(a)
                pres.append(a)
                outs.append(h)
                if i == code_index:
                    h = code = self._sparsity.activate(h)
            recon, grad = self._reconstruction(h, x)
            penalty, grad_code = self._sparsity.fused_penalty(code)
            for i in range(len(layers) - 1, -1, -1):
                layer = layers[i]
                if layer.act_bwd is not None:
                    if i == code_index:
                        grad = self._code_backward(layer, grad, grad_code, pres[i], outs[i], code)
                    else:
                        grad = layer.act_bwd(grad, pres[i], outs[i])
                h_in = ins[i]
                layer.write_weight_grad(grad, h_in)
                torch.sum(grad, 0, out=layer.grad_b)
                if i > 0:
                    grad = torch.mm(grad, layer.w_bwd)
            loss = torch.add(recon, penalty)
        return StepOutput(loss, {"recon": recon, "sparsity": penalty}, code)

    def _code_backward(
        self,
        layer: _Layer,
        grad: Tensor,
        grad_code: Tensor | None,
        pre: Tensor,
        act_out: Tensor,
        code: Tensor,
    ) -> Tensor:
        """From the code's gradient (plus the penalty's) through the sparsity, then through
        the code activation evaluated at the pre-activation."""
        assert layer.act_bwd is not None
        if grad_code is not None:
            grad.add_(grad_code)
        grad = self._sparsity.fused_backward(grad, code)
        return layer.act_bwd(grad, pre, act_out)

    # -- loss terms and their gradients (already scaled by the means' 1/N) ------------------------
    def _reconstruction(self, logits: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        n = logits.numel()
        if self._bce:  # sigmoid output + BCE: d/dz = sigmoid(z) - x
            recon = torch.binary_cross_entropy_with_logits(logits, x, None, None, 1)
            return recon, torch.sigmoid(logits).sub_(x).mul_(1.0 / n)
        if self._sigmoid_out:
            out = torch.sigmoid(logits)
            diff = out.sub(x)
            recon = torch.dot(diff.view(-1), diff.view(-1)).div_(n)
            return recon, _sigmoid_backward(diff.mul_(2.0 / n), out)
        diff = logits.sub(x)
        recon = torch.dot(diff.view(-1), diff.view(-1)).div_(n)
        return recon, diff.mul_(2.0 / n)


_ACT_BACKWARD: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "relu": lambda g, a, h: _threshold_backward(g, h, 0),
    "gelu": lambda g, a, h: _gelu_backward(g, a),
    "sigmoid": lambda g, a, h: _sigmoid_backward(g, h),
    "tanh": lambda g, a, h: _tanh_backward(g, h),
    "linear": lambda g, a, h: g,
}
