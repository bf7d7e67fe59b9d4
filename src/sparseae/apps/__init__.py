"""Small end-to-end applications built on sparseae (models to inspect, demos)."""
