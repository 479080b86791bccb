"""simgan.utils."""
