"""Convolutional backbone (after Géron's convolutional autoencoder, Hands-On ML ch. 17):
Conv2d + 2x2 max-pooling encoder, transposed convolution decoder, with a flat code so every
sparsity mechanism applies to it.

The code is the last feature map flattened channels-first (28x28 with channels 16,32,64 ->
64x3x3 = 576 values). If ``n_latents`` differs from that size, a linear layer maps the
feature map to ``n_latents`` (and a mirrored one maps back), a bottleneck of any width.
The code activation (``code_activation``) is applied after the last pooling, on the code's
pre-activation, so ``relu``/``sigmoid``/``gelu`` codes and KL/L1/top-k all compose; for
monotonic activations max-pool and activation commute, so this is exactly Keras'
Conv2D(activation) -> MaxPool2D; for GELU it differs only where the maximum is negative.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sparseae.errors import ConfigError
from sparseae.models.autoencoder.backbones import Backbone, backbone_params, register_backbone
from sparseae.models.autoencoder.config import ModelConfig
from sparseae.nn_utils import activation, glorot_linear

DEFAULT_CHANNELS = (16, 32, 64)
_PARAMS = ("channels", "kernel_size", "pool")


def image_dims(input_shape: tuple[int, ...] | None, d_in: int) -> tuple[int, int, int]:
    """(channels, height, width) from ``input_shape`` (H, W) or (C, H, W)."""
    if input_shape is None:
        raise ConfigError(
            "the conv backbone needs the image shape: pass input_shape=(height, width) "
            "(the CLI takes it from an image dataset such as fashion-mnist or digits)"
        )
    if len(input_shape) == 2:
        dims = (1, *input_shape)
    elif len(input_shape) == 3:
        dims = tuple(input_shape)
    else:
        raise ConfigError(
            f"the conv backbone needs input_shape (H, W) or (C, H, W), got {input_shape}"
        )
    if math.prod(dims) != d_in:
        raise ConfigError(
            f"input_shape {input_shape} holds {math.prod(dims)} values, not d_in={d_in}"
        )
    return dims  # type: ignore[return-value]


def feature_sizes(size: int, n_layers: int, pool: int) -> list[int]:
    """Spatial size after each conv+pool stage ('same' conv, floor pooling as Keras)."""
    sizes = [size]
    for _ in range(n_layers):
        sizes.append(sizes[-1] // pool)
    return sizes


def conv_code_size(
    input_shape: tuple[int, ...], channels: tuple[int, ...] = DEFAULT_CHANNELS, pool: int = 2
) -> int:
    """Length of the flattened last feature map: the natural n_latents of a conv AE."""
    c, h, w = image_dims(tuple(input_shape), math.prod(input_shape))
    hs, ws = feature_sizes(h, len(channels), pool), feature_sizes(w, len(channels), pool)
    return channels[-1] * hs[-1] * ws[-1]


def _transpose_crop(size_in: int, size_out: int, kernel: int, stride: int) -> tuple[int, int]:
    """(crop_before, output_padding) that map size_in to exactly size_out the way Keras /
    TensorFlow do: the full transposed convolution ((size_in - 1) * stride + kernel) cropped
    by half the excess before (rounded down) and the rest after. PyTorch's own ``padding``
    crops symmetrically, which shifts 'same' outputs by one pixel against Keras (7 -> 14:
    Keras drops the last row, ``padding=1, output_padding=1`` the first)."""
    full = (size_in - 1) * stride + kernel
    if full >= size_out:
        return (full - size_out) // 2, 0
    if size_out - full < stride:
        return 0, size_out - full
    raise ConfigError(
        f"no transposed convolution maps size {size_in} to {size_out} with kernel {kernel}, "
        f"stride {stride}: choose fewer conv channels for this image size"
    )


def _glorot_conv(c_out: int, c_in: int, k: int) -> tuple[nn.Parameter, nn.Parameter]:
    """Keras Conv2D default: Glorot-uniform kernel, zero bias."""
    w = torch.empty(c_out, c_in, k, k)
    nn.init.xavier_uniform_(w)
    return nn.Parameter(w), nn.Parameter(torch.zeros(c_out))


def _conv_settings(config: ModelConfig) -> tuple[tuple[int, ...], int, int]:
    """(channels, kernel_size, pool) from ``backbone_params``, validated up front so a bad
    value is a ConfigError naming the option, not a shape error inside a convolution."""
    params = backbone_params(config, "conv", _PARAMS)
    if config.hidden:
        raise ConfigError(
            "the conv backbone takes no hidden sizes: set the feature maps with "
            "backbone_params={'channels': (16, 32, 64)} (--conv-channels 16,32,64)"
        )
    channels = tuple(int(c) for c in params.get("channels", DEFAULT_CHANNELS))
    kernel = int(params.get("kernel_size", 3))
    pool = int(params.get("pool", 2))
    if not channels or min(channels) < 1 or kernel < 1 or kernel % 2 == 0:
        raise ConfigError(
            f"conv backbone needs positive channels and an odd kernel size, got channels "
            f"{channels}, kernel_size {kernel}"
        )
    if pool < 1:
        raise ConfigError(f"conv pool size must be >= 1, got {pool}")
    return channels, kernel, pool


class ConvBackbone(Backbone):
    """Encoder: per channel count, Conv2d(k, 'same') -> activation -> MaxPool(pool) (no
    activation after the last conv: that is the code's pre-activation). Decoder: mirrored
    ConvTranspose2d(k, stride=pool) layers sized to retrace the encoder's feature maps
    exactly, the last one producing the image's channels (logits).

    ``tied=True``: each transposed convolution reuses its encoder twin's kernel (a
    ConvTranspose with the Conv's weight is that convolution's adjoint) with its own bias, as
    does the optional linear bottleneck.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        channels, self.kernel, self.pool = _conv_settings(config)
        c_in, h, w = image_dims(config.input_shape, config.d_in)
        self.image = (c_in, h, w)
        hs = feature_sizes(h, len(channels), self.pool)
        ws = feature_sizes(w, len(channels), self.pool)
        if min(hs[-1], ws[-1]) < 1:
            raise ConfigError(
                f"{len(channels)} conv+pool stages shrink a {h}x{w} image to nothing: "
                "use fewer channels entries"
            )
        self.channels = channels
        self.map_shape = (channels[-1], hs[-1], ws[-1])
        self.flat = math.prod(self.map_shape)
        self.tied = config.tied
        self.act = activation(config.activation)
        chans = (c_in, *channels)
        self._build_encoder(chans)
        self._build_decoder(chans, hs, ws)
        self.bottleneck = config.n_latents != self.flat
        if self.bottleneck:
            self._build_bottleneck(config.n_latents)

    def _build_encoder(self, chans: tuple[int, ...]) -> None:
        """One Glorot-initialised Conv2d kernel and bias per stage, chans[i] -> chans[i + 1]."""
        enc_w, enc_b = [], []
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            wt, bias = _glorot_conv(b, a, self.kernel)
            enc_w.append(wt)
            enc_b.append(bias)
        self.enc_weights = nn.ParameterList(enc_w)
        self.enc_biases = nn.ParameterList(enc_b)

    def _build_decoder(self, chans: tuple[int, ...], hs: list[int], ws: list[int]) -> None:
        """Transposed-conv kernels, biases and crops mirroring the encoder. Kernels are drawn
        even when tied (then discarded) so tied and untied models consume the same random
        numbers and the bottleneck initialises identically in both."""
        # decoder layer i mirrors encoder layer L-1-i: channels[L-1-i] -> chans[L-1-i]
        n = len(chans) - 1
        dec_w, dec_b, self.dec_crop = [], [], []
        for i in range(n):
            j = n - 1 - i
            # ConvTranspose2d weight layout (in, out, k, k) == the Conv twin's (out, in, k, k)
            wt, _ = _glorot_conv(chans[j + 1], chans[j], self.kernel)
            dec_w.append(wt)
            dec_b.append(nn.Parameter(torch.zeros(chans[j])))
            ch, oph = _transpose_crop(hs[j + 1], hs[j], self.kernel, self.pool)
            cw, opw = _transpose_crop(ws[j + 1], ws[j], self.kernel, self.pool)
            self.dec_crop.append(((ch, cw), (oph, opw), (hs[j], ws[j])))
        self.dec_weights = None if self.tied else nn.ParameterList(dec_w)
        self.dec_biases = nn.ParameterList(dec_b)

    def _build_bottleneck(self, n_latents: int) -> None:
        """Linear maps feature map -> ``n_latents`` and back (the way back reuses the
        transposed forward weight when tied), for a code narrower or wider than the map."""
        wt, bias = glorot_linear(self.flat, n_latents)
        self.code_weight, self.code_bias = wt, bias
        wt, bias = glorot_linear(n_latents, self.flat)
        self.uncode_weight = None if self.tied else wt
        self.uncode_bias = bias

    def encode(self, x: Tensor) -> Tensor:
        a = x.reshape(x.shape[0], *self.image)
        last = len(self.enc_weights) - 1
        for i, (w, b) in enumerate(zip(self.enc_weights, self.enc_biases, strict=True)):
            a = F.conv2d(a, w, b, padding=self.kernel // 2)
            if i < last:
                a = self.act(a)
            a = F.max_pool2d(a, self.pool)
        a = a.flatten(1)
        if self.bottleneck:
            a = F.linear(self.act(a), self.code_weight, self.code_bias)
        return a

    def decoder_kernel(self, i: int) -> Tensor:
        if self.dec_weights is None:
            return self.enc_weights[len(self.enc_weights) - 1 - i]
        return self.dec_weights[i]

    def decode(self, h: Tensor) -> Tensor:
        a = h
        if self.bottleneck:
            w = self.code_weight.t() if self.uncode_weight is None else self.uncode_weight
            a = self.act(F.linear(a, w, self.uncode_bias))
        a = a.reshape(a.shape[0], *self.map_shape)
        last = len(self.dec_biases) - 1
        for i in range(last + 1):
            a = self.transposed_conv(i, a)
            if i < last:
                a = self.act(a)
        return a.reshape(a.shape[0], -1)

    def transposed_conv(self, i: int, a: Tensor) -> Tensor:
        """Decoder layer ``i`` before its activation, sized and aligned as Keras'."""
        (ch, cw), out_padding, (h, w) = self.dec_crop[i]
        a = F.conv_transpose2d(
            a,
            self.decoder_kernel(i),
            self.dec_biases[i],
            stride=self.pool,
            output_padding=out_padding,
        )
        return a[:, :, ch : ch + h, cw : cw + w]

    def describe_layers(self) -> str:
        c, h, w = self.image
        maps = "-".join(str(ch) for ch in self.channels)
        code = f"{self.flat}" + (f"->{self.code_weight.shape[0]}" if self.bottleneck else "")
        return f"{c}x{h}x{w} conv {maps} (k{self.kernel}, pool {self.pool}) code {code}"


@register_backbone("conv")
def _build(config: ModelConfig) -> ConvBackbone:
    return ConvBackbone(config)
