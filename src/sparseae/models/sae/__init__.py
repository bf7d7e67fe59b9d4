"""The one-layer dictionary SAE: config, model, sparse kernels."""

from sparseae.models.sae.config import SAEConfig
from sparseae.models.sae.model import SAE

__all__ = ["SAE", "SAEConfig"]
