"""Presence heads, glyph crops, glyph pretraining and loading its weights into fold training."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from multimnist.build import build_model
from multimnist.config import compose
from multimnist.fold import run_fold
from multimnist.labels import NUM_CLASSES
from multimnist.model import LogMeanExp, SmallCNN, load_weights
from multimnist.pretraining import CLASSES, WEIGHTS, run_pretrain
from multimnist.synth.compositor import Compositor, CompositorConfig
from multimnist.synth.crops import NOTHING, GlyphCrops
from multimnist.synth.distractors import distractor_bank
from multimnist.synth.glyphs import split_families

from .conftest import CONF, fold_cfg

BACKBONES = sorted(p.stem for p in (CONF / "backbone").glob("*.yaml"))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_max_pooling_head_builds_every_backbone(backbone):
    b = compose("train", [f"backbone={backbone}", "backbone.global_pool=max"]).backbone
    with torch.device("meta"):
        model = build_model(b.name, in_chans=b.in_chans, global_pool="max", head=b.head)
    assert model.get_classifier().out_features == NUM_CLASSES


def test_max_pooling_answers_where_average_pooling_dilutes():
    # One bright spot: max pooling sees it at full strength whatever the image size; the average fades.
    model = build_model("multimnist_tiny", global_pool="max").eval()
    avg = build_model("multimnist_tiny", global_pool="avg").eval()
    avg.load_state_dict(model.state_dict())  # same weights: pooling is the only difference
    x = torch.zeros(1, 1, 32, 32)
    x[..., 4:8, 4:8] = 1.0
    big = torch.zeros(1, 1, 128, 128)
    big[..., 4:8, 4:8] = 1.0
    with torch.no_grad():
        assert torch.allclose(model(x), model(big), atol=1e-5)
        assert not torch.allclose(avg(x), avg(big), atol=1e-3)


def test_lse_pooling_is_a_smooth_max_between_average_and_max():
    pool = LogMeanExp()
    scores = torch.tensor([0.0, 0.0, 0.0, 4.0]).reshape(1, 1, 2, 2)  # one place sees the letter
    smooth = pool(scores).item()
    assert 1.0 < smooth < 4.0  # above the average (1), below the max (4)
    assert smooth == pytest.approx(math.log((3 + math.exp(4)) / 4), abs=1e-5)
    assert pool(torch.full((1, 1, 3, 3), 2.5)).item() == pytest.approx(2.5, abs=1e-5)  # agree when flat
    model = build_model("multimnist_fcn", head="per_location", global_pool="lse").eval()
    assert isinstance(model.global_pool, LogMeanExp)  # cpu_full's pooling reaches the network
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        f = model.forward_features(x)
        per_place = (
            torch.einsum("bchw,kc->bkhw", f, model.classifier.weight) + model.classifier.bias[:, None, None]
        )
        assert torch.allclose(model(x), pool(per_place), atol=1e-4)
    with pytest.raises(
        ValueError, match="global_pool=lse pools class scores: for resnet18 use head=per_location"
    ):
        build_model("resnet18", global_pool="lse")


def test_vgg_backbones_convolve_at_full_resolution_and_max_pool_between_stages():
    model = build_model("multimnist_vgg_narrow")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    pools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool2d)]
    assert len(convs) == 8 and all(c.stride == (1, 1) for c in convs)
    assert len(pools) == 4
    assert model.forward_features(torch.zeros(1, 1, 64, 64)).shape == (1, 128, 4, 4)
    strided = build_model("multimnist_small")  # the stride-2 design: the same output grid, no pools
    assert strided.forward_features(torch.zeros(1, 1, 64, 64)).shape[2:] == (4, 4)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in strided.modules())
    with pytest.raises(ValueError, match="downsample must be one of"):
        SmallCNN((8,), downsample="avgpool")


def test_per_location_head_scores_each_place_then_takes_the_best():
    model = build_model("multimnist_fcn", head="per_location", global_pool="max").eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        f = model.forward_features(x)  # [2, C, 8, 8]
        per_place = (
            torch.einsum("bchw,kc->bkhw", f, model.classifier.weight) + model.classifier.bias[:, None, None]
        )
        assert torch.allclose(model(x), per_place.amax((2, 3)), atol=1e-4)


@pytest.fixture(scope="module")
def crops(bank):
    compositor = Compositor(CompositorConfig(), bank, distractor_bank(0), seed=0)
    train_rows, held_rows = split_families(bank.families, 0.2, seed=0)
    return compositor, train_rows, held_rows


def test_held_out_glyphs_are_other_families(crops, bank):
    _, train_rows, held_rows = crops
    assert len(held_rows) and not set(bank.families[train_rows]) & set(bank.families[held_rows])


def test_crops_are_a_function_of_seed_epoch_and_index(crops):
    compositor, rows, _ = crops
    ds = GlyphCrops(compositor, rows, length=400, crop=64, img_size=32, nothing=0.25, seed=3)
    x0, y0, _ = ds[7]
    assert x0.shape == (1, 32, 32) and 0 <= y0 <= NOTHING
    assert torch.equal(ds[7][0], x0)
    ds.set_epoch(1)
    assert not torch.equal(ds[7][0], x0)
    labels = np.array([ds[i][1] for i in range(400)])
    assert 0.15 < (labels == NOTHING).mean() < 0.35 and len(set(labels.tolist())) == CLASSES


def test_a_crop_shows_its_letter_in_the_middle(crops):
    compositor, rows, _ = crops
    ds = GlyphCrops(compositor, rows, 50, crop=64, img_size=64, denoise=True, neighbours=0, distractor=0.0)
    ink_mid, ink_none = [], []
    for i in range(50):
        x, y, _ = ds[i]
        (ink_none if y == NOTHING else ink_mid).append(float(x[0, 20:44, 20:44].float().mean()))
    assert np.mean(ink_mid) > 5 * max(np.mean(ink_none), 1e-3)  # denoised noise leaves ~0.4% of pixels


def _pretrain(tmp_path, backbone: str, *extra: str):
    overrides = [
        f"backbone={backbone}",
        "exp=pt",
        f"paths.experiments={tmp_path}",
        "crops.per_epoch=96",
        "crops.eval_crops=48",
        "trainer.epochs=2",
        "trainer.batch_size=32",
        "trainer.num_workers=0",
        "trainer.progress=false",
        *extra,
    ]
    return compose("pretrain", overrides)


def test_a_timm_backbone_pretrains_and_fine_tunes_with_the_per_location_head(tmp_path, synth_root):
    head = ["backbone.head=per_location", "backbone.global_pool=max", "backbone.img_size=64"]
    cfg = _pretrain(tmp_path, "resnet18", *head, "trainer.epochs=1", "crops.per_epoch=32")
    weights = run_pretrain(cfg)
    saved = torch.load(weights, weights_only=True)["model"]
    assert saved["fc.weight"].shape[0] == CLASSES  # timm's own key names: no wrapper prefix
    model = build_model("resnet18", weights=weights, head="per_location", global_pool="max")
    assert torch.equal(model.get_classifier().weight, saved["fc.weight"][:NUM_CLASSES])
    assert torch.equal(model.conv1.weight, saved["conv1.weight"])
    run = run_fold(
        fold_cfg(
            synth_root,
            tmp_path,
            "backbone=resnet18",
            *head,
            f"backbone.weights={weights}",
            "trainer.epochs=1",
        )
    )
    assert (run / "test_logits.npy").is_file()


def test_pretraining_writes_weights_that_fold_training_loads(tmp_path, synth_root):
    cfg = _pretrain(tmp_path, "tiny")
    weights = run_pretrain(cfg)
    assert weights == tmp_path / "pt" / "pretrain" / WEIGHTS
    metrics = pd.read_csv(weights.parent / "metrics.csv")
    assert list(metrics.epoch) == [0, 1] and metrics.heldout_top1.between(0, 1).all()
    saved = torch.load(weights, weights_only=True)
    assert saved["model"]["classifier.weight"].shape[0] == CLASSES

    model = build_model("multimnist_tiny", weights=weights)
    assert torch.equal(model.classifier.weight, saved["model"]["classifier.weight"][:NUM_CLASSES])
    assert torch.equal(model.features[0][0].weight, saved["model"]["features.0.0.weight"])

    run = run_fold(fold_cfg(synth_root, tmp_path, f"backbone.weights={weights}", "trainer.epochs=1"))
    assert (run / "test_logits.npy").is_file()


def test_pretraining_resumes_exactly_and_skips_when_finished(tmp_path, caplog):
    whole = run_pretrain(_pretrain(tmp_path, "tiny", "exp=whole"))
    parted = _pretrain(tmp_path, "tiny", "exp=parted", "trainer.stop_after=1")
    assert run_pretrain(parted) is None  # paused after epoch 0: no weights yet
    weights = run_pretrain(parted)
    timing = ["img_per_s", "seconds"]
    a, b = (pd.read_csv(w.parent / "metrics.csv").drop(columns=timing) for w in (whole, weights))
    pd.testing.assert_frame_equal(a, b)
    assert torch.equal(
        torch.load(whole, weights_only=True)["model"]["classifier.weight"],
        torch.load(weights, weights_only=True)["model"]["classifier.weight"],
    )
    stamp = weights.stat().st_mtime_ns
    with caplog.at_level("INFO"):
        run_pretrain(parted)
    assert "is finished" in caplog.text and weights.stat().st_mtime_ns == stamp


def test_a_timm_backbone_pretrains_and_loads(tmp_path):
    cfg = _pretrain(
        tmp_path, "mobilenetv3_small", "backbone.img_size=64", "crops.size=128", "trainer.epochs=1"
    )
    weights = run_pretrain(cfg)
    model = build_model("mobilenetv3_small_100", weights=weights)
    saved = torch.load(weights, weights_only=True)["model"]
    assert torch.equal(model.classifier.weight, saved["classifier.weight"][:NUM_CLASSES])


def test_weights_of_another_backbone_are_refused_by_name(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"model": build_model("multimnist_small").state_dict()}, path)
    with pytest.raises(ValueError, match=r"w\.pt: .*has shape"):
        load_weights(build_model("multimnist_tiny"), path)


def test_rgb_first_conv_is_summed_to_gray(tmp_path):
    rgb = build_model("multimnist_tiny", in_chans=3)
    path = tmp_path / "rgb.pt"
    torch.save(rgb.state_dict(), path)
    gray = build_model("multimnist_tiny", in_chans=1, weights=path)
    first = "features.0.0.weight"
    assert torch.allclose(gray.state_dict()[first], rgb.state_dict()[first].sum(1, keepdim=True))
