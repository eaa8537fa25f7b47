"""Bad inputs and faults, one row per class: each entry point exits 2 with one `error:` line naming the
file or key, and every earlier good output (a finished experiment, its ensemble, its sweep's
multirun.yaml, the dataset) is byte-identical afterwards. Where the right behaviour is to go on (a
finished fold on a read-only disk, moved data, a renamed experiment) a test below says so."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from multimnist.config import ConfigError, compose, validate
from multimnist.data.dacon import DaconLayout, load_split
from multimnist.engine import Batching, Precision, evaluate
from multimnist.synth.generate import generate
from multimnist.synth.glyphs import load_glyphs

from .conftest import small_run_args


def cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", f"multimnist.{module}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=300)


def snapshot(*roots: Path) -> dict[str, str]:
    """sha1 of every file under `roots`: what "byte-identical afterwards" compares."""
    return {
        str(p): hashlib.sha1(p.read_bytes()).hexdigest()
        for root in roots
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@dataclass
class World:
    """A dataset, a finished fold 0 of experiment `good` (trained by a sweep) and its ensemble."""

    root: Path  # the folder holding data/, exp/, cache/
    data: Path
    exp: Path

    def train_args(self, exp: str = "good", *extra: str, data: Path | None = None) -> list[str]:
        return small_run_args(data or self.data, self.root, exp, *extra)

    def copy_run(self, exp: str) -> Path:
        """A copy of good's fold 0 as experiment `exp` (for a case to damage)."""
        shutil.copytree(self.exp / "good" / "fold0", self.exp / exp / "fold0")
        return self.exp / exp / "fold0"

    def regenerated(self) -> Path:
        """A fold `regen` trained on a copy of the data, then other data generated at the same path
        (made once per module)."""
        if (self.root / "regen" / "synth.json").is_file() and (self.exp / "regen").is_dir():
            return self.root / "regen"
        data = self.copy_data("regen")
        args = self.train_args("regen", "trainer.epochs=1", data=data)
        assert cli("train", *args, cwd=self.root).returncode == 0
        gen = ("n_train=120", "n_test=40", "seed=99", "overwrite=true", "progress=false")
        done = cli("synth", f"out={data}", *gen, cwd=self.root)
        assert done.returncode == 0, done.stderr[-2000:]
        return data

    def copy_data(self, name: str) -> Path:
        shutil.copytree(self.data, self.root / name, ignore=shutil.ignore_patterns(".cache"))
        return self.root / name


@pytest.fixture(scope="module")
def world(synth_root, tmp_path_factory) -> World:
    base = tmp_path_factory.mktemp("world")
    w = World(base, base / "data", base / "exp")
    shutil.copytree(synth_root, w.data)
    done = cli("train", *w.train_args("good", "fold=0"), "-m", cwd=base)
    assert done.returncode == 0, done.stderr[-2000:]
    ens = ("ensemble.allow_partial=true", "ensemble.plots=false")
    done = cli("ensemble", f"paths.experiments={w.exp}", "exp=good", *ens, cwd=base)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((w.exp / "good" / ".sweeps").glob("*/multirun.yaml"))
    assert not list((w.exp / "good" / ".sweeps").glob("*/fold*"))  # no empty job folders left behind
    return w


@pytest.fixture
def good_outputs(world) -> Callable[[], None]:
    """Call the returned check after a case: every file of the finished experiment (its sweep's
    multirun.yaml included) and of the dataset is still there, byte-identical."""
    before = snapshot(world.exp / "good", world.data)

    def unchanged() -> None:
        after = snapshot(world.exp / "good", world.data)
        assert {k: after.get(k) for k in before} == before

    return unchanged


def assert_one_error_line(done: subprocess.CompletedProcess, *names: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("error: ")
    for name in names:
        assert name in lines[0], lines[0]


# --- each row: (id, entry point, how to make the case -> its arguments, what the line must name) ----


def _under_a_file(w: World) -> Path:
    blocker = w.root / "a_file"
    blocker.write_text("in the way")
    return blocker / "sub"


def _damaged_config(w: World, exp: str) -> None:
    (w.copy_run(exp) / ".hydra" / "config.yaml").write_text("exp: [unclosed\n  fold: {")


def _started_fold(w: World, exp: str) -> Path:
    """A copy of good's fold 0 that looks stopped after its epochs (no test logits yet)."""
    run = w.copy_run(exp)
    (run / "test_logits.npy").unlink()
    return run


def _regenerated_data(w: World) -> list[str]:
    return w.train_args("regen", "trainer.epochs=1", data=w.regenerated())


def _cache_blocked(w: World) -> list[str]:
    """A data root where <root>/.cache cannot be made (as on a read-only disk), no data.cache_dir."""
    data = w.copy_data("cache_blocked")
    (data / ".cache").write_text("in the way")
    return [a for a in w.train_args("cache_blocked", data=data) if not a.startswith("data.cache_dir=")]


def _png_cut_short(w: World) -> list[str]:
    """A PNG whose header is whole but whose pixels are cut off: only decoding (in a loader worker,
    with no cache) finds it."""
    data = w.copy_data("png_cut")
    png = data / "dirty_mnist_2nd" / "00005.png"
    png.write_bytes(png.read_bytes()[:200])
    return w.train_args("png_cut", "data.cache=false", "trainer.num_workers=1", data=data)


def _template_short(w: World) -> list[str]:
    data = w.copy_data("short_template")
    sample = data / "sample_submission.csv"
    sample.write_text("".join(sample.read_text().splitlines(keepends=True)[:-3]))  # 3 test ids fewer
    (data / "test_answer.csv").unlink()
    return w.train_args("short_template", data=data)


CASES: list[tuple[str, str, Callable[[World], list[str]], tuple[str, ...]]] = [
    # unwritable or odd output places
    (
        "experiments under a file",
        "train",
        lambda w: w.train_args("x", f"paths.experiments={_under_a_file(w)}"),
        ("paths.experiments=",),
    ),
    (
        "experiments under /proc",
        "train",
        lambda w: w.train_args("x", "paths.experiments=/proc/multimnist"),
        ("paths.experiments=/proc/multimnist",),
    ),
    (
        "sweep into /proc",
        "train",
        lambda w: [*w.train_args("x", "paths.experiments=/proc/multimnist", "fold=0,1"), "-m"],
        ("paths.experiments=",),
    ),
    (
        "synth out at a file",
        "synth",
        lambda w: [f"out={w.data / 'sample_submission.csv'}", "n_train=4", "n_test=2"],
        ("out=", "sample_submission.csv"),
    ),
    (
        "synth out under /proc",
        "synth",
        lambda w: ["out=/proc/multimnist/data", "n_train=4", "n_test=2"],
        ("out=/proc/multimnist/data",),
    ),
    (
        "cache dir under a file",
        "train",
        lambda w: w.train_args("x", f"data.cache_dir={_under_a_file(w)}"),
        ("data.cache_dir=",),
    ),
    ("data root cache unwritable", "train", _cache_blocked, ("data.cache_dir=", "data.cache=false")),
    # config values
    (
        "weight decay not a number",
        "train",
        lambda w: w.train_args("x", "optimizer.weight_decay=abc"),
        ("optimizer.weight_decay",),
    ),
    ("image size zero", "train", lambda w: w.train_args("x", "backbone.img_size=0"), ("backbone.img_size",)),
    # (+trainer.epochz=3 and trainer.ema_decay=5 are rows of test_config's CLI test)
    (
        "library error: unknown model",
        "train",
        lambda w: w.train_args("x", "backbone.name=foo"),
        ("backbone.name=foo",),
    ),
    (
        "diverging run",
        "train",
        lambda w: w.train_args("diverge", "optimizer.lr=1e30", "trainer.epochs=2"),
        ("epoch 0", "diverged", "optimizer.lr"),
    ),
    # run files read back
    (
        "zero-byte last.pt",
        "train",
        lambda w: (_started_fold(w, "empty_last") / "last.pt").write_bytes(b"") or w.train_args("empty_last"),
        ("last.pt",),
    ),
    (
        "damaged config, train",
        "train",
        lambda w: _damaged_config(w, "bad_yaml_t") or w.train_args("bad_yaml_t"),
        ("config.yaml", "YAML"),
    ),
    (
        "damaged config, ensemble",
        "ensemble",
        lambda w: (
            _damaged_config(w, "bad_yaml_e")
            or [f"paths.experiments={w.exp}", "exp=bad_yaml_e", "ensemble.allow_partial=true"]
        ),
        ("config.yaml", "YAML"),
    ),
    (
        "NaN logits",
        "ensemble",
        lambda w: (
            np.save(w.copy_run("nan") / "oof_logits.npy", np.full((24, 4, 26), np.nan, np.float32))
            or [f"paths.experiments={w.exp}", "exp=nan", "ensemble.allow_partial=true"]
        ),
        ("oof_logits.npy", "NaN"),
    ),
    (
        "metrics.csv cut mid-row",
        "train",
        lambda w: _cut_metrics(_started_fold(w, "cut_metrics")) or w.train_args("cut_metrics"),
        ("metrics.csv", "line 3"),
    ),
    # data identity
    ("other data at the same path", "train", _regenerated_data, ("other data", "label CSVs differ")),
    ("image cut short, found in a worker", "train", _png_cut_short, ("00005.png", "cannot be decoded")),
    ("template lists fewer test ids", "train", _template_short, ("sample_submission.csv", "not listed")),
    (
        "pseudo-labels on a training id",
        "train",
        lambda w: _pseudo_labels_on_a_train_id(w),
        ("pseudo_train_id.csv", "index 5"),
    ),
    # weights files
    (
        "pretrained_file a text file",
        "train",
        lambda w: _pretrained_file(w, "notes.safetensors", b"these are my notes, not weights\n"),
        ("backbone.pretrained_file=", "notes.safetensors", "timm cannot load it"),
    ),
    (
        "pretrained_file another network's, .pth",
        "train",
        lambda w: _pretrained_file(w, "resnet18.pth"),
        ("backbone.pretrained_file=", "resnet18.pth", "size mismatch"),
    ),
    (
        "pretrained_file another network's, .safetensors",
        "train",
        lambda w: _pretrained_file(w, "resnet18.safetensors"),
        ("resnet18.safetensors", "size mismatch"),
    ),
    (
        "pretrained_file another network's, pretrain",
        "pretrain",
        lambda w: [
            *_pretrained_file(w, "resnet18_p.pth")[-3:],
            f"paths.experiments={w.exp}",
            "crops.per_epoch=8",
        ],
        ("resnet18_p.pth", "size mismatch"),
    ),
    (
        "pretrained_file without pretrained",
        "train",
        lambda w: w.train_args("pf_off", f"backbone.pretrained_file={w.root / 'missing.pth'}"),
        ("backbone.pretrained_file=", "backbone.pretrained=true", "backbone.weights=FILE"),
    ),
    (
        "weights a garbage .safetensors",
        "train",
        lambda w: w.train_args("wg", f"backbone.weights={_weights_file(w, 'garbage.safetensors', b'xx')}"),
        ("garbage.safetensors", "unreadable"),
    ),
    (
        "truncate_stride on a network of ours",
        "train",
        lambda w: w.train_args("cut_ours", "backbone.truncate_stride=8"),
        ("backbone.truncate_stride", "sets its own strides"),
    ),
    (
        "truncate_stride the stages lack, pretrain",
        "pretrain",
        lambda w: [
            "backbone=tf_effnet_lite0",
            "backbone.truncate_stride=12",
            f"paths.experiments={w.exp}",
            "exp=cut_lite0",
            "crops.per_epoch=8",
        ],
        ("truncate_stride=12", "strides [2, 4, 8, 16, 32]"),
    ),
    (
        "the backbone schema as an option",
        "train",
        lambda w: w.train_args("schema", "backbone=backbone_schema"),
        ("backbone_schema is the schema", "options for backbone: effnet_b0"),
    ),
]


def _weights_file(w: World, name: str, content: bytes | None = None) -> Path:
    """A weights file for a case: `content` as is, or another architecture's state dict (resnet18)."""
    path = w.root / name
    if content is not None:
        path.write_bytes(content)
    elif name.endswith(".safetensors"):
        import timm
        from safetensors.torch import save_file

        save_file(timm.create_model("resnet18").state_dict(), str(path))
    else:
        import timm

        torch.save(timm.create_model("resnet18").state_dict(), path)
    return path


def _pretrained_file(w: World, name: str, content: bytes | None = None) -> list[str]:
    path = _weights_file(w, name, content)
    return w.train_args(
        "pf", "backbone=tf_effnet_lite0", "backbone.pretrained=true", f"backbone.pretrained_file={path}"
    )


def _pseudo_labels_on_a_train_id(w: World) -> list[str]:
    """Pseudo-labels must label test images: a CSV holding a training id is refused."""
    csv = w.root / "pseudo_train_id.csv"
    csv.write_text("index," + ",".join("abcdefghijklmnopqrstuvwxyz") + "\n5," + ",".join(["0"] * 26) + "\n")
    return w.train_args("pseudo_bad", f"data.pseudo_labels={csv}")


def _cut_metrics(run: Path) -> None:
    text = (run / "metrics.csv").read_text()
    (run / "metrics.csv").write_text(text[: text.rindex(",")])  # the last row ends mid-way


@pytest.mark.parametrize(("case", "entry", "make", "names"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_good_outputs_unchanged(
    world, good_outputs, case, entry, make, names
):
    done = cli(entry, *make(world), cwd=world.root)
    assert_one_error_line(done, *names)
    assert "Traceback" not in done.stdout + done.stderr
    good_outputs()


# --- where the right behaviour is to go on --------------------------------------------------------


def test_a_wrong_network_key_fails_before_any_run_folder_is_written(world):
    done = cli("train", *world.train_args("cut_none", "backbone.truncate_stride=8"), cwd=world.root)
    assert done.returncode == 2 and not (world.exp / "cut_none").exists()
    args = ["backbone=tf_effnet_lite0", "backbone.truncate_stride=12", f"paths.experiments={world.exp}"]
    done = cli("pretrain", *args, "exp=cut_none_p", cwd=world.root)
    assert done.returncode == 2 and not (world.exp / "cut_none_p").exists()


def test_a_finished_fold_is_skipped_without_writing_anything(world, good_outputs):
    # what makes a read-only experiments folder work: the skip decision comes before any write
    before = snapshot(world.exp)
    done = cli("train", *world.train_args("good"), cwd=world.root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "is finished" in done.stdout
    assert snapshot(world.exp) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_a_finished_fold_on_a_read_only_disk_is_skipped(world):
    os.chmod(world.exp / "good" / "fold0", 0o555)
    try:
        done = cli("train", *world.train_args("good"), cwd=world.root)
    finally:
        os.chmod(world.exp / "good" / "fold0", 0o755)
    assert done.returncode == 0, done.stderr[-2000:]


def test_no_cache_writes_nothing_into_the_data_root(world):
    data = world.copy_data("no_cache")
    before = snapshot(data)
    args = [a for a in world.train_args("no_cache", "data.cache=false", data=data) if "cache_dir" not in a]
    done = cli("train", *args, "trainer.epochs=1", cwd=world.root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert snapshot(data) == before and not (data / ".cache").exists()


def test_moved_data_and_a_renamed_experiment_are_the_same_run(world, good_outputs):
    moved = world.copy_data("moved")
    done = cli("train", *world.train_args("good", data=moved), cwd=world.root)
    assert done.returncode == 0 and "is finished" in done.stdout, done.stderr[-2000:]
    shutil.copytree(world.exp / "good" / "fold0", world.exp / "renamed" / "fold0")
    ens = [
        f"paths.experiments={world.exp}",
        "exp=renamed",
        f"data.root={moved}",
        "ensemble.allow_partial=true",
        "ensemble.plots=false",
    ]
    done = cli("ensemble", *ens, cwd=world.root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (world.exp / "renamed" / "ensemble" / "submission.csv").read_bytes() == (
        world.exp / "good" / "ensemble" / "submission.csv"
    ).read_bytes()
    good_outputs()


def test_ensemble_refuses_other_data_at_the_runs_path(world):
    world.regenerated()  # the fold `regen` was trained on what its data.root held before
    ens = (f"paths.experiments={world.exp}", "exp=regen", "ensemble.allow_partial=true")
    done = cli("ensemble", *ens, cwd=world.root)
    assert_one_error_line(done, "no longer holds the data", "label CSVs differ")


def test_overwrite_that_fails_restores_the_run_it_replaced(world):
    data = world.copy_data("replace")
    args = world.train_args("replace", "trainer.epochs=1", data=data)
    assert cli("train", *args, cwd=world.root).returncode == 0
    run = world.exp / "replace" / "fold0"
    before = snapshot(run)
    (data / "dirty_mnist_2nd" / "00007.png").write_bytes(b"not a png")  # found after the run started
    done = cli("train", *args, "trainer.overwrite=true", "data.cache=false", cwd=world.root)
    assert_one_error_line(done, "00007.png")
    after = snapshot(run)
    assert {k: v for k, v in after.items() if not k.endswith("train.log")} == {
        k: v for k, v in before.items() if not k.endswith("train.log")
    }
    assert not (run / ".replaced").exists()


def test_a_refused_sweep_keeps_the_earlier_multirun_yaml(world, good_outputs):
    done = cli("train", *world.train_args("good", "fold=0,1", "trainer.batch_size=0"), "-m", cwd=world.root)
    assert done.returncode == 2 and "trainer.batch_size" in done.stderr
    good_outputs()  # good/.sweeps/<first sweep>/multirun.yaml included


def test_unlisted_train_images_get_one_warning_that_counts_them(world, caplog):
    data = world.copy_data("unlisted")
    for name in ("90000.png", "90001.png"):
        shutil.copy(data / "dirty_mnist_2nd" / "00000.png", data / "dirty_mnist_2nd" / name)
    with caplog.at_level("WARNING"):
        split = load_split(DaconLayout(data), "train")
    assert len(split) == 120
    warned = [r.getMessage() for r in caplog.records if "not listed" in r.getMessage()]
    assert len(warned) == 1 and "2 PNG(s)" in warned[0]


def test_the_generator_removes_partial_roots_of_dead_runs_only(tmp_path, compositor):
    dead = tmp_path / ".root.partial-999999999"  # no such process
    mine = tmp_path / f".root.partial-{os.getppid()}"  # a live process (pytest's parent)
    for folder in (dead, mine):
        (folder / "dirty_mnist_2nd").mkdir(parents=True)
    generate(tmp_path / "root", compositor, n_train=4, n_test=2, seed=0, workers=1, progress=False)
    assert not dead.exists() and mine.exists()


@pytest.mark.parametrize(("gain", "what"), [(1e9, "val_loss"), (float("nan"), "NaN or inf logits")])
def test_an_exploded_or_nan_validation_stops_naming_the_epoch(gain, what):
    # Finite training losses can still end in a model whose validation loss is 1e9 (an EMA gone
    # wrong, say): evaluate stops there instead of writing a best.pt and going on.
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 1, 8, 8, generator=g), (torch.rand(16, 26, generator=g) > 0.5).float()
    loader = DataLoader(TensorDataset(x, y, torch.arange(16)), batch_size=8)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 26))
    torch.nn.init.constant_(model[1].weight, gain)
    loss, cpu = torch.nn.BCEWithLogitsLoss(), Batching(torch.device("cpu"))
    with pytest.raises(FloatingPointError, match=rf"epoch 3: validation gave {what}.*diverged"):
        evaluate(model, loader, loss, cpu, Precision("fp32", None), progress=False, epoch=3)
    torch.nn.init.constant_(model[1].weight, 0.01)  # a sane model passes
    assert evaluate(model, loader, loss, cpu, Precision("fp32", None), progress=False)["val_loss"] < 1


@pytest.mark.parametrize(
    ("config", "override", "message"),
    [
        ("train", "exp=a/b", "exp must be a plain folder name"),
        ("train", "exp=", "exp must be a plain folder name"),
        ("pretrain", "exp=..", "exp must be a plain folder name"),
        ("ensemble", "ensemble.count_range=[5]", r"ensemble.count_range must be \[low, high\]"),
    ],
)
def test_names_and_shapes_a_schema_type_cannot_say_are_checked(config, override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose(config, [override]))


def test_an_unknown_glyph_source_option_names_the_key():
    with pytest.raises(ValueError, match="glyphs.options.foo: not an option of glyphs=procedural"):
        load_glyphs("procedural", foo=1)


# --- predict reads the experiment it is named; image names are the indices --------------------------


def _predict(world: World, exp: str, images: Path, out: str = "pred.csv") -> subprocess.CompletedProcess:
    args = [f"exp={exp}", f"images={images}", f"out={world.root / out}", f"paths.experiments={world.exp}"]
    return cli("predict", *args, "progress=false", "num_workers=0", cwd=world.root)


def test_a_copied_experiment_predicts_with_its_own_folds(world, good_outputs):
    images = world.data / "test_dirty_mnist_2nd"
    shutil.copytree(world.exp / "good", world.exp / "copied")
    done = _predict(world, "copied", images, "copied.csv")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "predicting with copied/fold0" in done.stdout + done.stderr
    assert (world.root / "copied.csv").read_bytes() == _predict_good(world, images)
    best = world.exp / "copied" / "fold0" / "best.pt"
    best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])  # the copy's checkpoint, damaged
    assert_one_error_line(_predict(world, "copied", images, "cut.csv"), str(best), "unreadable")
    ens = [
        f"paths.experiments={world.exp}",
        "exp=copied",
        "ensemble.allow_partial=true",
        "ensemble.plots=false",
    ]
    done = cli("ensemble", *ens, "ensemble.repredict=true", cwd=world.root)  # re-predicts from its own too
    assert_one_error_line(done, str(best), "unreadable")
    shutil.rmtree(world.exp / "copied" / "fold0")
    assert_one_error_line(_predict(world, "copied", images, "gone.csv"), "copied/fold0: not found")
    good_outputs()


def _predict_good(world: World, images: Path) -> bytes:
    done = _predict(world, "good", images, "good.csv")
    assert done.returncode == 0, done.stderr[-2000:]
    return (world.root / "good.csv").read_bytes()


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("60.png", "61.png", "abc.png"), "abc.png: the file name is not a number"),
        (("63.png", "00063.png"), "00063.png and 63.png are both image 63"),
    ],
)
def test_predict_refuses_images_it_cannot_number(world, tmp_path, names, message):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in names:
        shutil.copy(world.data / "test_dirty_mnist_2nd" / "00120.png", folder / name)
    assert_one_error_line(_predict(world, "good", folder, "named.csv"), message)
    assert not (world.root / "named.csv").exists()


def test_a_wrong_option_lists_the_options_without_the_schema(world):
    done = cli("train", *world.train_args("x"), "backbone=nope", cwd=world.root)
    assert_one_error_line(done, "options for backbone", "effnet_b5")
    assert "backbone_schema" not in done.stderr


def test_predict_checks_its_answers_before_any_model_runs(world, tmp_path):
    answers = tmp_path / "answers.csv"
    answers.write_text("".join((world.data / "test_answer.csv").read_text().splitlines(keepends=True)[:-1]))
    done = cli(
        "predict",
        "exp=good",
        f"images={world.data / 'test_dirty_mnist_2nd'}",
        f"out={world.root / 'scored.csv'}",
        f"answers={answers}",
        f"paths.experiments={world.exp}",
        "progress=false",
        cwd=world.root,
    )
    assert_one_error_line(done, "answers.csv: no row for image 159")
    assert not (world.root / "scored.csv").exists()
