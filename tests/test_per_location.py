"""backbone.head=per_location on timm backbones (multimnist.model.PerLocation): the backbone's feature
map scored at every place by its own classifier, the places pooled; the state dict stays timm's."""

from __future__ import annotations

import copy

import pytest
import torch

from multimnist.labels import NUM_CLASSES
from multimnist.model import LogMeanExp, PerLocation, build_model, load_weights

from .conftest import compose_train


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "resnet18"])
def test_the_scores_map_has_one_value_per_place_and_letter_and_the_max_is_the_answer(name):
    model = build_model(name, head="per_location", global_pool="max").eval()
    assert isinstance(model, PerLocation)
    x = torch.rand(2, 1, 128, 128)
    with torch.no_grad():
        scores = model.location_scores(x)
        features = model.forward_features(x)
        c = model.get_classifier()
        by_hand = torch.einsum("bchw,kc->bkhw", features, c.weight) + c.bias[:, None, None]
        assert scores.shape == (2, NUM_CLASSES, 4, 4)  # stride 32: 4 x 4 places at 128 px
        assert torch.allclose(scores, by_hand, atol=1e-4)
        assert torch.allclose(model(x), scores.amax((2, 3)), atol=1e-5)


def test_lse_pools_the_scores_of_a_timm_backbone():
    model = build_model("resnet18", head="per_location", global_pool="lse").eval()
    x = torch.rand(1, 1, 96, 96)
    with torch.no_grad():
        assert torch.allclose(model(x), LogMeanExp()(model.location_scores(x)), atol=1e-5)


def test_the_state_dict_is_the_backbones_so_weights_move_between_heads(tmp_path):
    pooled = build_model("tf_efficientnet_lite0", global_pool="max", num_classes=NUM_CLASSES + 1)
    located = build_model("tf_efficientnet_lite0", head="per_location", global_pool="max")
    assert list(pooled.state_dict()) == list(located.state_dict())
    torch.save({"model": pooled.state_dict()}, tmp_path / "weights.pt")  # a glyph-pretraining file (27)
    report = load_weights(located, tmp_path / "weights.pt")
    assert report["adapted"] == ["classifier.weight", "classifier.bias"]
    assert torch.equal(located.classifier.weight, pooled.classifier.weight[:NUM_CLASSES])
    assert torch.equal(located.conv_stem.weight, pooled.conv_stem.weight)


def test_a_copy_holds_its_own_modules_as_ema_needs():
    model = build_model("resnet18", head="per_location", global_pool="max")
    twin = copy.deepcopy(model)
    assert twin.backbone.conv1 is twin.conv1 and twin.conv1 is not model.conv1
    with torch.no_grad():
        twin.conv1.weight.zero_()
    assert model.conv1.weight.abs().sum() > 0
    model.eval()
    assert not model.backbone.training and not model.conv1.training


def test_heads_that_cannot_score_places_are_refused():
    with pytest.raises(ValueError, match="catavgmax"):
        build_model("resnet18", head="per_location", global_pool="catavgmax")
    with pytest.raises(ValueError, match="its classifier must take 288 features, not 1024"):
        build_model("mobilenetv3_small_050", head="per_location", global_pool="max")  # a hidden layer


def test_the_config_key_reaches_a_timm_backbone():
    cfg = compose_train(
        ["backbone=tf_effnet_lite0", "backbone.head=per_location", "backbone.global_pool=max"]
    )
    b = cfg.backbone
    model = build_model(b.name, head=b.head, global_pool=b.global_pool, in_chans=b.in_chans)
    assert isinstance(model, PerLocation) and model.conv_stem.in_channels == 1


def test_a_truncated_backbone_scores_a_finer_map_with_the_cut_stages_weights(tmp_path):
    torch.manual_seed(0)
    whole = build_model("tf_efficientnet_lite0")
    torch.manual_seed(0)
    cut = build_model("tf_efficientnet_lite0", head="per_location", global_pool="lse", truncate_stride=16)
    x = torch.zeros(1, 1, 128, 128)
    assert cut.eval().location_scores(x).shape == (1, NUM_CLASSES, 8, 8)  # stride 16, not 32's 4 x 4
    assert cut.get_classifier().in_features == 112 and len(cut.blocks) == 5 < len(whole.blocks)
    kept = cut.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in whole.state_dict().items() if k.startswith("blocks.4."))
    torch.save({"model": kept}, tmp_path / "cut.pt")  # a truncated pretraining's weights load back
    again = build_model(
        "tf_efficientnet_lite0", head="per_location", truncate_stride=16, weights=tmp_path / "cut.pt"
    )
    assert torch.equal(again.get_classifier().weight, cut.get_classifier().weight)


def test_a_stride_the_backbone_lacks_or_a_network_of_ours_is_refused_in_one_line():
    with pytest.raises(
        ValueError,
        match=r"truncate_stride=12: tf_efficientnet_lite0's stages end at strides \[2, 4, 8, 16, 32\]",
    ):
        build_model("tf_efficientnet_lite0", truncate_stride=12)
    with pytest.raises(ValueError, match="multimnist_fcn sets its own strides"):
        build_model("multimnist_fcn", truncate_stride=8)


def test_the_truncate_key_reaches_the_network_and_stored_configs_without_it_read_as_whole():
    from multimnist.config import model_args
    from multimnist.rundir import with_added_keys

    cfg = compose_train(
        ["backbone=tf_effnet_lite0", "backbone.truncate_stride=16", "backbone.head=per_location"]
    )
    assert model_args(cfg)["truncate_stride"] == 16
    model = build_model(**model_args(cfg))
    assert model.get_classifier().in_features == 112
    old = {"backbone": {k: v for k, v in model_args(cfg).items() if k != "truncate_stride"}}
    assert model_args(with_added_keys(old))["truncate_stride"] is None
