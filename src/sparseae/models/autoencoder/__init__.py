"""models/autoencoder."""
