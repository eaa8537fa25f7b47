"""multimnist.rank (multimnist-rank): experiments ranked by their folds' mean best val_loss."""

from __future__ import annotations

import subprocess
import sys


def test_experiments_are_ranked_best_first_by_their_folds_best_val_loss(tmp_path):
    for exp, losses in {"search_a": (0.50, 0.40), "search_b": (0.30, 0.35), "other": (0.10, 0.20)}.items():
        for k, best in enumerate(losses):
            (tmp_path / exp / f"fold{k}").mkdir(parents=True)
            rows = [f"0,{best + 0.1},0.6,0.7", f"1,{best},0.7,0.8"]
            (tmp_path / exp / f"fold{k}" / "metrics.csv").write_text(
                "epoch,val_loss,val_acc,val_auc\n" + "\n".join(rows)
            )
    cmd = [sys.executable, "-m", "multimnist.rank", "--experiments", str(tmp_path), "--prefix", "search"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    header, first, second = done.stdout.splitlines()
    assert first.split()[:3] == ["search_b", "2", "0.3250"] and second.split()[0] == "search_a"
    missing = subprocess.run([*cmd[:-1], "nothing"], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and missing.stderr.startswith("error: ")
