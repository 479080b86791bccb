"""simgan.data."""
