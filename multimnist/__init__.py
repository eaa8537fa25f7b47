"""multimnist: an experiment framework for multi-label letter recognition (Dacon dirty MNIST 2nd)."""

import os

# albumentations phones PyPI on import to look for updates; runs here are offline and must stay quiet.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# OpenCV prints its own warnings to stderr (a cut-short PNG: "PNG input buffer is incomplete") beside
# the one error line that names the file; errors still raise.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

__version__ = "0.1.0"
