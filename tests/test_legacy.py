"""Model folders written by sparseae before the one-system restructuring still load and give
the same outputs (fixtures written by tests/fixtures/make_legacy_checkpoints.py with that
version: an SAE whose config holds training settings and whose weights hold its dead-latent
counter, models without a saved input transform, a sparse-coding folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import sparseae

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy"
EXPECTED = load_file(str(LEGACY / "expected.safetensors"))


@pytest.mark.parametrize("name", ["autoencoder", "sae", "sae_jumprelu", "sparse_coding"])
def test_folders_of_the_previous_layout_load_to_the_same_outputs(name):
    model = sparseae.load(LEGACY / name)
    x = EXPECTED["x"]
    with torch.no_grad():
        torch.testing.assert_close(model.encode(x), EXPECTED[f"{name}.encode"])
        torch.testing.assert_close(model(x), EXPECTED[f"{name}.forward"])
    assert not model.input_transform.active  # they were trained on the data as given
