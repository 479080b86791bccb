"""simgan.data.simulators."""
