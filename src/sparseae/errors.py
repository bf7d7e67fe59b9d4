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


class TrainingDivergedError(SparseAEError, RuntimeError):
    """The loss became NaN or inf; the model keeps its last good weights."""
