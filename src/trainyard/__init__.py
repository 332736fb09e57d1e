"""trainyard: a self-hosted ML platform.

The tracking SDK surface (``init``, ``log_metric``…) arrives with the tracking issue; for now
this package exposes its version.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
