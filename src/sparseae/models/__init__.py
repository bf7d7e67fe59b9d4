"""Every trainable model kind, registered in `MODEL_KINDS` on import (see `base` for the
contract): the composable autoencoder family, the one-layer dictionary SAE, and Arora et
al.'s neural sparse coding."""

from sparseae.models.autoencoder import Autoencoder, ModelConfig
from sparseae.models.base import MODEL_KINDS, Atoms, ModelBase, SparseModel, StepOutput
from sparseae.models.gated import GatedConfig, GatedSAE
from sparseae.models.matryoshka import MatryoshkaConfig, MatryoshkaSAE
from sparseae.models.sae import SAE, SAEConfig
from sparseae.models.sparse_coding import NeuralSparseCoding, SparseCodingConfig
from sparseae.models.transcoder import Transcoder, TranscoderConfig

__all__ = [
    "MODEL_KINDS",
    "SAE",
    "Atoms",
    "Autoencoder",
    "ModelBase",
    "GatedConfig",
    "GatedSAE",
    "MatryoshkaConfig",
    "MatryoshkaSAE",
    "ModelConfig",
    "NeuralSparseCoding",
    "SAEConfig",
    "SparseCodingConfig",
    "SparseModel",
    "StepOutput",
    "Transcoder",
    "TranscoderConfig",
]
