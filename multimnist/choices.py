"""The allowed values of config keys, in one module that imports nothing.

The config schemas (`multimnist.config`) check against these tuples and the library modules that act
on them raise against the same tuples, so a new value is added here once. Nothing here imports
torch, timm or the generator: composing a config, or `--help`, stays quick.
"""

from __future__ import annotations

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # trainer.precision (multimnist.engine)
GLOBAL_POOLS = ("avg", "max", "avgmax", "catavgmax", "lse")  # backbone.global_pool (multimnist.model)
HEADS = ("pooled", "per_location")  # backbone.head
DOWNSAMPLES = ("conv", "maxpool")  # the multimnist_* CNNs' stage downsampling
DEVICE_AUGMENT = ("auto", "on", "off")  # trainer.device_augment
WANDB_MODES = ("online", "offline", "disabled")  # logger.wandb.mode (multimnist.tracking)
FOLD_METHODS = ("stratified", "contiguous", "group")  # data.folds.method (multimnist.data.folds)
GLYPH_SOURCES = ("procedural", "dacon7", "emnist")  # glyphs.source (multimnist.synth.glyphs)
GLYPH_POOLS = (None, "A", "B")  # glyphs.pool: all glyphs, or one of two disjoint halves
TTA_VIEWS = (1, 2, 4, 8)  # trainer.tta_views: identity, + rot180, the rot90 group, + flips (multimnist.tta)
AGGREGATIONS = ("prob_mean", "logit_mean")  # how the ensemble combines models and views
VIEW_SETS = ("identity", "all")  # which saved TTA views an ensemble candidate uses
DECODINGS = ("fixed_0.5", "fixed_0.6", "global", "per_class", "count_aware")  # probabilities -> 0/1
