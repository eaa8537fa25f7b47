"""The ensemble step: aggregation, decoding and calibration on fabricated logits with known answers;
run collection and its errors; submission validation; one end-to-end run from training to submission."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from multimnist import decode, plots
from multimnist.build import build_model
from multimnist.config import compose, run_dir_of
from multimnist.decode import aggregate
from multimnist.ensemble import run_ensemble, validate_submission
from multimnist.fold import run_fold
from multimnist.labels import CSV_COLUMNS
from multimnist.predict import fold_logits, image_split, run_predict
from multimnist.report import worst_rows
from multimnist.runs import EnsembleError, collect_runs, most_recent_experiment

from .conftest import small_run_args
from .test_dacon import make_root


def test_prob_mean_and_logit_mean_differ_as_defined():
    logits = np.zeros((1, 1, 2, 26))
    logits[0, 0, 1] = 4.0  # views: logit 0 and logit 4
    prob_mean = aggregate(logits, "prob_mean")[0, 0]
    logit_mean = aggregate(logits, "logit_mean")[0, 0]
    assert prob_mean == pytest.approx((0.5 + decode.sigmoid(4.0)) / 2)
    assert logit_mean == pytest.approx(decode.sigmoid(2.0))
    assert aggregate(logits, "prob_mean", views=[0])[0, 0] == pytest.approx(0.5)
    two_models = np.concatenate([logits[:, :, :1], logits[:, :, 1:]], axis=1)  # [1, 2 models, 1 view, 26]
    weighted = aggregate(two_models, "logit_mean", weights=np.array([1.0, 3.0]))[0, 0]
    assert weighted == pytest.approx(decode.sigmoid(3.0))
    assert aggregate(logits, "logit_mean", temperature=2.0)[0, 0] == pytest.approx(decode.sigmoid(1.0))


def test_count_aware_stays_in_range_and_uses_confidence(rng):
    probs = rng.random((500, 26))
    pred = (rng.random((500, 26)) < rng.random((500, 1))).astype(np.uint8)  # counts from 0 to 26
    out = decode.count_aware(probs, pred, 10, 14)
    counts = out.sum(1)
    assert counts.min() >= 10 and counts.max() <= 14
    ok = (pred.sum(1) >= 10) & (pred.sum(1) <= 14)
    assert np.array_equal(out[ok], pred[ok])  # plausible rows untouched
    few = np.flatnonzero(pred.sum(1) < 10)[0]
    added = np.flatnonzero(out[few] & ~pred[few])
    missing_conf = np.sort(probs[few][pred[few] == 0])[::-1]
    assert np.allclose(np.sort(probs[few, added])[::-1], missing_conf[: len(added)])  # the most confident
    many = np.flatnonzero(pred.sum(1) > 14)[0]
    kept = probs[many][out[many] == 1]
    dropped = probs[many][(pred[many] == 1) & (out[many] == 0)]
    assert kept.min() >= dropped.max()  # the least confident were dropped


def test_per_class_thresholds_beat_global_where_classes_differ(rng):
    n = 2000
    labels = (rng.random((n, 26)) < 0.46).astype(np.uint8)
    # Half the letters are under-confident (positives ~0.35), half over-confident (negatives ~0.65).
    low = np.arange(26) < 13
    centre = np.where(labels == 1, np.where(low, 0.35, 0.9), np.where(low, 0.1, 0.65))
    probs = np.clip(centre + rng.normal(0, 0.08, centre.shape), 0, 1)
    t, _ = decode.tune_global(probs, labels)
    global_acc = decode.cell_accuracy(decode.threshold(probs, t), labels)
    held_out, thresholds = decode.cross_fitted_per_class(probs, labels)
    assert held_out > global_acc + 0.05
    assert thresholds[:13].mean() < 0.3 < 0.7 < thresholds[13:].mean()


def test_temperature_scaling_lowers_nll_of_overconfident_logits(rng):
    true_logits = rng.normal(0, 1.5, (3000, 26))
    labels = (rng.random(true_logits.shape) < decode.sigmoid(true_logits)).astype(np.uint8)
    overconfident = true_logits * 4
    t = decode.fit_temperature(overconfident, labels)
    before = decode.nll(decode.sigmoid(overconfident), labels)
    after = decode.nll(decode.sigmoid(overconfident / t), labels)
    assert 3.0 < t < 5.0 and after < before - 0.1
    assert decode.ece(decode.sigmoid(overconfident / t), labels) < decode.ece(
        decode.sigmoid(overconfident), labels
    )


def test_submission_validation():
    sample = pd.DataFrame(
        0, index=pd.Index([50000, 50001, 50002], name="index"), columns=list(CSV_COLUMNS[1:])
    )
    good = sample.reset_index()
    good.iloc[1, 3] = 1
    validate_submission(good, sample)
    with pytest.raises(EnsembleError, match="ids or their order differ"):
        validate_submission(good.iloc[[1, 0, 2]], sample)
    with pytest.raises(EnsembleError, match="header"):
        validate_submission(good.rename(columns={"a": "A"}), sample)
    bad = good.copy()
    bad.iloc[0, 5] = 2
    with pytest.raises(EnsembleError, match="0 and 1"):
        validate_submission(bad, sample)


def fake_run(
    experiments: Path,
    exp: str,
    fold: int,
    root: Path,
    val: np.ndarray,
    n_test: int,
    views: int = 4,
    folds_seed: int = 42,
    n_splits: int = 2,
) -> Path:
    run = experiments / exp / f"fold{fold}"
    (run / ".hydra").mkdir(parents=True)
    cfg = {
        "exp": exp,
        "fold": fold,
        "data": {
            "root": str(root),
            "folds": {"method": "stratified", "n_splits": n_splits, "seed": folds_seed},
        },
    }
    OmegaConf.save(OmegaConf.create(cfg), run / ".hydra" / "config.yaml")
    rng = np.random.default_rng(fold)
    np.save(run / "oof_logits.npy", rng.normal(size=(len(val), views, 26)).astype(np.float32))
    np.save(run / "oof_index.npy", val)
    np.save(run / "test_logits.npy", rng.normal(size=(n_test, views, 26)).astype(np.float32))
    return run


def test_missing_fold_fails_or_warns_when_allowed(tmp_path, caplog):
    layout = make_root(tmp_path, n_train=4, n_test=2)
    fake_run(tmp_path / "exp", "a", 0, layout.root, np.array([0, 1]), 2)
    with pytest.raises(EnsembleError, match=r"exp/a: fold\(s\) \[1\] of 2 missing or unfinished"):
        collect_runs(tmp_path / "exp", ["a"])
    with caplog.at_level(logging.WARNING):
        runs = collect_runs(tmp_path / "exp", ["a"], allow_partial=True)
    assert len(runs) == 1 and "combining the 1 finished fold" in caplog.text


def test_missing_folds_name_the_n_splits_key_for_a_smaller_split(tmp_path):
    layout = make_root(tmp_path, n_train=4, n_test=2)
    fake_run(tmp_path / "exp", "a", 0, layout.root, np.array([0, 1]), 2, n_splits=5)
    fake_run(tmp_path / "exp", "a", 1, layout.root, np.array([2, 3]), 2, n_splits=5)
    with pytest.raises(EnsembleError, match=r"\[2, 3, 4\] of 5 .*data.folds.n_splits=K \(these used 5\)"):
        collect_runs(tmp_path / "exp", ["a"])


def test_a_decoding_no_better_than_all_zeros_is_a_warning_beside_the_chosen_line(tmp_path, capsys):
    layout = make_root(tmp_path, n_train=4, n_test=2)
    for fold, rows in ((0, [0, 1]), (1, [2, 3])):
        run = fake_run(tmp_path / "exp", "a", fold, layout.root, np.array(rows), 2, views=1)
        np.save(run / "oof_logits.npy", np.full((2, 1, 26), -20.0, np.float32))  # "no letter", surely
    cfg = compose_ensemble(["exp=a", f"paths.experiments={tmp_path / 'exp'}", "ensemble.plots=false"])
    cfg.ensemble.decoding = "fixed_0.5"  # all zeros, exactly the floor
    out = run_ensemble(cfg)
    printed = capsys.readouterr().out.splitlines()
    chosen = next(line for line in printed if "<- chosen" in line)
    assert chosen.endswith("(no better than all-zeros)")
    assert any(line.startswith("warning: the chosen decoding scores") for line in printed)
    assert "**Warning**: the chosen decoding scores" in (out / "report.md").read_text()


def test_debug_runs_land_apart_and_the_ensemble_never_picks_them(tmp_path):
    cfg = compose("train", ["exp=b5", "trainer=debug", f"paths.experiments={tmp_path}"])
    assert run_dir_of(cfg) == tmp_path / "b5-debug" / "fold0"
    assert (
        run_dir_of(compose("train", ["exp=b5", f"paths.experiments={tmp_path}"])) == tmp_path / "b5" / "fold0"
    )
    layout = make_root(tmp_path / "data", n_train=4, n_test=2)
    real = fake_run(tmp_path / "exp", "real", 0, layout.root, np.array([0, 1]), 2)
    debug = fake_run(tmp_path / "exp", "real-debug", 0, layout.root, np.array([0, 1]), 2)
    os.utime(real / "test_logits.npy", (1, 1))  # the debug run is the newer one
    assert debug.parent.name == "real-debug" and most_recent_experiment(tmp_path / "exp") == "real"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"views": 8}, "number of TTA views is 8"),
        ({"folds_seed": 7}, r"folds \(data.folds\) is"),
    ],
)
def test_mismatched_runs_are_named(tmp_path, change, message):
    layout = make_root(tmp_path, n_train=4, n_test=2)
    fake_run(tmp_path / "exp", "a", 0, layout.root, np.array([0, 1]), 2)
    fake_run(tmp_path / "exp", "a", 1, layout.root, np.array([2, 3]), 2)
    fake_run(tmp_path / "exp", "b", 0, layout.root, np.array([0, 1]), 2, **change)
    fake_run(tmp_path / "exp", "b", 1, layout.root, np.array([2, 3]), 2, **change)
    with pytest.raises(EnsembleError, match=rf"exp/b/fold0: its {message}"):
        collect_runs(tmp_path / "exp", ["a", "b"])


def test_runs_without_fingerprints_are_compared_by_their_data_root(tmp_path):
    # runs written before dataset.json existed: their data.root is all that says which data they used
    layout = make_root(tmp_path, n_train=4, n_test=2)
    fake_run(tmp_path / "exp", "a", 0, layout.root, np.array([0, 1]), 2)
    fake_run(tmp_path / "exp", "a", 1, tmp_path / "elsewhere", np.array([2, 3]), 2)
    with pytest.raises(
        EnsembleError, match=r"exp/a/fold1: trained on other data than .*data.root .*elsewhere"
    ):
        collect_runs(tmp_path / "exp", ["a"])


def compose_ensemble(overrides):
    return compose("ensemble", overrides)


def test_folds_must_cover_the_training_set(tmp_path):
    layout = make_root(tmp_path, n_train=4, n_test=2)
    fake_run(tmp_path / "exp", "a", 0, layout.root, np.array([0, 1]), 2)
    fake_run(tmp_path / "exp", "a", 1, layout.root, np.array([2]), 2)  # index 3 never validated
    cfg = compose_ensemble(["exp=a", f"paths.experiments={tmp_path / 'exp'}", "ensemble.plots=false"])
    with pytest.raises(EnsembleError, match="its folds cover 3 of 4 training images"):
        run_ensemble(cfg)


def test_end_to_end_from_a_two_fold_sweep_to_submission(synth_root, tmp_path, capsys):
    train = [
        "backbone=tiny",
        "trainer.epochs=2",
        "trainer.batch_size=16",
        "trainer.num_workers=0",
        "trainer.progress=false",
        "data.folds.n_splits=2",
        f"data.root={synth_root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"paths.experiments={tmp_path / 'exp'}",
        "exp=tiny2",
    ]
    for fold in (0, 1):
        run_fold(compose("train", [*train, f"fold={fold}"]))
    cmd = [
        sys.executable,
        "-m",
        "multimnist.ensemble",
        f"data.root={synth_root}",
        "exp=tiny2",
        f"paths.experiments={tmp_path / 'exp'}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<- chosen" in done.stdout and "test accuracy" in done.stdout
    out = tmp_path / "exp" / "tiny2" / "ensemble"
    sub = pd.read_csv(out / "submission.csv")
    sample = pd.read_csv(synth_root / "sample_submission.csv")
    assert list(sub.columns) == list(CSV_COLUMNS) and list(sub["index"]) == list(sample["index"])
    assert set(np.unique(sub.iloc[:, 1:].to_numpy())) <= {0, 1}
    report = json.loads((out / "ensemble.json").read_text())
    assert report["oof_images"] == 120 and len(report["runs"]) == 2
    assert len(report["candidates"]) == 20 and report["chosen"]["name"] in {
        c["name"] for c in report["candidates"]
    }
    assert report["oof_accuracy"] == max(c["oof_accuracy"] for c in report["candidates"])
    answers = pd.read_csv(synth_root / "test_answer.csv").iloc[:, 1:].to_numpy()
    assert report["test_accuracy"] == pytest.approx((sub.iloc[:, 1:].to_numpy() == answers).mean())
    assert report["floor"] == pytest.approx(1 - answers.mean())
    gap = (report["test_accuracy"] - report["floor"]) / (1 - report["floor"])
    assert report["gap_closed"] == pytest.approx(gap) and f"{gap:.1%} of the gap closed" in done.stdout
    folds = report["folds"]  # each fold on its own validation images, then mean and sd
    assert [r["run"] for r in folds["runs"]] == ["tiny2/fold0", "tiny2/fold1"]
    assert sum(r["images"] for r in folds["runs"]) == 120 and all(r["epochs"] == 2 for r in folds["runs"])
    accs = [r["oof_accuracy"] for r in folds["runs"]]
    assert folds["oof_accuracy"]["mean"] == pytest.approx(np.mean(accs))
    assert folds["oof_accuracy"]["sd"] == pytest.approx(np.std(accs, ddof=1))
    assert "tiny2/fold1" in done.stdout and "mean +- sd" in done.stdout
    assert report["runs"][0]["config_hash"] == report["runs"][1]["config_hash"]  # folds of one config
    figures = ("accuracy_vs_threshold", "per_letter_accuracy", "reliability", "letters_per_image")
    figures += ("curves", "error_gallery", "letter_errors")
    for png in figures:
        assert (out / f"{png}.png").stat().st_size > 1000
    assert (out / "error_gallery.png").stat().st_size < 500_000  # raw and model input, kept small
    page = (out / "report.md").read_text()
    assert f"**{report['chosen']['name']}**" in page and f"{report['test_accuracy']:.4f}" in page
    table = [line for line in page.splitlines() if line.startswith("| ")]
    assert table[1].startswith(f"| **{report['chosen']['name']}**")  # the chosen candidate first
    assert "- backbone: multimnist_tiny" in page and "- training: 2 epochs, batch 16" in page
    assert all(f"]({png}.png)" in page for png in figures)  # every figure on the page

    # A fixed decoding is honoured, and re-prediction from checkpoints reproduces the saved logits.
    cfg = compose_ensemble(
        [
            f"paths.experiments={tmp_path / 'exp'}",
            "ensemble.decoding=count_aware",
            "ensemble.repredict=true",
            "ensemble.plots=false",
        ]
    )
    run_ensemble(cfg)  # exp=null: the most recent experiment
    assert "most recent experiment: tiny2" in capsys.readouterr().out
    again = json.loads((out / "ensemble.json").read_text())
    assert again["chosen"]["decoding"] == "count_aware" and again["repredicted"]
    train_counts = pd.read_csv(synth_root / "dirty_mnist_2nd_answer.csv").iloc[:, 1:].sum(axis=1)
    low, high = int(train_counts.min()), int(train_counts.max())
    assert again["chosen"]["count_range"] == [low, high]  # read off the training answers
    counts = pd.read_csv(out / "submission.csv").iloc[:, 1:].sum(axis=1)
    assert counts.between(low, high).all()
    saved = {c["name"]: c["oof_accuracy"] for c in report["candidates"]}
    for c in again["candidates"]:
        assert c["oof_accuracy"] == pytest.approx(saved[c["name"]], abs=1e-6)

    # multimnist.predict on the test images reproduces the submission, and each fold's logits.
    images = synth_root / "test_dirty_mnist_2nd"
    pred_cfg = compose(
        "predict",
        [
            "exp=tiny2",
            f"images={images}",
            f"out={tmp_path / 'pred.csv'}",
            f"paths.experiments={tmp_path / 'exp'}",
            f"answers={synth_root / 'test_answer.csv'}",  # a labelled folder: predict scores itself
        ]
        + ["progress=false", "num_workers=0", "batch_size=7"],  # other batches than training's
    )
    predicted = pd.read_csv(run_predict(pred_cfg))
    submitted = pd.read_csv(out / "submission.csv")
    pd.testing.assert_frame_equal(predicted[submitted.columns], submitted)
    scored = json.loads((tmp_path / "pred.csv.scores.json").read_text())  # as the last ensemble scored
    assert scored["accuracy"] == pytest.approx(again["test_accuracy"])
    assert scored["floor"] == pytest.approx(again["floor"]) and len(scored["per_letter"]) == 26
    assert scored["gap_closed"] == pytest.approx(again["gap_closed"])
    assert predicted.filter(like="p_").to_numpy().min() >= 0 and predicted.shape[1] == 1 + 2 * 26
    run = tmp_path / "exp" / "tiny2" / "fold1"
    split = image_split(images, 256)
    logits = fold_logits(run, split, {"batch_size": 7}, "cpu", progress=False)
    np.testing.assert_allclose(logits, np.load(run / "test_logits.npy"), rtol=1e-5, atol=1e-5)


def test_cut_short_logits_stop_the_ensemble_naming_the_file(tmp_path):
    layout = make_root(tmp_path, n_train=4, n_test=2)
    fake_run(tmp_path / "exp", "a", 0, layout.root, np.array([0, 1]), 2)
    run = fake_run(tmp_path / "exp", "a", 1, layout.root, np.array([2, 3]), 2)
    logits = run / "test_logits.npy"
    logits.write_bytes(logits.read_bytes()[:100])  # as a copy interrupted by a full disk would leave it
    with pytest.raises(EnsembleError, match=rf"{logits}: unreadable array, cut short or corrupt"):
        collect_runs(tmp_path / "exp", ["a"])


def test_worst_rows_are_the_most_wrong_first_and_only_wrong_ones():
    labels = np.zeros((5, 26), np.uint8)
    pred = labels.copy()
    pred[1, :3] = 1  # 3 wrong cells
    pred[3, :5] = 1  # 5 wrong
    pred[4, :3] = 1  # 3 wrong, after row 1 in dataset order
    assert list(worst_rows(pred, labels)) == [3, 1, 4]
    assert list(worst_rows(pred, labels, n=1)) == [3]


def test_predict_and_repredict_need_no_weights_file_after_training(synth_root, tmp_path):
    """A fold that started from a weights file (glyph pretraining's) predicts from best.pt alone: the
    file can be deleted after training and predict still reproduces submission.csv exactly."""
    start = tmp_path / "pretrained" / "weights.pt"
    start.parent.mkdir()
    torch.save({"model": build_model("multimnist_tiny").state_dict()}, start)
    exps = tmp_path / "exp"
    train = small_run_args(synth_root, tmp_path, "from_file", f"backbone.weights={start}", "trainer.epochs=1")
    train += ["trainer.tta_views=2", "data.folds.n_splits=2"]
    for fold in (0, 1):
        run_fold(compose("train", [*train, f"fold={fold}"]))
    ensemble = [f"paths.experiments={exps}", "exp=from_file", "ensemble.plots=false"]
    out = run_ensemble(compose_ensemble(ensemble))
    submitted = pd.read_csv(out / "submission.csv")
    shutil.rmtree(start.parent)  # the user cleans up the pretraining run

    predicted = pd.read_csv(
        run_predict(
            compose(
                "predict",
                [
                    "exp=from_file",
                    f"images={synth_root / 'test_dirty_mnist_2nd'}",
                    f"out={tmp_path / 'p.csv'}",
                ]
                + [f"paths.experiments={exps}", "progress=false", "num_workers=0"],
            )
        )
    )
    pd.testing.assert_frame_equal(predicted[submitted.columns], submitted)
    run_ensemble(compose_ensemble([*ensemble, "ensemble.repredict=true"]))
    pd.testing.assert_frame_equal(pd.read_csv(out / "submission.csv"), submitted)


def test_figures_fit_the_data(tmp_path, monkeypatch):
    """Axes span what occurs (1-3 letters, not 0-26), curves tick whole epochs and show the lr, the
    reliability points carry their cell counts, per-letter accuracy shows its floor."""
    figures = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi=110: figures.setdefault(path.name, fig))
    rng = np.random.default_rng(0)
    labels = np.zeros((50, 26), np.uint8)
    for row in labels:
        row[rng.choice(26, rng.integers(2, 4), replace=False)] = 1  # 2-3 letters
    pred = labels.copy()
    pred[:5, 0] ^= 1
    plots.letters_per_image(pred, labels, tmp_path / "count.png")
    low, high = figures["count.png"].axes[0].get_xlim()
    assert 0 < low < 2 and 3 < high < 6  # counts 1..4 (2-3 letters, one cell flipped), not 0..26
    probs = np.clip(labels * 0.8 + rng.uniform(0, 0.2, labels.shape), 0, 1)
    plots.reliability_diagram(probs, probs, labels, 1.0, tmp_path / "rel.png")
    counts = [t.get_text() for t in figures["rel.png"].axes[0].texts]
    assert counts and sum(int(c.replace(",", "")) for c in counts) == labels.size
    frame = pd.DataFrame({"epoch": [0, 1, 2], "train_loss": [3, 2, 1], "val_loss": [3, 2, 1.5]})
    frame = frame.assign(val_acc=[0.5, 0.6, 0.7], val_auc=[0.6, 0.7, 0.8], lr=[1e-3, 5e-4, 1e-4])
    plots.training_curves({"e/fold0": frame}, tmp_path / "curves.png")
    axes = figures["curves.png"].axes
    assert any("Learning rate" in ax.get_title() for ax in axes)
    ticks = axes[0].xaxis.get_major_locator().tick_values(0, 2)
    assert all(float(t).is_integer() for t in ticks)
    plots.training_curves({"e/fold0": frame.iloc[:1]}, tmp_path / "one.png")  # after one epoch
    assert [float(t) for t in figures["one.png"].axes[0].get_xticks()] == [0.0]
    plots.per_letter_accuracy(pred, labels, tmp_path / "letters.png")
    assert any("floor" in t.get_text() for t in figures["letters.png"].axes[0].get_legend().get_texts())
