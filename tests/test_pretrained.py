"""ImageNet weights as the winners used them: the presets turn them on, a local timm file loads exactly
through timm's own mechanism, no network is one line in seconds, and the gpu_full recipe runs end to
end at tiny sizes on a CPU (from a local weights file: nothing is downloaded)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pandas as pd
import pytest
import timm
import torch
from omegaconf import OmegaConf

from multimnist.build import place_model
from multimnist.config import CONF_DIR, compose
from multimnist.ensemble import run_ensemble
from multimnist.fold import run_fold
from multimnist.model import build_model, input_normalization
from multimnist.pretrained import PretrainedUnavailable, require_pretrained
from multimnist.pretraining import run_pretrain


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub and an empty Hugging Face cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@pytest.mark.parametrize("experiment", ["seed_b5", "first_place"])
def test_the_winners_presets_start_from_imagenet_weights(experiment):
    cfg = compose("train", [f"experiment={experiment}"])
    assert cfg.backbone.pretrained and cfg.backbone.normalize


def test_a_local_timm_file_loads_exactly_through_pretrained_file(tmp_path, offline):
    torch.manual_seed(0)
    saved = timm.create_model("resnet18").state_dict()  # a timm checkpoint: 3 channels, 1000 classes
    torch.save(saved, tmp_path / "resnet18.pth")
    rgb = build_model("resnet18", pretrained=True, pretrained_file=tmp_path / "resnet18.pth", in_chans=3)
    gray = build_model("resnet18", pretrained=True, pretrained_file=tmp_path / "resnet18.pth")
    for key, value in rgb.state_dict().items():
        if key.startswith("fc."):  # the 26-way head is new
            assert value.shape[0] == 26
            continue
        assert torch.equal(value, saved[key]), key
    # One gray channel: timm sums the stem's RGB filters, the rest is the file's.
    assert torch.equal(gray.state_dict()["conv1.weight"], saved["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(gray.state_dict()["layer4.1.bn2.weight"], saved["layer4.1.bn2.weight"])


def test_offline_pretrained_is_one_line_in_seconds_before_any_data_work(tmp_path):
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "multimnist.train", "backbone=effnet_b0", "backbone.pretrained=true"]
    cmd += [f"data.root={tmp_path / 'no_such_data'}", f"paths.experiments={tmp_path / 'exp'}"]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    seconds = time.perf_counter() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    line = lines[0]
    assert "efficientnet_b0.ra_in1k" in line and "HF_HUB_OFFLINE" in line
    assert "backbone.pretrained_file=FILE" in line and "backbone.weights=FILE" in line
    assert "no_such_data" not in line  # it stopped before looking at the data
    assert seconds < 25, seconds  # not timm's ~30 s of hub retries
    assert not (tmp_path / "exp").exists()


def test_a_model_timm_has_no_weights_for_is_refused_with_its_relatives(offline):
    with pytest.raises(
        PretrainedUnavailable, match="no pretrained weights for efficientnet_b6.*tf_efficientnet_b6"
    ):
        require_pretrained("efficientnet_b6", True)
    assert require_pretrained("efficientnet_b6", False) is None


def test_normalize_feeds_the_pretrained_weights_input_statistics():
    model = timm.create_model("resnet18", in_chans=1, num_classes=26)
    (mean,), (std,) = input_normalization(model, 1)
    assert mean == pytest.approx((0.485 + 0.456 + 0.406) / 3) and std == pytest.approx(
        (0.229 + 0.224 + 0.225) / 3
    )
    _, plain = place_model(model, torch.device("cpu"))
    _, normed = place_model(model, torch.device("cpu"), normalize=True)
    x = torch.full((2, 1, 8, 8), 255, dtype=torch.uint8)
    assert torch.all(plain(x) == 1.0)
    torch.testing.assert_close(normed(x), torch.full((2, 1, 8, 8), (1.0 - mean) / std))


@pytest.mark.slow  # ~1-2 min: EfficientNet-B5 on a CPU, even at 32 px
def test_gpu_full_recipe_runs_end_to_end_at_tiny_sizes(synth_root, tmp_path, offline):
    """recipe=gpu_full_glyphs's pretraining (ImageNet weights from a local file; procedural glyphs
    here), experiment=gpu_full folds from its weights.pt with the stream, the ensemble: the GPU
    recipes' stages, at debug sizes on a CPU."""
    torch.manual_seed(0)
    imagenet = tmp_path / "effnet_b5.pth"
    torch.save(timm.create_model("efficientnet_b5").state_dict(), imagenet)
    exps = tmp_path / "exp"
    cpu = [
        "trainer.precision=fp32",
        "trainer.channels_last=false",
        "trainer.num_workers=0",
        "trainer.progress=false",
    ]
    recipe = OmegaConf.load(CONF_DIR / "recipe" / "gpu_full_glyphs.yaml").stages.pretrain
    args = OmegaConf.to_container(recipe.args, resolve=False)  # glyphs.path=${mnist_data}: not given here
    shipped = [a for a in args if not a.startswith("glyphs")]  # procedural glyphs instead
    weights = run_pretrain(
        compose(
            "pretrain",
            [
                *shipped,
                f"exp={recipe.exp}",
                f"backbone.pretrained_file={imagenet}",
                f"paths.experiments={exps}",
            ]
            + ["backbone.img_size=64", "crops.per_epoch=16", "crops.eval_crops=16", "trainer.epochs=1"]
            + ["trainer.batch_size=16", *cpu],
        )
    )
    assert weights == exps / "gpu_glyphs" / "pretrain" / "weights.pt" and weights.is_file()
    train = ["experiment=gpu_full", "trainer=debug", f"backbone.weights={weights}", "backbone.img_size=32"]
    train += ["backbone.pretrained=false", "synthetic=procedural", "data.synthetic.per_epoch=8"]
    train += [f"data.root={synth_root}", f"data.cache_dir={tmp_path / 'cache'}", f"paths.experiments={exps}"]
    train += ["data.folds.n_splits=2", "trainer.batch_size=8", "trainer.tta_views=1", *cpu]
    for fold in (0, 1):
        cfg = compose("train", [*train, f"fold={fold}"])
        assert cfg.exp == "gpu_full" and cfg.backbone.name == "efficientnet_b5" and cfg.backbone.normalize
        run_fold(cfg)
    out = run_ensemble(
        compose("ensemble", [f"paths.experiments={exps}", "exp=gpu_full-debug", "ensemble.plots=false"])
    )
    sub = pd.read_csv(out / "submission.csv")
    assert len(sub) == len(pd.read_csv(synth_root / "sample_submission.csv"))
