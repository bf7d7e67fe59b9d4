"""sparsities."""
