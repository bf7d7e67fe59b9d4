"""Sparse coding on a fixed dictionary and online dictionary learning, in batched PyTorch.

The scikit-learn sparse-coding family (`sparse_encode`'s ``omp``, ``lasso``, ``threshold``,
plus ``topk``) for any dictionary — a learned `DictionaryLearning`, or an SAE's decoder,
whose one-step encoder is what loses against iterative inference — and the online learner
behind `sparseae.DictionaryLearning` (`learn.py`). Importing the package registers every
coder in `CODERS`.
"""

from sparseae.coding import lasso, omp, projection  # noqa: F401  (register the coders)
from sparseae.coding.base import CODERS, CodingSpec
from sparseae.coding.encode import sparse_encode

__all__ = ["CODERS", "CodingSpec", "sparse_encode", "coder_names"]


def coder_names() -> tuple[str, ...]:
    return CODERS.names()
