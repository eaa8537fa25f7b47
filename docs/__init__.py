"""The documentation pages, shipped inside the wheel as the package `multimnist.docs` (pyproject
maps this folder to it), so `--help` can name where they are on any installed machine."""
