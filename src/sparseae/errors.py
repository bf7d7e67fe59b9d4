"""Typed errors: every problem a user can cause is one of these, with a message that names
the problem and the fix, so the CLI can print it as one line (exit code 2) instead of a
traceback from deep inside PyTorch or NumPy."""

from __future__ import annotations


class SparseAEError(Exception):
    """Base class of every error sparseae raises on purpose."""


class ConfigError(SparseAEError, ValueError):
    """An invalid setting (k larger than the number of latents, rho outside (0, 1), ...)."""


class DataError(SparseAEError, ValueError):
    """Data that cannot be used: missing, corrupt, non-numeric, NaN/inf, mismatched lengths."""


class CheckpointError(SparseAEError):
    """A saved model folder that is missing, incomplete or not a sparseae checkpoint."""


class CheckpointWriteError(CheckpointError, OSError):
    """A file could not be written (a full disk, a folder gone read-only); the previous
    version of the file is intact."""

    def __str__(self) -> str:  # the message alone, not OSError's "[Errno N] ..."
        return str(self.strerror or super().__str__())


class TrainingDivergedError(SparseAEError, RuntimeError):
    """The run diverged (NaN/inf loss, a loss that exploded) or collapsed (every latent
    dead); the model keeps its last good weights."""
