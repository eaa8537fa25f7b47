"""multimnist: an experiment framework for multi-label letter recognition (Dacon dirty MNIST 2nd)."""

import os

# albumentations phones PyPI on import to look for updates; runs here are offline and must stay quiet.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
