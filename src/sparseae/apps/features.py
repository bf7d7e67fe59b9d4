"""Feature extraction: codes of a trained model, a linear probe, and 2-D views of the codes."""

from __future__ import annotations

from typing import Any

import numpy as np

from sparseae.training.evaluate import map_batches


def encode(model: Any, x: Any, batch_size: int = 4096) -> np.ndarray:
    """Codes of ``x`` in eval mode (inference-time sparsity, e.g. alpha*k for topk)."""
    return map_batches(model, x, model.encode, batch_size=batch_size).numpy()


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
    """Held-out accuracy of a logistic regression on the codes: how linearly usable the
    features are, the usual yardstick of learned representations."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps = [StandardScaler()] if standardize else []
    clf = make_pipeline(*steps, LogisticRegression(C=C, max_iter=max_iter))
    clf.fit(train_codes, train_y)
    return float(clf.score(test_codes, test_y))


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
