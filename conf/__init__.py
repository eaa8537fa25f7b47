"""The Hydra configs, shipped inside the wheel as the package `multimnist.conf` (pyproject maps this
folder to it), so an installed multimnist finds them through `pkg://multimnist.conf`."""
