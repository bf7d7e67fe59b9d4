"""Denoising with an autoencoder trained on Gaussian-corrupted inputs (Vincent et al.'s
denoising autoencoder, 2008)."""

from __future__ import annotations

from typing import Any

import numpy as np

from sparseae.metrics import psnr
from sparseae.training.evaluate import map_batches

__all__ = ["add_gaussian_noise", "denoise", "psnr"]  # psnr: the one in sparseae.metrics


def add_gaussian_noise(
    x: np.ndarray, sigma: float, seed: int = 0, clip: tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """The corruption the model was trained with, for making test inputs: x + sigma*N(0,1),
    clipped to the data range."""
    rng = np.random.default_rng(seed)
    noisy = x + sigma * rng.standard_normal(x.shape).astype(np.float32)
    return np.clip(noisy, *clip).astype(np.float32)


def denoise(model: Any, x: Any, batch_size: int = 4096) -> np.ndarray:
    """The model's reconstructions of (noisy) ``x``, in eval mode so no corruption is added."""
    return map_batches(model, x, model, batch_size=batch_size).numpy()
