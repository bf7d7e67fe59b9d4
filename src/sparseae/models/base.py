"""The model contract every trainable model of sparseae implements, and what it returns.

A model is an ``nn.Module`` with:

- ``config``: a `sparseae.config.Config` dataclass (strict ``from_dict``), saved in config.json;
- ``checkpoint_kind``: its name in `MODEL_KINDS`, registered when `sparseae` is imported;
- ``n_latents``, ``d_in``;
- ``step(x) -> StepOutput``: the loss of a batch as named terms, plus the code. A model
  whose rule is not gradient descent (Arora et al.'s sparse coding) may update its own
  parameters inside ``step`` in training mode and return a loss that needs no backward;
- ``encode(x) -> h`` (dense codes, inference-time sparsity in eval mode) and ``decode(h)``;
- ``decoder_atoms() -> Atoms | None``: its linear dictionary, if it has one; the trainer's
  dictionary tricks (unit-norm atoms, decoder-bias init, dead latents, AuxK, resampling)
  work on every model that returns one;
- ``encode_at(x, rows, cols, pre)``: differentiable code-layer pre-activations at chosen
  entries (AuxK's dead latents), from a precomputed ``pre`` where the model can;
- ``fused_step() -> object | None``: a hand-derived step (``step(x)`` that fills ``.grad``
  without autograd) where the model offers one that is exact;
- ``input_transform``: an `InputTransform` (fitted scaling), applied by ``encode``/``forward``
  to raw inputs and saved with the weights.

`SparseModel` spells this out as a Protocol, `ModelBase` gives the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from sparseae.registry import Registry

#: checkpoint kind name -> function(config dict) -> model
MODEL_KINDS: Registry[Any] = Registry("model kind")


@dataclass
class StepOutput:
    """What one forward pass of the objective produces: the total loss, every named term
    (the trainer logs detached copies), the code (dense, or sparse COO in training) and, for
    the dictionary tricks, the code layer's pre-activation and the reconstruction (detached;
    None where the model has no linear dictionary)."""

    loss: Tensor
    terms: dict[str, Tensor]
    code: Tensor
    pre: Tensor | None = None
    x_hat: Tensor | None = None
    target: Tensor | None = None  # what x_hat approximates, where it is not the batch itself


@dataclass(frozen=True)
class Atoms:
    """A model's linear dictionary. ``weight`` holds one atom per row, or per column when
    ``transposed`` (a ``nn.Linear(n_latents, d_in)`` decoder); ``bias`` is added after the
    atoms (the decoder bias, which dictionary models also subtract before encoding)."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    transposed: bool = False

    def rows(self, t: Tensor) -> Tensor:
        """``t`` (the weight, its gradient, an optimizer moment) as (n_latents, d_in)."""
        return t.t() if self.transposed else t


@runtime_checkable
class SparseModel(Protocol):
    config: Any
    checkpoint_kind: ClassVar[str]

    @property
    def n_latents(self) -> int: ...

    @property
    def d_in(self) -> int: ...

    def step(self, x: Tensor) -> StepOutput: ...

    def encode(self, x: Tensor) -> Tensor: ...

    def decode(self, h: Tensor) -> Tensor: ...

    def decoder_atoms(self) -> Atoms | None: ...

    def fused_step(self) -> Any: ...


class ModelBase(nn.Module):
    """Defaults of the contract; subclasses set ``checkpoint_kind`` and implement the rest."""

    checkpoint_kind: ClassVar[str] = ""
    #: what the trainer's dictionary settings default to for this model when left as None
    dictionary_defaults: ClassVar[dict[str, Any]] = {}
    config: Any

    @property
    def n_latents(self) -> int:
        return int(self.config.n_latents)

    @property
    def d_in(self) -> int:
        return int(self.config.d_in)

    @property
    def row_width(self) -> int:
        """Features per training row (a transcoder's rows hold its input and its target)."""
        return self.d_in

    def decoder_atoms(self) -> Atoms | None:
        return None

    def atom_norms(self) -> Tensor | None:
        """Decoder-atom norms, for a sparsity that ``needs_atom_norms`` (else None: computed
        only when asked for)."""
        if not getattr(getattr(self, "sparsity", None), "needs_atom_norms", False):
            return None
        atoms = self.decoder_atoms_or_raise()
        return atoms.rows(atoms.weight).norm(dim=1)

    def encoder_atoms(self) -> Atoms | None:
        """The encoder's per-latent rows and bias, where the encoder is one linear layer
        (resampling re-initialises them)."""
        return None

    def pre_activation(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} exposes no code-layer pre-activation")

    def encode_at(self, x: Tensor, rows: Tensor, cols: Tensor, pre: Tensor | None = None) -> Tensor:
        """Pre-activations at (rows, cols), differentiable (the dense path: recompute)."""
        return self.pre_activation(x)[rows, cols]

    def code_values(self, pre: Tensor) -> Tensor:
        """The code's values at some entries from their pre-activations, as the model's own
        code would make them (its code activation, then what its sparsity keeps): what
        AuxK's dead latents contribute. ReLU for a model without a code activation."""
        values = getattr(self, "code_act", torch.relu)(pre)
        sparsity = getattr(self, "sparsity", None)
        return values if sparsity is None else sparsity.kept_values(values)

    def fused_step(self) -> Any:
        return None

    def decoder_target(self, rows: Tensor) -> Tensor:
        """The part of training rows the decoder reconstructs (the whole row by default; a
        transcoder's rows also hold its input), so a decoder-bias init fits the right part."""
        return rows

    def initialize_from_data(self, x: Tensor, generator: torch.Generator) -> None:
        """Data-dependent initialisation before the first step of a fresh run (a no-op)."""

    def filters(self) -> Tensor | None:
        """Input-space images of the latents (n_latents, d_in), for filter grids."""
        atoms = self.decoder_atoms()
        return None if atoms is None else atoms.rows(atoms.weight).detach()

    def decoder_atoms_or_raise(self) -> Atoms:
        atoms = self.decoder_atoms()
        if atoms is None:
            from sparseae.errors import ConfigError

            raise ConfigError(
                f"{self.checkpoint_kind} model has no linear dictionary (decoder atoms): "
                "unit-norm atoms, AuxK and resampling need one (an SAE, or an mlp autoencoder "
                "without hidden layers)"
            )
        return atoms
