"""printfleet: a self-hostable print cloud that never starts a print nobody asked for."""

__version__ = "0.1.0"

__all__ = ["__version__"]
