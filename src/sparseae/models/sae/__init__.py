"""models/sae."""
