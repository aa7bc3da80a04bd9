"""The SDK version (the cocoon release it belongs to)."""
__version__ = "0.1.0"
