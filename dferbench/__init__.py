"""dferbench: an evaluation harness for dynamic facial expression recognition."""

from dferbench.plugin.hookspecs import hookimpl
from dferbench.run.config import Option, check_file, check_text_set

__version__ = "0.1.0"
__all__ = ["hookimpl", "Option", "check_file", "check_text_set", "__version__"]
