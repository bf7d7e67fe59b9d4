"""The contract of a sparse coder: given a fixed dictionary, find each row's code.

A coder is a function ``(cov, gram, spec) -> codes`` on ``cov = X Dᵀ`` (rows x atoms) and
``gram = D Dᵀ`` (atoms x atoms): every algorithm here works in this Gram form, so the
data's width enters once (one matrix product) and a batch of rows is coded with batched
tensor operations. `CODERS` refuses a second coder under a taken name; a new algorithm is one
new file that registers itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

from sparseae.errors import ConfigError
from sparseae.registry import Registry


@dataclass(frozen=True)
class CodingSpec:
    """What the caller asked for. ``n_nonzero_coefs`` drives the greedy coders (omp, topk),
    ``alpha`` the penalised ones (lasso, threshold); ``positive`` keeps codes >= 0."""

    n_nonzero_coefs: int | None = None
    alpha: float | None = None
    positive: bool = False
    max_iter: int = 200
    tol: float = 1e-4
    workers: int | None = None  # threads for map_chunks (None: PyTorch's thread count)

    def need_k(self, algorithm: str, n_atoms: int) -> int:
        k = self.n_nonzero_coefs
        if k is None:
            return max(1, n_atoms // 10)  # scikit-learn's default for omp
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n_atoms:
            raise ConfigError(
                f"{algorithm}: n_nonzero_coefs must be an integer in 1..{n_atoms} (the number "
                f"of atoms), got {k!r}"
            )
        return k

    def need_alpha(self, algorithm: str) -> float:
        a = 1.0 if self.alpha is None else self.alpha  # scikit-learn's default
        if isinstance(a, bool) or not isinstance(a, int | float) or a < 0:
            raise ConfigError(f"{algorithm}: alpha must be a number >= 0, got {a!r}")
        return float(a)


Coder = Callable[[Tensor, Tensor, CodingSpec], Tensor]

CODERS: Registry[Coder] = Registry("sparse coding algorithm")

T = TypeVar("T")


def map_chunks(
    fn: Callable[[Tensor], T], chunks: list[Tensor], workers: int | None = None
) -> list[T]:
    """Chunks in parallel, one thread each, each op single-threaded. A chunk's ops are
    small (cache-sized), and PyTorch splitting each of them across its threads cost more in
    synchronisation than it gained (OMP on 2 busy cores: 8-10x slower). PyTorch releases the GIL
    inside its kernels, so Python threads run the chunks side by side. On a GPU the ops are
    queued on one stream anyway: a plain loop."""
    workers = workers or torch.get_num_threads()
    if workers <= 1 or len(chunks) <= 1 or chunks[0].device.type != "cpu":
        return [fn(c) for c in chunks]
    with single_threaded_ops():
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, chunks))


@contextmanager
def single_threaded_ops() -> Iterator[int]:
    """PyTorch's intra-op threads set to 1 for the block (restored after); yields the
    count it had, for the caller's own chunk-level parallelism."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield before
    finally:
        torch.set_num_threads(before)
