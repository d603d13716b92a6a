"""edgeopt: compile a trained model into a verified, size-checked bundle for an edge device."""

__version__ = "0.1.0"
