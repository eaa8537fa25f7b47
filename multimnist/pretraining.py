"""Glyph pretraining: the steps behind `python -m multimnist.pretrain` (multimnist/pretrain.py is the CLI).

The backbone learns to name the letter in single-glyph crops (26 letters + "nothing") rendered on
the fly by the generator (`multimnist.synth.crops`), then fold training starts from it with
`backbone.weights=<experiments>/<exp>/pretrain/weights.pt`: the body carries over, and each letter's
output starts from that letter's glyph detector (`model.load_weights`). Works for any backbone,
timm's included (on top of `backbone.pretrained=true` or another weights file).

The run folder `<experiments>/<exp>/pretrain/` holds .hydra/config.yaml, metrics.csv (train loss,
held-out-glyph loss and top-1 per epoch), last.pt (resume point) and weights.pt (written last: the
run is finished). Re-running the same command resumes from the last finished epoch.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from multimnist.build import build_device, build_model, build_training, check_model, make_loader
from multimnist.config import model_args, optimizer_args, placement_args, scheduler_args, validate
from multimnist.engine import TrainStep, end_of_epoch, predict, train_one_epoch
from multimnist.harvest import HARVEST, HARVEST_GRID, harvest, harvest_grid, per_letter
from multimnist.io import ensure_writable, save_text, save_torch
from multimnist.labels import NUM_CLASSES
from multimnist.pretrained import require_pretrained
from multimnist.rundir import (
    CONFIG,
    LAST,
    METRICS,
    PRETRAIN_WEIGHTS,
    Replacement,
    heal_replaced,
    load_checkpoint,
    pretrain_dir,
    run_lock,
)
from multimnist.rundir import inspect as inspect_run
from multimnist.state import TrainState
from multimnist.synth.compositor import Compositor, CompositorConfig
from multimnist.synth.crops import GlyphCrops, MixedCrops
from multimnist.synth.distractors import distractor_bank
from multimnist.synth.glyphs import load_glyphs, split_families
from multimnist.tracking import RunLog, epoch_row

log = logging.getLogger("multimnist.pretrain")

WEIGHTS = PRETRAIN_WEIGHTS  # written last: its presence means pretraining is finished
RESULTS = (LAST, METRICS, WEIGHTS)
CLASSES = NUM_CLASSES + 1  # 26 letters + "nothing"


@dataclass
class Pretraining:
    cfg: DictConfig
    run_dir: Path
    train_ds: GlyphCrops | MixedCrops
    train_loader: DataLoader
    eval_loader: DataLoader
    step: TrainStep
    state: TrainState


def crop_sizes(cfg: DictConfig) -> tuple[int, int]:
    """The crop's native side and its side after the training resize (backbone.img_size / image_size)."""
    native = cfg.crops.size or int(math.ceil(1.5 * cfg.compositor.size_max / 8) * 8)
    if native > cfg.crops.image_size:
        raise ValueError(
            f"crops.size={native} is larger than the full images (crops.image_size={cfg.crops.image_size})"
        )
    return native, max(8, round(native * cfg.backbone.img_size / cfg.crops.image_size))


def build_crops(cfg: DictConfig, run_dir: Path) -> tuple[GlyphCrops | MixedCrops, GlyphCrops]:
    """Training crops from most glyph families (with harvest.exp, mixed with crops of the user's own
    images), fixed evaluation crops from the held-out families."""
    seed = cfg.trainer.seed
    glyphs = load_glyphs(
        cfg.glyphs.source, cfg.glyphs.path, seed=seed, pool=cfg.glyphs.pool, **cfg.glyphs.options
    )
    compositor = Compositor(CompositorConfig(**cfg.compositor), glyphs, distractor_bank(seed), seed=seed)
    train_rows, held_rows = split_families(glyphs.families, cfg.crops.held_out, seed, glyphs.letters)
    native, size = crop_sizes(cfg)
    c = cfg.crops
    common = {"crop": native, "img_size": size, "denoise": c.denoise, "nothing": c.nothing}
    common |= {"neighbours": c.neighbours, "distractor": c.distractor}
    train = GlyphCrops(compositor, train_rows, c.per_epoch, seed=seed, **common)
    held = GlyphCrops(
        compositor, held_rows if len(held_rows) else train_rows, c.eval_crops, seed=seed + 1, **common
    )
    log.info(
        "%d %s glyphs (%d held out), crops of %d px at %d px input",
        len(glyphs),
        cfg.glyphs.source,
        len(held_rows),
        native,
        size,
    )
    if cfg.harvest.exp is not None:
        h = cfg.harvest
        found = harvest(
            cfg.paths.experiments,
            h.exp,
            native,
            h.min_confidence,
            h.top_share,
            device_name=cfg.trainer.device,
        )
        found.save(run_dir / HARVEST)
        harvest_grid(found, run_dir / HARVEST_GRID, seed=seed)
        counts = per_letter(found)
        log.info(
            "harvested %d crops of %d labelled letters in %s's training images (probability >= %.2f, "
            "the top %.0f%% of each letter; "
            "per letter %d..%d); %.0f%% of the training crops are harvested ones; see %s",
            *(len(found), found.scored, h.exp, h.min_confidence, 100 * h.top_share),
            *(counts.min(), counts.max()),
            *(100 * h.share, run_dir / HARVEST_GRID),
        )
        train = MixedCrops(train, found.crops, found.letters, found.margin, h.share)
    return train, held


def build_pretraining(cfg: DictConfig, run_dir: Path, device: torch.device) -> Pretraining:
    t = cfg.trainer
    torch.manual_seed(t.seed)
    train_ds, held_ds = build_crops(cfg, run_dir)
    train_loader = make_loader(train_ds, t.batch_size, t.num_workers)
    eval_loader = make_loader(held_ds, t.batch_size, t.num_workers)
    step, state = build_training(
        build_model(**model_args(cfg), num_classes=CLASSES),
        device,
        **placement_args(cfg),
        precision=t.precision,
        optimizer=optimizer_args(cfg),
        scheduler=scheduler_args(cfg),
        epochs=t.epochs,
        updates_per_epoch=len(train_loader),
        loss_fn=torch.nn.CrossEntropyLoss(),
        clip_grad=t.clip_grad,
        progress=t.progress,
    )
    return Pretraining(cfg, run_dir, train_ds, train_loader, eval_loader, step, state)


def held_out_scores(p: Pretraining) -> dict[str, float]:
    """Loss and top-1 accuracy on the fixed crops of held-out glyph families."""
    logits, _, labels = predict(
        p.state.model, p.eval_loader, p.step.batching, p.step.precision, 1, p.cfg.trainer.progress, "held-out"
    )
    z, y = torch.from_numpy(logits[:, 0]), torch.from_numpy(labels).long()
    return {
        "heldout_loss": float(torch.nn.functional.cross_entropy(z, y)),
        "heldout_top1": float((z.argmax(1) == y).float().mean()),
        "heldout_letter_top1": float((z[y < NUM_CLASSES].argmax(1) == y[y < NUM_CLASSES]).float().mean()),
    }


def run_epochs(p: Pretraining, runlog: RunLog) -> bool:
    """Train until the last epoch (True) or until trainer.stop_after epochs ran (False)."""
    t, state, ran = p.cfg.trainer, p.state, 0
    while state.epoch < t.epochs:
        if t.stop_after is not None and ran >= t.stop_after:
            log.info("stopping after %d epoch(s) as trainer.stop_after says; re-run to resume", ran)
            return False
        ran += 1
        started = time.perf_counter()
        torch.manual_seed(t.seed * 1000 + state.epoch)  # dropout etc.: a function of (seed, epoch)
        p.train_ds.set_epoch(state.epoch)
        result = train_one_epoch(p.step, p.train_loader, epoch=state.epoch, num_updates=state.num_updates)
        state.num_updates = result.num_updates
        lr, scores = end_of_epoch(p.step, state.epoch, lambda: held_out_scores(p), "heldout_loss")
        row = epoch_row(state.epoch, lr, {"train_loss": result.train_loss}, scores, result, started)
        runlog.log(row)
        log.info(
            "pretrain epoch %d: train_loss %.4f held-out loss %.4f top-1 %.3f (letters %.3f), %.0f img/s",
            *(state.epoch, row["train_loss"], row["heldout_loss"], row["heldout_top1"]),
            *(row["heldout_letter_top1"], row["img_per_s"]),
        )
        state.record(scores["heldout_loss"])
        state.epoch += 1
        save_torch(state.state_dict(), p.run_dir / LAST)
    return True


def run_pretrain(cfg: DictConfig) -> Path | None:
    """Pretrain (or resume, or skip when finished); returns the weights file (None: paused)."""
    validate(cfg)
    b = cfg.backbone
    source = require_pretrained(b.name, b.pretrained, b.pretrained_file)  # before the glyph bank
    if source is not None:
        log.info("backbone.pretrained: %s's weights from %s", b.name, source)
    check_model(**model_args(cfg), num_classes=CLASSES)  # before the run folder is written
    run_dir = pretrain_dir(cfg.paths.experiments, cfg.exp)
    t, weights = cfg.trainer, run_dir / WEIGHTS
    heal_replaced(run_dir, (*RESULTS, str(CONFIG)))
    found = inspect_run(run_dir, OmegaConf.to_container(cfg, resolve=True), t.overwrite, RESULTS, WEIGHTS)
    start_over = t.overwrite or not t.resume
    if found.finished and not start_over:
        log.info("%s is finished; skipping (trainer.resume=false pretrains again)", weights)
        return weights
    ensure_writable(cfg.paths.experiments, "paths.experiments")
    with (
        run_lock(run_dir, "pretraining run"),
        Replacement(run_dir, (*RESULTS, str(CONFIG)), start_over, results=RESULTS) as replacing,
    ):
        save_text(OmegaConf.to_yaml(cfg, resolve=True), run_dir / CONFIG)
        weights = pretrain(cfg, run_dir, resume=found.resumable and not start_over)
        if weights is not None:
            replacing.finished()
    return weights


def pretrain(cfg: DictConfig, run_dir: Path, resume: bool) -> Path | None:
    """Build, (resume,) run the epochs and write the weights file; None when paused."""
    t, weights = cfg.trainer, run_dir / WEIGHTS
    device, gpu_lock = build_device(t.device)
    try:
        p = build_pretraining(cfg, run_dir, device)
        if resume:
            p.state.load_state_dict(load_checkpoint(run_dir / LAST))
            log.info("resuming %s from epoch %d", run_dir, p.state.epoch)
        runlog = RunLog.resume(run_dir, p.state.epoch) if p.state.epoch else RunLog(run_dir)
        if not run_epochs(p, runlog):
            return None
        final = runlog.rows[-1]
        meta = {k: final[k] for k in ("heldout_top1", "heldout_letter_top1", "epoch")}
        meta |= {"backbone": cfg.backbone.name, "classes": CLASSES, "glyphs": cfg.glyphs.source}
        meta |= {"glyph_pool": cfg.glyphs.pool, "harvest": cfg.harvest.exp}
        save_torch({"model": p.state.model.state_dict(), "pretrain": meta}, weights)
    finally:
        if gpu_lock is not None:
            gpu_lock.close()
    print(
        f"wrote {weights}: held-out glyph top-1 {final['heldout_top1']:.3f} "
        f"after {final['epoch'] + 1} epochs; "
        f"fine-tune the same backbone with backbone.weights={weights}"
    )
    return weights
