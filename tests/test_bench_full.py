"""scripts/bench_full.py's bookkeeping: stages run once and keep their time, the table lands in
experiments/README.md as one section, the shown commands name no machine-specific path."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from multimnist import stages as st

from .conftest import REPO


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_full", REPO / "scripts" / "bench_full.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_full"] = module
    spec.loader.exec_module(module)
    return module


def plan(bf, bench, monkeypatch, dataset: str, recipe: str, variant: str = ""):
    """The recipe a row hands the runner (nothing runs; each stage "took" a minute): the runner's
    stage keys, each stage's command line, and what the row returns (its exp and minutes)."""
    planned = []

    def fake_run(r):
        planned.append(r)
        return {"stages": [{"stage": s.name, "seconds": 60.0} for s in r.stages]}

    monkeypatch.setattr(bf, "run_recipe", fake_run)
    monkeypatch.setattr(bench, "result", lambda dataset, recipe, exp, minutes, variant: (exp, minutes))
    exp, minutes = bench.row(dataset, recipe, variant)
    (r,) = planned
    keys = [st.stage_key(r, s) for s in r.stages]
    return r, keys, {k: st.argv(r, s) for k, s in zip(keys, r.stages, strict=True)}, exp, minutes


def _table(bf, *rows: tuple[str, str, float]) -> str:
    """A bench-full table of rows (data, recipe, gap)."""
    return bf.table(
        [
            {
                "data": d,
                "recipe": r,
                "pretraining glyphs": "pool A",
                "pretraining epochs": 60,
                "folds": "0,1,2,3,4",
            }
            | {"epochs": 5, "lr": 2e-3, "minutes": 1.0, "test": 0.6, "floor": 0.5, "oof": 0.6, "gap": gap}
            | {"auc": 0.6}
            for d, r, gap in rows
        ]
    )


def test_the_table_is_one_section_of_the_experiments_readme_and_a_run_merges_into_it(tmp_path):
    bf = bench_module()
    readme = tmp_path / "README.md"
    readme.write_text("# experiments\n\nthe claims table\n")
    bf.publish(
        readme, _table(bf, ("dacon7-B", "dacon7-A", 0.25), ("procedural", "procedural", 0.5)), ["python -m a"]
    )
    bf.publish(
        readme,
        _table(bf, ("dacon7-B", "dacon7-A", 0.27), ("dacon7-B", "dacon7-A + stream", 0.3)),
        ["python -m b"],
    )
    text = readme.read_text()
    assert text.startswith("# experiments\n\nthe claims table\n") and text.count(bf.MARK) == 1
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| data")]
    assert [r.split("|")[2].strip() for r in rows] == ["dacon7-A", "procedural", "dacon7-A + stream"]
    assert "27.0%" in rows[0] and "25.0%" not in text  # the re-measured row replaced in place
    assert "python -m a" in text and "python -m b" in text  # an earlier row keeps its commands


def test_shown_commands_name_the_glyph_folder_as_a_user_writes_it(tmp_path):
    bf = bench_module()
    bench = bf.Bench(tmp_path / "exp", tmp_path / "data", bf.Budget(), dacon7=str(tmp_path / "mnist_data"))
    bench.remember(" ".join(["python -m multimnist.synth", *bench.glyph_args("B")]))
    assert bench.commands == [
        "python -m multimnist.synth glyphs=dacon7 glyphs.path=mnist_data/ glyphs.pool=B"
    ]


def test_a_self_training_row_on_pool_a_with_a_variant_runs_the_stages_it_names(tmp_path, monkeypatch):
    """dacon7-B:dacon7-A+self@max: pretraining and the self-training round both on pool A's glyphs, the
    round harvesting the first fine-tune, and the variant's override in both fine-tunes."""
    bf = bench_module()
    budget = bf.Budget(pretrain_epochs=30)
    bench = bf.Bench(tmp_path / "exp", tmp_path / "data", budget, dacon7=str(tmp_path / "mnist_data"))
    recipe, keys, lines, exp, minutes = plan(bf, bench, monkeypatch, "dacon7-B", "dacon7-A+self", "max")
    assert keys[1:] == [  # 30 pretraining epochs: the old names
        "pretrain glyphs_fcn_e30_dacon7A",
        "train bench_dacon7B_dacon7A_e5_max",
        "ensemble bench_dacon7B_dacon7A_e5_max",
        "pretrain self_bench_dacon7B_dacon7A_e5_max",
        "train bench_dacon7B_dacon7Aself_e5_max",
        "ensemble bench_dacon7B_dacon7Aself_e5_max",
    ]
    assert exp == "bench_dacon7B_dacon7Aself_e5_max" and minutes == 6.0  # every stage after the data
    pretrains = [line for key, line in lines.items() if key.startswith("pretrain")]
    assert all("glyphs.pool=A" in line for line in pretrains)
    assert "harvest.exp=bench_dacon7B_dacon7A_e5_max" in pretrains[1]
    assert any(a.startswith("backbone.weights=") and "glyphs_fcn_e30_dacon7A" in a for a in pretrains[1])
    tunes = [line for key, line in lines.items() if key.startswith("train")]
    assert all("backbone.global_pool=max" in line for line in tunes)
    weights = "backbone.weights=" + str(tmp_path / "exp" / "self_bench_dacon7B_dacon7A_e5_max")
    assert weights in " ".join(tunes[1])


def test_a_pseudo_label_round_trains_on_the_last_ensembles_predictions(tmp_path, monkeypatch):
    bf = bench_module()
    bench = bf.Bench(tmp_path / "exp", tmp_path / "data", bf.Budget(pretrain_epochs=30))
    recipe, keys, lines, exp, minutes = plan(bf, bench, monkeypatch, "procedural", "procedural+self+pseudo")
    assert [k for k in keys if k.startswith("train")][-2:] == [
        "train bench_procedural_self_e5",
        "train bench_procedural_selfpseudo_e5",
    ]
    assert exp == "bench_procedural_selfpseudo_e5" and minutes == 8.0
    pseudo = lines["train bench_procedural_selfpseudo_e5"]
    labels = tmp_path / "exp" / "bench_procedural_self_e5" / "ensemble" / "submission.csv"
    assert f"data.pseudo_labels={labels}" in pseudo
    weights = [a for a in pseudo if a.startswith("backbone.weights=")]
    first_round = tmp_path / "exp" / "self_bench_procedural_procedural_e5" / "pretrain" / "weights.pt"
    assert weights == [f"backbone.weights={first_round}"]
    assert bf.pretraining_glyphs("dacon7-A+self2") == "dacon7 pool A, then + harvested, twice"


def test_a_handdrawn_row_pretrains_on_the_redrawn_fonts_and_needs_no_glyph_files(tmp_path, monkeypatch):
    bf = bench_module()
    bench = bf.Bench(tmp_path / "exp", tmp_path / "data", bf.Budget(pretrain_epochs=30))  # no --dacon7
    recipe, keys, lines, exp, _ = plan(bf, bench, monkeypatch, "procedural", "handdrawn+self")
    pretrains = {key: line for key, line in lines.items() if key.startswith("pretrain")}
    assert list(pretrains) == [
        "pretrain glyphs_fcn_e30_handdrawn",
        "pretrain self_bench_procedural_handdrawn_e5",
    ]
    assert all("glyphs=handdrawn" in line for line in pretrains.values())  # the harvest mixed with them too
    assert exp == "bench_procedural_handdrawnself_e5"
    assert bf.pretraining_glyphs("handdrawn") == "procedural, redrawn by hand"


def test_the_default_60_epoch_pretraining_names_its_stages_apart_and_shows_its_epochs(tmp_path, monkeypatch):
    """The default (60 pretraining epochs) next to the rows of before (30) in one experiments folder:
    no stage is shared by mistake, and the table says how long each row pretrained."""
    bf = bench_module()
    bench = bf.Bench(tmp_path / "exp", tmp_path / "data", bf.Budget())
    recipe, keys, lines, exp, _ = plan(bf, bench, monkeypatch, "procedural", "procedural+self")
    assert [k for k in keys if not k.startswith(("synth", "ensemble"))] == [
        "pretrain glyphs_fcn_e60",
        "train bench_procedural_procedural_p60_e5",
        "pretrain self_bench_procedural_procedural_p60_e5",
        "train bench_procedural_self_p60_e5",
    ]
    assert exp == "bench_procedural_self_p60_e5"
    assert bench.budget.pretrain_text("procedural+self") == "60 + 8"
    old = bf.Budget(pretrain_epochs=30)
    assert old.pretrain_tag() == "" and old.pretrain_text("dacon7-A") == "30"
    assert old.pretrain_text("scratch") == "-"
    row = {"data": "procedural", "recipe": "procedural", "pretraining glyphs": "procedural"}
    row |= {"pretraining epochs": "60", "folds": 5, "epochs": 5, "lr": 0.002, "minutes": 30.0, "test": 0.8}
    row |= {"oof": 0.79, "floor": 0.5, "gap": 0.6, "auc": 0.8}
    header, _, line = bf.table([row]).splitlines()
    assert header.split(" | ")[3] == "pretraining epochs" and line.split(" | ")[3] == "60"
    assert header.split(" | ")[5] == "fine-tune lr" and line.split(" | ")[5] == "0.002"


def test_a_rows_learning_rate_is_the_one_its_folds_ran_with(tmp_path):
    """cpu_full's learning rate changed (1e-3, then 2e-3): the table reads each row's from its folds."""
    bf = bench_module()
    exp = tmp_path / "bench_x"
    for fold, lr in ((0, 0.002), (1, 0.002)):
        (exp / f"fold{fold}" / ".hydra").mkdir(parents=True)
        (exp / f"fold{fold}" / ".hydra" / "config.yaml").write_text(f"optimizer:\n  lr: {lr}\n")
    assert bf.fine_tune_lr(exp) == 0.002
    (exp / "fold1" / ".hydra" / "config.yaml").write_text("optimizer:\n  lr: 0.001\n")
    with pytest.raises(ValueError, match="learning rates"):
        bf.fine_tune_lr(exp)


def test_variants_combine_in_the_named_order_in_overrides_and_experiment_names(tmp_path, monkeypatch):
    """`@seed1,lr1` replays a row of before (fine-tuned at lr 1e-3) at another seed: both overrides in
    every fine-tune, both names in its experiments."""
    bf = bench_module()
    bench = bf.Bench(tmp_path / "exp", tmp_path / "data", bf.Budget(pretrain_epochs=30))
    recipe, keys, lines, exp, _ = plan(bf, bench, monkeypatch, "procedural", "procedural+self", "seed1,lr1")
    assert exp == "bench_procedural_self_e5_seed1_lr1"
    tunes = [line for key, line in lines.items() if key.startswith("train")]
    assert len(tunes) == 2
    for line in tunes:
        at = line.index("trainer.seed=1")
        assert line[at : at + 2] == ["trainer.seed=1", "optimizer.lr=1e-3"], line
    assert bf.variant_overrides("") == [] and bf.variant_overrides("lr1") == ["optimizer.lr=1e-3"]
    assert bf.unknown_variants("seed1,lr9") == ["lr9"] and bf.unknown_variants("") == []


def test_a_known_glyph_row_pretrains_and_streams_from_the_datas_own_pool_and_answers_to_its_target(
    tmp_path, monkeypatch
):
    bf = bench_module()
    bench = bf.Bench(tmp_path / "exp", tmp_path / "data", bf.Budget(), dacon7=str(tmp_path / "mnist_data"))
    recipe, keys, lines, exp, _ = plan(bf, bench, monkeypatch, "dacon7-B", "dacon7-B", "halfbstream")
    assert "glyphs.pool=B" in lines["pretrain glyphs_fcn_e60_dacon7B"]
    assert "data.synthetic.glyphs.pool=B" in lines[f"train {exp}"]
    row = {"data": "dacon7-B", "recipe": "dacon7-B", "pretraining glyphs": bf.pretraining_glyphs("dacon7-B")}
    assert bf.situation(row) == "known glyphs"
    assert bf.situation(row | {"pretraining glyphs": "dacon7 pool A"}) == "unseen glyphs"
    met = row | {"exp": "x", "gap": 0.51, "minutes": 29.0}
    assert bf.targets([met]).endswith("51.0%, 29.0 min: MET")
    assert bf.targets([met | {"minutes": 31.0}]).endswith("MISSED")


def test_a_lite0_row_pretrains_and_fine_tunes_the_same_cut_network_from_imagenet(tmp_path, monkeypatch):
    bf = bench_module()
    bench = bf.Bench(tmp_path / "exp", tmp_path / "data", bf.Budget(), dacon7=str(tmp_path / "mnist_data"))
    recipe, keys, lines, exp, minutes = plan(bf, bench, monkeypatch, "dacon7-B", "lite0/dacon7-B")
    assert keys[1:] == [
        "pretrain glyphs_lite0t16_e20_dacon7B",
        "train bench_dacon7B_lite0t16_dacon7B_p20_e5",
        "ensemble bench_dacon7B_lite0t16_dacon7B_p20_e5",
    ]
    pretrain, tune = lines[keys[1]], lines[keys[2]]
    for line in (pretrain, tune):
        assert {"backbone=tf_effnet_lite0", "backbone.truncate_stride=16", "backbone.img_size=128"} <= set(
            line
        )
    assert "backbone.pretrained=true" in pretrain and "glyphs.pool=B" in pretrain
    assert "backbone.pretrained=true" not in tune  # the glyph weights replace ImageNet's
    assert any(a.startswith("backbone.weights=") and "glyphs_lite0t16_e20_dacon7B" in a for a in tune)
    _, keys, lines, exp, _ = plan(bf, bench, monkeypatch, "dacon7-B", "lite0/imagenet")
    assert keys[1:] == [
        "train bench_dacon7B_lite0t16_imagenet_e5",
        "ensemble bench_dacon7B_lite0t16_imagenet_e5",
    ]
    assert "backbone.pretrained=true" in lines[keys[1]]
    assert bf.known_recipe("lite0/imagenet") and not bf.known_recipe("lite0/dacon7-A+self")
    assert not bf.known_recipe("imagenet") and not bf.known_recipe("vgg/dacon7-B")
    assert bf.pretraining_glyphs("lite0/imagenet") == "- (ImageNet weights)"
    assert (
        bf.Budget().pretrain_text("lite0/dacon7-B") == "20"
        and bf.Budget().pretrain_text("lite0/imagenet") == "-"
    )
