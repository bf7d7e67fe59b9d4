"""Greedy layer-wise training (Bengio et al. 2007; Vincent et al. 2010 for the denoising
variant): train a shallow autoencoder, encode the data with it, train the next one on those
codes, and so on; then stack the encoders (in order) and decoders (reversed) into one deep
``mlp`` `Autoencoder` that `sparseae.fit` can fine-tune end to end.

Why layer-wise at all: each shallow problem is easy to optimise, and the stack starts
fine-tuning from weights that already reconstruct. The stacked model's ``encode`` equals the
composition of the shallow encoders exactly (before fine-tuning).

What each shallow AE is, for ``sizes = [d_in, h1, ..., code]``:

- layer i maps ``sizes[i] -> sizes[i+1]``; its code activation is the deep model's hidden
  activation, except the last layer, which uses the deep model's ``code_activation`` and
  carries its sparsity (sparsity belongs to the code);
- the first layer reconstructs the data with the deep model's output activation and loss;
  deeper layers reconstruct real-valued codes with a linear output and MSE. In the stacked
  model that decoder layer is followed by the hidden activation instead, which fine-tuning
  adjusts to (the standard compromise of greedy stacking);
- corruption (denoising), if any, is applied to each layer's own input while it is trained
  (a stacked denoising AE), and to the data in the stacked model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sparseae.data.tensors import as_tensor
from sparseae.errors import ConfigError
from sparseae.models.autoencoder.config import ModelConfig
from sparseae.models.autoencoder.model import Autoencoder
from sparseae.training.config import TrainConfig
from sparseae.training.trainer import fit


def shallow_configs(config: ModelConfig) -> list[ModelConfig]:
    """The shallow autoencoders whose stack is the deep ``mlp`` model ``config``."""
    if config.backbone != "mlp":
        raise ConfigError(
            f"greedy layer-wise training stacks mlp layers; backbone {config.backbone!r} is "
            "trained end to end (drop --layerwise)"
        )
    if not config.hidden:
        raise ConfigError("greedy layer-wise training needs at least one hidden layer (--hidden)")
    sizes = [config.d_in, *config.hidden, config.n_latents]
    configs = []
    last = len(sizes) - 2
    for i in range(last + 1):
        first = i == 0
        configs.append(
            config.replace(
                d_in=sizes[i],
                n_latents=sizes[i + 1],
                hidden=(),
                code_activation=config.code_activation if i == last else config.activation,
                output_activation=config.output_activation if first else "linear",
                loss=config.loss if first else "mse",
                sparsity=config.sparsity if i == last else "none",
                sparsity_params=dict(config.sparsity_params) if i == last else {},
                input_shape=config.input_shape if first else None,
            )
        )
    return configs


def stack(config: ModelConfig, layers: Sequence[Autoencoder]) -> Autoencoder:
    """One deep model from trained shallow ones: encoder i = layer i's encoder, decoder
    layer j = layer (L-1-j)'s decoder. Weights are copied, so the shallow models stay intact."""
    model = Autoencoder(config)
    bb = model.backbone
    n = len(layers)
    if n != len(bb.enc_weights):
        raise ConfigError(f"{n} shallow layers cannot fill a {len(bb.enc_weights)}-layer encoder")
    with torch.no_grad():
        for i, layer in enumerate(layers):
            src = layer.backbone
            bb.enc_weights[i].copy_(src.enc_weights[0])
            bb.enc_biases[i].copy_(src.enc_biases[0])
            j = n - 1 - i
            bb.dec_biases[j].copy_(src.dec_biases[0])
            if bb.dec_weights is not None:
                bb.dec_weights[j].copy_(src.decoder_weight(0))
        model.sparsity.load_state_dict(layers[-1].sparsity.state_dict())
    return model


def train_layerwise(
    config: ModelConfig,
    x_train: Any,
    x_val: Any = None,
    *,
    train_config: TrainConfig | None = None,
    log: Any = None,
    progress: bool | None = False,
    **overrides: Any,
) -> Autoencoder:
    """Train ``config``'s layers greedily on ``x_train`` and return the stacked deep model
    (not yet fine-tuned: pass it to `sparseae.fit` for that). ``overrides`` patch the
    per-layer `TrainConfig` (``epochs=3``...)."""
    cfg = train_config or TrainConfig()
    if overrides:
        cfg = cfg.replace(**overrides)
    x = as_tensor(x_train, "training data")
    xv = as_tensor(x_val, "validation data") if x_val is not None and len(x_val) else None
    layers: list[Autoencoder] = []
    for i, layer_cfg in enumerate(shallow_configs(config)):
        torch.manual_seed(cfg.seed + i)
        layer = Autoencoder(layer_cfg)
        hist = fit(layer, x, xv, config=cfg, progress=progress)
        if log is not None:
            log({"layer": i + 1, "sizes": (layer_cfg.d_in, layer_cfg.n_latents), **hist.last})
        layer = layer.cpu().eval()
        with torch.no_grad():
            x = _encode_all(layer, x, cfg.eval_batch_size)
            xv = _encode_all(layer, xv, cfg.eval_batch_size) if xv is not None else None
        layers.append(layer)
    return stack(config, layers)


def _encode_all(model: Autoencoder, x: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([model.encode(b) for b in x.cpu().split(batch)])
