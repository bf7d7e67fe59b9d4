"""Fully connected backbone: any depth ("stacked" AE), optional tied decoder weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sparseae.errors import ConfigError
from sparseae.models.autoencoder.backbones import Backbone, register_backbone
from sparseae.models.autoencoder.config import ModelConfig
from sparseae.models.base import Atoms
from sparseae.nn_utils import activation, glorot_linear


class MLPBackbone(Backbone):
    """Encoder d_in -> hidden... -> n_latents, decoder mirrored back to d_in.

    With ``tied=True`` each decoder layer reuses the transpose of its encoder twin (same
    storage, so one update moves both) and keeps its own bias, as the DenseTranspose layer of
    Géron's Keras examples. Layers are explicit parameters rather than nn.Linear so the tied
    and untied cases share one forward path.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.backbone_params:
            raise ConfigError(
                f"mlp backbone takes no parameter {', '.join(sorted(config.backbone_params))}"
            )
        sizes = [config.d_in, *config.hidden, config.n_latents]
        self.sizes = sizes
        self.tied = config.tied
        self.act = activation(config.activation)
        enc_w, enc_b = [], []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            w, b = glorot_linear(fan_in, fan_out)
            enc_w.append(w)
            enc_b.append(b)
        self.enc_weights = nn.ParameterList(enc_w)
        self.enc_biases = nn.ParameterList(enc_b)
        dec_sizes = sizes[::-1]
        dec_w, dec_b = [], []
        for fan_in, fan_out in zip(dec_sizes[:-1], dec_sizes[1:], strict=True):
            w, b = glorot_linear(fan_in, fan_out)
            dec_w.append(w)
            dec_b.append(b)
        self.dec_weights = None if self.tied else nn.ParameterList(dec_w)
        self.dec_biases = nn.ParameterList(dec_b)

    def decoder_weight(self, i: int) -> Tensor:
        """Weight of decoder layer i, shape (fan_out, fan_in); a transposed view if tied."""
        if self.dec_weights is None:
            return self.enc_weights[len(self.enc_weights) - 1 - i].t()
        return self.dec_weights[i]

    def encode(self, x: Tensor) -> Tensor:
        a = x.reshape(x.shape[0], -1)
        last = len(self.enc_weights) - 1
        for i, (w, b) in enumerate(zip(self.enc_weights, self.enc_biases, strict=True)):
            a = torch.addmm(b, a, w.t())
            if i < last:
                a = self.act(a)
        return a

    def decode(self, h: Tensor) -> Tensor:
        a = h
        last = len(self.dec_biases) - 1
        for i, b in enumerate(self.dec_biases):
            a = torch.addmm(b, a, self.decoder_weight(i).t())
            if i < last:
                a = self.act(a)
        return a

    def atoms(self) -> Atoms | None:
        """A one-layer AE's decoder is a linear dictionary: its weight's columns (untied) or
        the encoder weight's rows (tied) are the atoms; deep decoders have none."""
        if len(self.enc_weights) != 1:
            return None
        if self.dec_weights is None:
            return Atoms(self.enc_weights[0], self.dec_biases[0], transposed=False)
        return Atoms(self.dec_weights[0], self.dec_biases[0], transposed=True)

    def encoder_atoms(self) -> Atoms | None:
        if len(self.enc_weights) != 1:
            return None
        return Atoms(self.enc_weights[0], self.enc_biases[0], transposed=False)

    def filters(self) -> Tensor:
        """For a one-layer AE the decoder's dictionary atoms (columns of W_dec: what each
        latent adds to the reconstruction); for a deep one the first encoder layer's
        input-space filters."""
        if len(self.enc_weights) == 1:
            return self.decoder_weight(0).t().detach()
        return self.enc_weights[0].detach()


@register_backbone("mlp")
def _build(config: ModelConfig) -> MLPBackbone:
    return MLPBackbone(config)
