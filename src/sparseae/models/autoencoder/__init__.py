"""The composable autoencoder family: backbone x sparsity x corruption."""

from sparseae.models.autoencoder.config import ModelConfig
from sparseae.models.autoencoder.model import Autoencoder

__all__ = ["Autoencoder", "ModelConfig"]
