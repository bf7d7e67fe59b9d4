"""Feature extraction: codes of a trained model, a linear probe, and 2-D views of the codes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparseae.errors import ConfigError
from sparseae.training.evaluate import map_batches


def encode(model: Any, x: Any, batch_size: int = 4096) -> np.ndarray:
    """Codes of ``x`` in eval mode (inference-time sparsity, e.g. alpha*k for topk)."""
    return map_batches(model, x, model.encode, batch_size=batch_size).numpy()


@dataclass(frozen=True)
class ProbeResult:
    """What a `linear_probe` did: the test accuracy of the final fit, the inverse L2 strength
    ``C`` chosen on held-out training rows (``val_accuracy`` per candidate; empty when only
    one was given), the solver's iterations and the CPU seconds of all the fits."""

    accuracy: float
    C: float
    val_accuracy: dict[float, float]
    n_iter: int
    cpu_seconds: float
    standardize: bool
    sparse: bool

    def settings(self) -> str:
        """One line naming the probe, for a benchmark's report."""
        kind = "standardised" if self.standardize else "unstandardised"
        chosen = ""
        if self.val_accuracy:
            chosen = f", chosen on held-out training rows from {sorted(self.val_accuracy)}"
        layout = "sparse CSR" if self.sparse else "dense"
        return (
            f"multinomial logistic regression (scikit-learn lbfgs, L2, C = {self.C:g}{chosen}; "
            f"{kind} {layout} codes, {self.n_iter} iterations)"
        )


def _as_probe_input(codes: Any, sparse: bool) -> Any:
    """Sparse codes as CSR: lbfgs then costs O(non-zeros), ~13x less work at 75 of 1,000."""
    if not sparse:
        return np.asarray(codes)
    from scipy import sparse as sp

    return sp.csr_matrix(codes)


def _fit_probe(x: Any, y: np.ndarray, C: float, max_iter: int, tol: float) -> Any:
    """One scikit-learn fit: multinomial for several classes (lbfgs' default)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=max_iter, tol=tol).fit(x, y)


def linear_probe(
    train_codes: np.ndarray,
    train_y: np.ndarray,
    test_codes: np.ndarray,
    test_y: np.ndarray,
    *,
    Cs: tuple[float, ...] = (1.0,),
    val_fraction: float = 1 / 6,
    standardize: bool = False,
    max_iter: int = 1000,
    tol: float = 1e-6,
) -> ProbeResult:
    """Logistic regression on the codes, the usual yardstick of learned representations.

    With several ``Cs`` the strength is chosen on the last ``val_fraction`` of the training
    rows (10,000 of MNIST's 60,000; never on the test labels), then the probe is refit on
    all training rows. Unstandardised codes stay sparse (CSR) when at most a quarter of
    their entries are non-zero, which makes the probe of a k-sparse code cheap;
    standardising centres them, so it works on dense arrays.
    ``tol`` is tighter than scikit-learn's 1e-4, at which lbfgs stops early on these codes
    (0.1 point of error on MNIST's k-sparse features)."""
    t0 = time.process_time()
    sparse = not standardize and float(np.mean(np.asarray(train_codes) != 0)) <= 0.25
    xtr, xte = train_codes, test_codes
    if standardize:
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(train_codes)
        xtr, xte = scaler.transform(train_codes), scaler.transform(test_codes)
    xtr, xte = _as_probe_input(xtr, sparse), _as_probe_input(xte, sparse)
    ytr = np.asarray(train_y)
    val: dict[float, float] = {}
    if len(Cs) > 1:
        val_size = round(val_fraction * len(ytr))
        if not 0 < val_size < len(ytr):
            raise ConfigError(f"val_fraction must leave rows on both sides, got {val_fraction}")
        fit_rows = slice(0, len(ytr) - val_size)
        held = slice(len(ytr) - val_size, None)
        for c in Cs:
            clf = _fit_probe(xtr[fit_rows], ytr[fit_rows], c, max_iter, tol)
            val[float(c)] = float(clf.score(xtr[held], ytr[held]))
    best = max(val, key=lambda c: (val[c], -c)) if val else float(Cs[0])
    clf = _fit_probe(xtr, ytr, best, max_iter, tol)
    return ProbeResult(
        accuracy=float(clf.score(xte, np.asarray(test_y))),
        C=best,
        val_accuracy=val,
        n_iter=int(np.max(clf.n_iter_)),
        cpu_seconds=time.process_time() - t0,
        standardize=standardize,
        sparse=sparse,
    )


def linear_probe_accuracy(
    train_codes: np.ndarray,
    train_y: np.ndarray,
    test_codes: np.ndarray,
    test_y: np.ndarray,
    *,
    C: float = 1.0,
    max_iter: int = 200,
    standardize: bool = True,
) -> float:
    """Held-out accuracy of a logistic regression on the codes (`linear_probe` with one C
    and scikit-learn's default tolerance; kept for callers of the accuracy alone)."""
    result = linear_probe(
        train_codes,
        train_y,
        test_codes,
        test_y,
        Cs=(C,),
        standardize=standardize,
        max_iter=max_iter,
        tol=1e-4,
    )
    return result.accuracy


def embedding_figure(
    codes: np.ndarray, labels: np.ndarray | None, title: str, max_points: int = 2000, seed: int = 0
) -> Any:
    """PCA and t-SNE of the codes side by side, coloured by label."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    from sparseae.report.figures import plt

    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(codes))[:max_points]
    c = codes[idx]
    y = None if labels is None else np.asarray(labels)[idx]
    views = {
        "PCA": PCA(n_components=2, random_state=seed).fit_transform(c),
        "t-SNE": TSNE(
            n_components=2, random_state=seed, init="pca", perplexity=min(30, max(5, len(c) // 10))
        ).fit_transform(c),
    }
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    for ax, (name, xy) in zip(axes, views.items(), strict=True):
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=y, s=5, cmap="tab10")
        ax.set_title(f"{name} of the codes", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if y is not None:
        fig.colorbar(sc, ax=axes, fraction=0.03, label="label")
    fig.suptitle(title, fontsize=11)
    return fig
