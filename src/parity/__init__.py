"""parity: prove that a PyTorch model is still the same model on another machine."""

from parity._version import __version__
from parity.errors import ParityError

__all__ = ["ParityError", "__version__"]
