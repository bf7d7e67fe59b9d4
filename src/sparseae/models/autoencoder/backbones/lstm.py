"""Recurrent backbone (after Géron's recurrent autoencoder, Hands-On ML ch. 17): an LSTM
encoder reads a sequence (an image's rows) into one vector; a RepeatVector-style LSTM decoder
unrolls that vector back into the sequence.

Layout: ``input_shape = (steps, features)`` (28 rows of 28 pixels); ``hidden`` are the
encoder's sequence-returning LSTM sizes, ``n_latents`` the last LSTM whose final hidden
state is the code (Géron's: hidden=(100,), n_latents=30). The decoder repeats the code
over the steps, runs LSTMs of the mirrored sizes and maps each step to the features with one
shared linear layer (TimeDistributed(Dense)).

The code pre-activation is the last LSTM's output, already tanh-bounded. For mechanisms that
want an unbounded pre-activation (a KL code in (0, 1) through a sigmoid, a ReLU code for L1)
set ``backbone_params={"code_head": "linear"}``: the last LSTM then has the size of the last
``hidden`` entry and a linear layer maps its state to ``n_latents``.

Uses ``nn.LSTM`` (cuDNN / oneDNN kernels), never a Python loop over time steps, initialised
as Keras: Glorot-uniform input kernel, orthogonal recurrent kernel, zero bias with forget
gate bias 1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from sparseae.errors import ConfigError
from sparseae.models.autoencoder.backbones import Backbone, backbone_params, register_backbone
from sparseae.models.autoencoder.config import ModelConfig
from sparseae.nn_utils import glorot_linear

_PARAMS = ("code_head",)


def keras_lstm(input_size: int, hidden: int) -> nn.LSTM:
    """One-layer batch-first LSTM initialised like keras.layers.LSTM."""
    lstm = nn.LSTM(input_size, hidden, batch_first=True)
    with torch.no_grad():
        # Keras kernel (input, 4h) Glorot: limit sqrt(6 / (input + 4h)); same for (4h, input)
        nn.init.xavier_uniform_(lstm.weight_ih_l0)
        # Keras orthogonal (h, 4h) has orthonormal rows == our (4h, h) with orthonormal columns
        nn.init.orthogonal_(lstm.weight_hh_l0)
        lstm.bias_ih_l0.zero_()
        lstm.bias_hh_l0.zero_()
        lstm.bias_ih_l0[hidden : 2 * hidden] = 1.0  # gate order i, f, g, o as Keras' i, f, c, o
    return lstm


def sequence_dims(input_shape: tuple[int, ...] | None, d_in: int) -> tuple[int, int]:
    if input_shape is None or len(input_shape) != 2:
        raise ConfigError(
            "the lstm backbone needs input_shape=(steps, features), e.g. (28, 28) to read an "
            f"image row by row; got {input_shape}"
        )
    if math.prod(input_shape) != d_in:
        raise ConfigError(
            f"input_shape {input_shape} holds {math.prod(input_shape)} values, not d_in={d_in}"
        )
    return int(input_shape[0]), int(input_shape[1])


class LSTMBackbone(Backbone):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        params = backbone_params(config, "lstm", _PARAMS)
        head = params.get("code_head", "lstm")
        if head not in ("lstm", "linear"):
            raise ConfigError(f"lstm code_head must be 'lstm' or 'linear', got {head!r}")
        self.steps, self.features = sequence_dims(config.input_shape, config.d_in)
        if head == "linear":
            if not config.hidden:
                raise ConfigError("lstm code_head='linear' needs at least one hidden LSTM size")
            enc_sizes = list(config.hidden)
        else:
            enc_sizes = [*config.hidden, config.n_latents]
        self.head = head
        sizes = [self.features, *enc_sizes]
        self.encoder = nn.ModuleList(
            keras_lstm(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        if head == "linear":
            w, b = glorot_linear(enc_sizes[-1], config.n_latents)
            self.code_weight, self.code_bias = w, b
        dec_sizes = [config.n_latents, *(config.hidden[::-1] or (config.n_latents,))]
        self.decoder = nn.ModuleList(
            keras_lstm(a, b) for a, b in zip(dec_sizes[:-1], dec_sizes[1:], strict=True)
        )
        w, b = glorot_linear(dec_sizes[-1], self.features)
        self.out_weight, self.out_bias = w, b

    def encode(self, x: Tensor) -> Tensor:
        a = x.reshape(x.shape[0], self.steps, self.features)
        for lstm in self.encoder:
            a, _ = lstm(a)
        code = a[:, -1]
        if self.head == "linear":
            code = nn.functional.linear(code, self.code_weight, self.code_bias)
        return code

    def decode(self, h: Tensor) -> Tensor:
        a = h.unsqueeze(1).expand(h.shape[0], self.steps, h.shape[1])
        for lstm in self.decoder:
            a, _ = lstm(a)
        out = nn.functional.linear(a, self.out_weight, self.out_bias)
        return out.reshape(h.shape[0], -1)

    def describe_layers(self) -> str:
        enc = "-".join(str(m.hidden_size) for m in self.encoder)
        dec = "-".join(str(m.hidden_size) for m in self.decoder)
        head = f" -> linear {self.code_weight.shape[0]}" if self.head == "linear" else ""
        return (
            f"{self.steps} steps x {self.features} LSTM {enc}{head} | repeat x{self.steps} "
            f"-> LSTM {dec} -> dense {self.features} per step"
        )


@register_backbone("lstm")
def _build(config: ModelConfig) -> LSTMBackbone:
    return LSTMBackbone(config)
