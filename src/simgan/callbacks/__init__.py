"""simgan.callbacks."""
