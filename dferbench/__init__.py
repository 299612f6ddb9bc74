"""dferbench: an evaluation harness for dynamic facial expression recognition."""

from dferbench.plugin.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
