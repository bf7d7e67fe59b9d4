"""Sparsity mechanisms, one file each, all registered in `SPARSITIES` when this package is
imported (timm's rule: the registry is a leaf, the package imports every entry)."""

from sparseae.sparsities import (  # noqa: F401
    batchtopk,
    jumprelu,
    kl,
    l1,
    l1_decnorm,
    lp,
    none,
    topk,
)
from sparseae.sparsities.base import (
    SPARSITIES,
    Sparsity,
    make_sparsity,
    register_sparsity,
    sparsity_class,
    sparsity_names,
)
from sparseae.sparsities.batchtopk import BatchTopKSparsity
from sparseae.sparsities.jumprelu import JumpReLUSparsity
from sparseae.sparsities.kl import KLSparsity, keras_kl_weight, kl_to_target
from sparseae.sparsities.l1 import L1Sparsity
from sparseae.sparsities.l1_decnorm import DecoderNormL1Sparsity
from sparseae.sparsities.lp import LpSparsity
from sparseae.sparsities.none import NoSparsity
from sparseae.sparsities.topk import TopKSparsity, topk_mask

__all__ = [
    "SPARSITIES",
    "BatchTopKSparsity",
    "DecoderNormL1Sparsity",
    "JumpReLUSparsity",
    "KLSparsity",
    "L1Sparsity",
    "LpSparsity",
    "NoSparsity",
    "Sparsity",
    "TopKSparsity",
    "keras_kl_weight",
    "kl_to_target",
    "make_sparsity",
    "register_sparsity",
    "sparsity_class",
    "sparsity_names",
    "topk_mask",
]
