"""Denoising with an autoencoder trained on Gaussian-corrupted inputs (document 002)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sparseae.data.tensors import as_tensor
from sparseae.devices import model_device


def add_gaussian_noise(
    x: np.ndarray, sigma: float, seed: int = 0, clip: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """The corruption the model was trained with, for making test inputs: x + sigma*N(0,1),
    clipped to the data range."""
    rng = np.random.default_rng(seed)
    noisy = x + sigma * rng.standard_normal(x.shape).astype(np.float32)
    return np.clip(noisy, *clip).astype(np.float32)


@torch.no_grad()
def denoise(model: Any, x: Any, batch_size: int = 4096) -> np.ndarray:
    xt = as_tensor(x)
    was_training = model.training
    model.eval()
    dev = model_device(model)
    try:
        parts = [
            model(xt[i : i + batch_size].to(dev)).cpu() for i in range(0, xt.shape[0], batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(parts).numpy()


def psnr(clean: np.ndarray, estimate: np.ndarray, data_range: float = 1.0) -> float:
    """Mean over images of each image's PSNR in dB."""
    mse = ((clean - estimate) ** 2).reshape(len(clean), -1).mean(axis=1)
    return float(np.mean(10 * np.log10(data_range**2 / np.maximum(mse, 1e-12))))
