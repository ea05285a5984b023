"""OpenFunction functions framework for Python."""

from openfunction.signature import cloud_event, function, http

__version__ = "0.1.0"

__all__ = ["http", "cloud_event", "function", "__version__"]
