"""Typed schemas for every config group, their value checks, and `register_configs()`.

Each group option in `conf/` (e.g. `conf/optimizer/sgd.yaml`) names its schema in its defaults list,
so Hydra checks types when it composes (`optimizer.lr=abc` fails there, naming the key) and refuses
keys the schema does not have. Ranges Hydra cannot express (lr > 0, batch_size >= 1, ...) are field
metadata here, checked by `validate`. Nothing is registered on import: entry points, tests and
notebooks call `register_configs()` first:

    from hydra import compose, initialize_config_dir
    from multimnist.config import CONF_DIR, register_configs
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["backbone=effnet_b5"])

`compose(name, overrides)` does both for the project's own `conf/` folder. The `*_args` adapters at
the bottom turn a composed config into the plain arguments of `multimnist.build`'s builders: the
only place that knows both shapes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from multimnist.choices import (
    AGGREGATIONS,
    DECODINGS,
    DEVICE_AUGMENT,
    FOLD_METHODS,
    GLOBAL_POOLS,
    GLYPH_POOLS,
    GLYPH_SOURCES,
    HEADS,
    PRECISIONS,
    TTA_VIEWS,
    VIEW_SETS,
    WANDB_MODES,
)
from multimnist.data.dacon import DaconLayout
from multimnist.rundir import experiment_name, fold_dir
from multimnist.synth.options import CompositorConfig

CONF_PACKAGE = "multimnist.conf"  # conf/ in a checkout; shipped inside the wheel under this name
CONF_DIR = Path(str(resources.files(CONF_PACKAGE)))  # the config tree the entry points read


class ConfigError(ValueError):
    """A config value of the wrong range; the message names the key."""


def check(test: Callable[[Any], bool], what: str) -> dict:
    """Field metadata: `validate` requires `test(value)` (None passes: it means "off")."""
    return {"check": (test, what)}


def _positive(default: Any = MISSING) -> Any:
    return field(default=default, metadata=check(lambda v: v > 0, "must be > 0"))


def _at_least(low: float, default: Any = MISSING) -> Any:
    return field(default=default, metadata=check(lambda v: v >= low, f"must be >= {low}"))


def _fraction(default: Any = MISSING, closed: bool = False) -> Any:
    """In [0, 1) (or [0, 1] when closed)."""
    if closed:
        return field(default=default, metadata=check(lambda v: 0 <= v <= 1, "must be in [0, 1]"))
    return field(default=default, metadata=check(lambda v: 0 <= v < 1, "must be in [0, 1)"))


def _folder_name(default: Any = MISSING) -> Any:
    """An experiment name: one plain folder name (it becomes `<paths.experiments>/<exp>/`)."""
    ok = lambda v: v not in ("", ".", "..") and "/" not in v and "\\" not in v  # noqa: E731
    return field(default=default, metadata=check(ok, "must be a plain folder name (no '/', not empty)"))


def _path(default: Any = MISSING) -> Any:
    """A file or folder path: an empty one (an unset shell variable) is an error naming the key."""
    ok = lambda v: str(v).strip() != ""  # noqa: E731
    return field(default=default, metadata=check(ok, "is empty (an unset shell variable?); give a path"))


def _one_of(choices: tuple, default: Any = MISSING) -> Any:
    return field(default=default, metadata=check(lambda v: v in choices, f"must be one of {choices}"))


# --- the train config's groups ------------------------------------------------------------------


@dataclass
class FoldsConfig:
    method: str = _one_of(FOLD_METHODS, "stratified")
    n_splits: int = _at_least(2, 5)
    seed: int = 42


_DACON = {f.name: f.default for f in dataclasses.fields(DaconLayout)}  # the names Dacon ships


@dataclass
class GlyphsConfig:
    source: str = _one_of(GLYPH_SOURCES, "procedural")
    path: Any = None
    pool: str | None = _one_of(GLYPH_POOLS, None)  # A or B: one of two disjoint halves (glyphs.glyph_pool)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SyntheticConfig:
    """Training images composed on the fly from a glyph source (multimnist.synth.stream): every epoch
    `per_epoch` fresh images join each fold's training images (0: off). `synthetic=dacon7` presets it."""

    per_epoch: int = _at_least(0, 0)
    glyphs: GlyphsConfig = field(default_factory=GlyphsConfig)
    compositor: CompositorConfig = field(default_factory=CompositorConfig)


@dataclass
class DataConfig:
    """A dataset root in Dacon's layout (multimnist.data.dacon.DaconLayout) and how it is read."""

    root: str | None = _path("data/synth")
    train_dir: str = _DACON["train_dir"]
    train_csv: str = _DACON["train_csv"]
    test_dir: str = _DACON["test_dir"]
    sample_submission: str = _DACON["sample_submission"]
    test_answer: str = _DACON["test_answer"]
    meta: str = _DACON["meta"]
    image_size: int = _positive(_DACON["image_size"])
    denoise: bool = False
    cache: bool = True
    cache_dir: str | None = _path(None)
    folds: FoldsConfig = field(default_factory=FoldsConfig)
    pseudo_labels: str | None = _path(None)  # an index,a..z CSV of test ids added to every fold's training
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class BackboneConfig:
    """Shared by every backbone option: an option sets `name` and what differs from these defaults."""

    name: str = MISSING  # a timm model name, optionally with its pretrained tag (name.tag)
    pretrained: bool = False  # timm's weights (ImageNet): HF cache/hub, or pretrained_file
    # timm's local-file route for `pretrained`: pretrained_cfg_overlay=dict(file=...)
    pretrained_file: str | None = _path(None)
    normalize: bool = False  # feed the mean/std the pretrained weights expect, not [0, 1] pixels
    weights: str | None = _path(None)
    in_chans: int = _one_of((1, 3), 1)
    drop_rate: float = _fraction(0.0)
    drop_path_rate: float | None = _fraction(None)
    img_size: int = _positive(128)
    global_pool: str = _one_of(GLOBAL_POOLS, "avg")  # avg | max | avgmax | catavgmax (timm's) | lse
    head: str = _one_of(HEADS, "pooled")  # pooled (timm's) | per_location (every place scored, then pooled)
    # A timm backbone cut after its stage at this stride (e.g. 16: EfficientNet's stages 0-3 and their
    # ImageNet weights, no later stage, no head conv): a finer feature map at a fraction of the compute
    truncate_stride: int | None = _positive(None)


@dataclass
class OptimizerConfig:
    opt: str = MISSING  # any timm.optim.create_optimizer_v2 name: adam, radam, lookahead_radam, ...
    lr: float = _positive(1e-3)
    weight_decay: float = _at_least(0, 0.0)


@dataclass
class MomentumOptimizerConfig(OptimizerConfig):
    momentum: float = _fraction(0.9)


@dataclass
class ConstantScheduleConfig:
    name: str = "none"


@dataclass
class WarmupScheduleConfig:
    """timm schedules stepped per update: linear warmup from warmup_lr, then down to min_lr."""

    warmup_epochs: int = _at_least(0, 0)
    warmup_lr: float = _at_least(0, 1e-5)
    min_lr: float = _at_least(0, 0.0)


@dataclass
class CosineScheduleConfig(WarmupScheduleConfig):
    name: str = "cosine"
    num_epochs: int | None = _at_least(1, None)
    cycle_limit: int = _at_least(1, 1)


@dataclass
class PlateauScheduleConfig:
    name: str = "plateau"
    patience_epochs: int = _at_least(0, 2)
    decay_rate: float = _fraction(0.5, closed=True)
    min_lr: float = _at_least(0, 1e-6)


@dataclass
class StepScheduleConfig(WarmupScheduleConfig):
    name: str = "step"
    decay_epochs: int = _at_least(1, 10)
    decay_rate: float = _fraction(0.1, closed=True)


@dataclass
class AugmentationConfig:
    steps: list[Any] = field(default_factory=list)  # albumentations transforms: [{Name: {kwargs}}, ...]


@dataclass
class SoftMarginLossConfig:
    name: str = "soft_margin"


@dataclass
class BCELossConfig:
    name: str = "bce"
    smoothing: float = _fraction(0.0)


@dataclass
class AsymmetricLossConfig:
    name: str = "asymmetric"
    gamma_pos: float = _at_least(0, 0.0)
    gamma_neg: float = _at_least(0, 4.0)
    clip: float = _fraction(0.05)


@dataclass
class WandbConfig:
    mode: str = _one_of(WANDB_MODES, "offline")
    project: str = "multimnist"
    entity: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class LoggerConfig:
    wandb: WandbConfig | None = None


@dataclass
class LoopConfig:
    """What every training loop takes: fold training's `trainer` and glyph pretraining's."""

    epochs: int = _at_least(1, 10)
    batch_size: int = _at_least(1, 32)
    num_workers: int = _at_least(0, 2)  # DataLoader worker processes; 0 loads in the main process
    precision: str = _one_of(PRECISIONS, "auto")
    channels_last: bool = False
    clip_grad: float | None = _positive(None)
    seed: int = 0
    progress: bool = True
    resume: bool = True
    stop_after: int | None = _at_least(1, None)  # epochs this invocation; re-run to go on
    device: str = "auto"
    overwrite: bool = False


@dataclass
class TrainerConfig(LoopConfig):
    accum_steps: int = _at_least(1, 1)
    ema: bool = False
    ema_decay: float = _fraction(0.999)
    compile: bool = False
    patience: int | None = _at_least(1, None)
    tta_views: int = _one_of(TTA_VIEWS, 4)
    limit_batches: int | None = _at_least(1, None)  # only this many batches per epoch (trainer=debug)
    device_augment: str = _one_of(DEVICE_AUGMENT, "auto")  # rot90/flips batched on the device


@dataclass
class PathsConfig:
    experiments: str = _path("experiments")


@dataclass
class TrainConfig:
    """Top-level keys; each group is typed by the schema its option names (see GROUP_SCHEMAS)."""

    exp: str = _folder_name("default")
    fold: int = _at_least(0, 0)
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: Any = None
    backbone: Any = None
    optimizer: Any = None
    scheduler: Any = None
    augmentation: Any = None
    loss: Any = None
    logger: Any = None
    trainer: Any = None


# --- the ensemble's and the generator's configs ---------------------------------------------------


@dataclass
class EnsembleOptions:
    experiments: list[str] = field(default_factory=list)
    weights: list[float] | None = None
    allow_partial: bool = False
    aggregation: str = _one_of(("auto", *AGGREGATIONS), "auto")
    views: str = _one_of(("auto", *VIEW_SETS), "auto")
    decoding: str = _one_of(("auto", *DECODINGS), "auto")
    count_range: list[int] | None = field(
        default=None, metadata=check(lambda v: len(v) == 2, "must be [low, high]")
    )
    temperature: bool = True
    repredict: bool = False
    tta_views: int | None = _one_of(TTA_VIEWS, None)
    plots: bool = True
    seed: int = 0


@dataclass
class EnsembleConfig:
    exp: str | None = _folder_name(None)
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: Any = None
    ensemble: EnsembleOptions = field(default_factory=EnsembleOptions)


@dataclass
class SynthConfig:
    out: str = _path()
    n_train: int = _at_least(0, 2000)
    n_test: int = _at_least(0, 500)
    seed: int = 0
    workers: int | None = _at_least(1, None)
    overwrite: bool = False
    progress: bool = True
    png_compression: int = field(default=0, metadata=check(lambda v: 0 <= v <= 9, "must be in 0..9"))
    test_glyphs_held_out: float = _fraction(0.0)  # share of glyph families only test images use
    compositor: CompositorConfig = field(default_factory=CompositorConfig)
    glyphs: GlyphsConfig = field(default_factory=GlyphsConfig)


@dataclass
class ShowConfig:
    """A preview grid of generated (and real) images (multimnist.synth.show)."""

    out: str = _path("data_preview.png")
    n: int = _at_least(1, 8)
    seed: int = 0
    real: str | None = _path(None)
    compositor: CompositorConfig = field(default_factory=CompositorConfig)
    glyphs: GlyphsConfig = field(default_factory=GlyphsConfig)


@dataclass
class CropsConfig:
    """Single-glyph crops for pretraining (multimnist.synth.crops.GlyphCrops)."""

    size: int | None = _positive(None)  # native px; null = 1.5 x compositor.size_max, rounded up to 8
    image_size: int = _positive(256)  # full images' native size: crops shrink by backbone.img_size / this
    denoise: bool = True  # keep-255, as data.denoise does for fold training
    nothing: float = _fraction(0.2)  # share of crops with no centred letter (class 26)
    neighbours: int = _at_least(0, 2)  # truncated neighbour letters at the borders, 0..this many
    distractor: float = _fraction(0.3, closed=True)  # chance of one Hangul-like mark
    per_epoch: int = _at_least(1, 20000)  # crops per epoch (rendered on the fly, never repeated)
    held_out: float = _fraction(0.1)  # share of glyph families kept out of training, for the accuracy
    eval_crops: int = _at_least(1, 2000)  # fixed crops of held-out glyphs scored after each epoch


@dataclass
class HarvestConfig:
    """Self-training: crops of the user's own training images (multimnist.harvest), mixed in."""

    exp: str | None = _folder_name(None)  # a fine-tuned experiment whose folds find the letters; null: off
    min_confidence: float = _fraction(0.5, closed=True)  # a letter's probability at its best place
    top_share: float = _fraction(0.5, closed=True)  # and, per letter, among its most confident share
    share: float = _fraction(0.5, closed=True)  # share of training crops that are harvested ones


@dataclass
class PretrainConfig:
    exp: str = _folder_name("pretrain")
    paths: PathsConfig = field(default_factory=PathsConfig)
    backbone: Any = None
    optimizer: Any = None
    scheduler: Any = None
    crops: CropsConfig = field(default_factory=CropsConfig)
    harvest: HarvestConfig = field(default_factory=HarvestConfig)
    trainer: LoopConfig = field(default_factory=LoopConfig)
    compositor: CompositorConfig = field(default_factory=CompositorConfig)
    glyphs: GlyphsConfig = field(default_factory=GlyphsConfig)


@dataclass
class PredictConfig:
    """An ensembled experiment applied to a folder of images (multimnist.predict)."""

    exp: str = _folder_name(MISSING)
    images: str = _path()
    out: str = _path()
    answers: str | None = _path(None)  # the images' true letters (index,a..z): predict scores itself
    paths: PathsConfig = field(default_factory=PathsConfig)
    batch_size: int = _at_least(1, 64)
    num_workers: int = _at_least(0, 2)
    device: str = "auto"
    progress: bool = True


STAGE_COMMANDS = ("synth", "pretrain", "train", "ensemble")  # a recipe stage runs python -m multimnist.<one>


@dataclass
class StageConfig:
    """One stage of a recipe (multimnist.recipe): one of the package's commands with its overrides."""

    command: str = _one_of(STAGE_COMMANDS)
    exp: str | None = _folder_name(None)  # pretrain, train, ensemble: the experiment it writes / reads
    args: list[str] = field(default_factory=list)  # the recipe's overrides of the command
    extra: list[str] = field(default_factory=list)  # yours, after args (stages.NAME.extra=[k=v,...])
    weights: str | None = None  # pretrain, train: start from that pretrain stage's weights
    harvest: str | None = None  # pretrain: mix in crops that train stage's folds find (self-training)
    pseudo_labels: str | None = None  # train: label the test images with that ensemble stage's submission


@dataclass
class RecipeDataConfig:
    root: str = _path()  # the dataset every stage uses; a synth stage writes it


@dataclass
class RecipeExtraConfig:
    """Overrides added to every stage of a command (extra.train=[trainer.epochs=1], ...)."""

    synth: list[str] = field(default_factory=list)
    pretrain: list[str] = field(default_factory=list)
    train: list[str] = field(default_factory=list)
    ensemble: list[str] = field(default_factory=list)


@dataclass
class RecipeConfig:
    """python -m multimnist.recipe recipe=NAME: a recipe's stages, run in order (multimnist.stages)."""

    description: str = ""
    data: RecipeDataConfig = field(default_factory=RecipeDataConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    mnist_data: str | None = _path(
        None
    )  # the Dacon-7 CSVs (folder or file): recipes using the competition's letters
    folds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])  # every train stage's: folds=[0,1]
    stages: dict[str, StageConfig] = field(default_factory=dict)
    extra: RecipeExtraConfig = field(default_factory=RecipeExtraConfig)
    bar: float | None = _fraction(None, closed=True)  # exit 1 when the gap closed on the test set is below it
    dry_run: bool = False  # print the stages' commands and whether each is finished; run nothing


# (group, schema name that an option's defaults list names, dataclass)
GROUP_SCHEMAS = (
    ("data", "data_schema", DataConfig),
    ("backbone", "backbone_schema", BackboneConfig),
    ("optimizer", "optimizer_schema", OptimizerConfig),
    ("optimizer", "momentum_optimizer_schema", MomentumOptimizerConfig),
    ("scheduler", "constant_schema", ConstantScheduleConfig),
    ("scheduler", "cosine_schema", CosineScheduleConfig),
    ("scheduler", "plateau_schema", PlateauScheduleConfig),
    ("scheduler", "step_schema", StepScheduleConfig),
    ("augmentation", "augmentation_schema", AugmentationConfig),
    ("loss", "soft_margin_schema", SoftMarginLossConfig),
    ("loss", "bce_schema", BCELossConfig),
    ("loss", "asymmetric_schema", AsymmetricLossConfig),
    ("logger", "logger_schema", LoggerConfig),
    ("trainer", "trainer_schema", TrainerConfig),
)


def parallel_jobs() -> int:
    """How many fold jobs hydra/launcher=parallel runs at once: one per GPU, or 2 on a CPU machine."""
    import torch

    return torch.cuda.device_count() or 2


def group_options(*groups: str) -> str:
    """`group: option, option, ...` lines for an entry point's --help, read from the config folder
    (the schemas Hydra also lists as options are left out)."""
    lines = []
    for group in groups:
        names = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        lines.append(f"  {group}: {', '.join(names)}")
    return "\n".join(lines)


def recipe_list() -> str:
    """`  name: description` lines of the shipped recipes (conf/recipe/), for multimnist.recipe --help."""
    lines = []
    for path in sorted((CONF_DIR / "recipe").glob("*.yaml")):
        lines.append(f"  {path.stem}: {OmegaConf.load(path).get('description', '')}")
    return "\n".join(lines)


DOCS_PACKAGE = "multimnist.docs"  # docs/ in a checkout; shipped inside the wheel under this name


def docs_address() -> str:
    """Where the documentation pages are on this machine, for --help (in the wheel, or docs/ here)."""
    try:
        where = Path(str(resources.files(DOCS_PACKAGE)))
    except ModuleNotFoundError:
        return "Docs: README.md and docs/ in the multimnist repository."
    pages = ", ".join(sorted(p.name for p in where.glob("*.md")))
    return f"Docs: {where}/ ({pages})."


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore and register the `parallel_jobs` resolver.

    Idempotent; call it before composing (`@hydra.main` entry points do it before Hydra starts).
    """
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="ensemble_schema", node=EnsembleConfig)
    cs.store(name="synth_schema", node=SynthConfig)
    cs.store(name="pretrain_schema", node=PretrainConfig)
    cs.store(name="predict_schema", node=PredictConfig)
    cs.store(name="show_schema", node=ShowConfig)
    cs.store(name="recipe_schema", node=RecipeConfig)
    for group, name, schema in GROUP_SCHEMAS:
        cs.store(group=group, name=name, node=schema)
    OmegaConf.register_new_resolver("parallel_jobs", parallel_jobs, replace=True)
    OmegaConf.register_new_resolver("multimnist_groups", group_options, replace=True)
    OmegaConf.register_new_resolver("multimnist_docs", docs_address, replace=True)
    OmegaConf.register_new_resolver("multimnist_recipes", recipe_list, replace=True)


def compose(config_name: str = "train", overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The composed config (`train`, `ensemble` or `synth`) for these overrides, as the CLI would see it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))


# --- value checks ---------------------------------------------------------------------------------


def _problems(node: Any, prefix: str) -> list[str]:
    """Unknown keys and out-of-range values under `node`, each naming its full key."""
    if not isinstance(node, DictConfig):
        return []
    schema = OmegaConf.get_type(node)
    out: list[str] = []
    if dataclasses.is_dataclass(schema):
        known = {f.name: f for f in dataclasses.fields(schema)}
        out += [f"{prefix}{k}: unknown key (not in {schema.__name__})" for k in node if k not in known]
        for name, f in known.items():
            rule = f.metadata.get("check")
            value = node.get(name)
            if rule is not None and value is not None and not rule[0](value):
                out.append(f"{prefix}{name} {rule[1]}, got {value!r}")
    for key in node:
        out += _problems(node[key], f"{prefix}{key}.")
    return out


def validate(cfg: DictConfig) -> None:
    """Every value in range and no unknown key (a `+key=` Hydra let through); ConfigError otherwise."""
    problems = _problems(cfg, "")
    if "fold" in cfg and "data" in cfg and cfg.data is not None:
        n = cfg.data.folds.n_splits
        if not 0 <= cfg.fold < n:
            problems.append(f"fold={cfg.fold} is outside 0..{n - 1} (data.folds.n_splits={n})")
    if problems:
        raise ConfigError("; ".join(problems))


# --- adapters: a composed train config -> the plain arguments of multimnist.build ---------------


def run_dir_of(cfg: DictConfig) -> Path:
    """The fold's folder; a run with trainer.limit_batches (trainer=debug) goes to `<exp>-debug`."""
    exp = experiment_name(cfg.exp, debug=cfg.trainer.limit_batches is not None)
    return fold_dir(cfg.paths.experiments, exp, cfg.fold)


def dataset_args(cfg: DictConfig) -> dict:
    d = cfg.data
    stream = d.get("synthetic")  # absent from the configs of runs made before the stream existed
    return {
        "layout": {
            k: v
            for k, v in d.items()
            if k not in ("denoise", "cache", "cache_dir", "folds", "pseudo_labels", "synthetic")
        },
        "fold": cfg.fold,
        "folds": dict(d.folds),
        "img_size": cfg.backbone.img_size,
        "denoise": d.denoise,
        "cache": d.cache,
        "cache_dir": d.cache_dir,
        "augment": OmegaConf.to_container(cfg.augmentation.steps, resolve=True),
        "seed": cfg.trainer.seed,
        "progress": cfg.trainer.progress,
        "pseudo_labels": d.pseudo_labels,
        "synthetic": OmegaConf.to_container(stream, resolve=True) if stream and stream.per_epoch else None,
    }


def loader_args(cfg: DictConfig) -> dict:
    return {"batch_size": cfg.trainer.batch_size, "num_workers": cfg.trainer.num_workers}


def model_args(cfg: Mapping) -> dict:
    """`build_model`'s arguments. `cfg`: a composed config, or a stored one (`rundir.read_config`
    fills in the keys older runs lack)."""
    b = cfg["backbone"]
    keys = ("name", "pretrained", "pretrained_file", "weights", "in_chans", "drop_rate", "drop_path_rate")
    keys += ("global_pool", "head", "truncate_stride")
    return {k: b[k] for k in keys}


def placement_args(cfg: Mapping) -> dict:
    """How a built network is placed and fed (`build.place_model` / `build_training`)."""
    b, t = cfg["backbone"], cfg["trainer"]
    return {"in_chans": b["in_chans"], "channels_last": t["channels_last"], "normalize": b["normalize"]}


def inference_args(cfg: Mapping) -> dict:
    """`runs.fold_model`'s arguments for a fold's stored config: how its network is built and placed."""
    return {"model": model_args(cfg), "precision": cfg["trainer"]["precision"]} | placement_args(cfg)


def optimizer_args(cfg: DictConfig) -> dict:
    return dict(cfg.optimizer)


def scheduler_args(cfg: DictConfig) -> dict:
    return dict(cfg.scheduler)
