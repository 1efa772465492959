"""``seglosses bench`` with folds, seeds, a plan and a budget: tiny grids, checked through the store.

These check behaviour (coverage, resume, what the plan says), not speed; the one budgeted run
checks that the planner's budget is honoured with a generous tolerance for a slow CI machine.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from seglosses.bench import io as bio
from seglosses.cli import main

TINY = ["--tasks", "liver", "--losses", "ce,dice", "--cases", "7", "--image-size", "32", "--patch-size", "32",
        "--batch-size", "2", "--epoch-length", "2", "--workers", "1", "--quiet", "--no-report"]


def _runs(out):
    conn = sqlite3.connect(str(Path(out) / "results.sqlite"))
    try:
        return conn.execute("SELECT run_id, loss, fold, seed, status FROM runs ORDER BY run_id").fetchall(), conn.execute(
            "SELECT r.loss, r.fold, r.seed, m.case_id FROM case_metrics m JOIN runs r USING (run_id)"
        ).fetchall()
    finally:
        conn.close()


def _coverage(metrics):
    """{(loss, seed): sorted case ids over all folds} and whether any case repeats."""
    out, repeats = {}, False
    for loss, fold, seed, case in metrics:
        lst = out.setdefault((loss, seed), [])
        repeats |= case in lst
        lst.append(case)
    return {k: sorted(v) for k, v in out.items()}, repeats


def test_plan_prints_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["bench", *TINY, "--iterations", "4", "--folds", "3", "--seeds", "0,1", "--plan", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "plan for task liver" in text and "ETA" in text and "12" in text  # 2 losses x 3 folds x 2 seeds
    assert "7 cases" in text
    assert not (out / "results.sqlite").exists() or not _runs(out)[0]


def test_kfold_every_case_tested_once_per_loss_and_seed(tmp_path):
    out = tmp_path / "o"
    assert main(["bench", *TINY, "--iterations", "2", "--folds", "3", "--seeds", "0,1", "--out", str(out)]) == 0
    runs, metrics = _runs(out)
    assert sorted((l, f, s) for _, l, f, s, _ in runs) == sorted(
        (l, f, s) for l in ("ce", "dice") for f in range(3) for s in (0, 1)
    )
    cov, repeats = _coverage(metrics)
    assert not repeats
    all_cases = [f"liver_{i:03d}" for i in range(7)]
    assert set(cov) == {(l, s) for l in ("ce", "dice") for s in (0, 1)}
    for cases in cov.values():
        assert cases == all_cases


def test_resume_adds_folds_and_seeds(tmp_path):
    out = tmp_path / "o"
    base = [*TINY, "--iterations", "2", "--folds", "3", "--out", str(out)]
    assert main(["bench", *base, "--fold", "0"]) == 0
    first, _ = _runs(out)
    assert sorted((l, f, s) for _, l, f, s, _ in first) == [("ce", 0, 0), ("dice", 0, 0)]
    assert main(["bench", *base, "--resume", "--seeds", "0,1"]) == 0
    runs, metrics = _runs(out)
    assert len(runs) == 2 * 3 * 2
    assert {r[0] for r in first} <= {r[0] for r in runs}  # the first runs were kept, not rerun
    cov, repeats = _coverage(metrics)
    assert not repeats and all(len(v) == 7 for v in cov.values())
    # the number of folds is part of the protocol: another K is refused
    assert main(["bench", *TINY, "--iterations", "2", "--folds", "2", "--out", str(out), "--resume"]) == 2


def test_budgeted_run_stays_within_its_budget(tmp_path, capsys):
    """Functional check of the planner (not a speed test): budget 40 s, generous CI tolerance."""
    out = tmp_path / "o"
    budget = 40.0
    t0 = time.perf_counter()
    assert main(["bench", "--tasks", "liver", "--losses", "ce,dice", "--cases", "10", "--image-size", "32",
                 "--workers", "1", "--quiet", "--budget", "40s", "--out", str(out)]) == 0
    elapsed = time.perf_counter() - t0
    text = capsys.readouterr().out
    assert "fills the budget" in text or "below the floor" in text
    plan = json.loads((out / "plan.json").read_text())["liver"]
    assert plan["eta_seconds"] <= budget
    runs, _ = _runs(out)
    assert len(runs) == plan["n_runs"]
    assert elapsed < 3 * budget + 60  # generous: a loaded CI machine, the report, imports


def test_3d_data_on_cpu_with_a_short_budget_is_planned_small(tmp_path, capsys):
    root = tmp_path / "Task99_Vol"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    training = []
    for i in range(6):
        img = rng.normal(0, 1, size=(48, 48, 40)).astype(np.float32)
        lab = np.zeros(img.shape, np.uint8)
        lab[10:30, 12:34, 8:30] = 1
        img[lab > 0] += 2
        bio.write_nifti(root / "imagesTr" / f"case_{i}.nii.gz", img, (1.0, 1.0, 1.0))
        bio.write_nifti(root / "labelsTr" / f"case_{i}.nii.gz", lab, (1.0, 1.0, 1.0))
        training.append({"image": f"./imagesTr/case_{i}.nii.gz", "label": f"./labelsTr/case_{i}.nii.gz"})
    meta = {"name": "Vol", "modality": {"0": "MR"}, "labels": {"0": "background", "1": "organ"}, "training": training}
    (root / "dataset.json").write_text(json.dumps(meta))
    out = tmp_path / "o"
    assert main(["bench", "--data", str(root), "--losses", "ce,dice,focal,dice_ce", "--budget", "30s", "--plan",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3-D" in text  # the fingerprint
    assert "2-D training on slices" in text or "smaller patch" in text


def test_builtin_3d_task_with_a_short_budget_says_2d(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["bench", "--tasks", "liver", "--spatial-dims", "3", "--cases", "6", "--image-size", "32",
                 "--losses", "ce,dice", "--budget", "20s", "--plan", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2-D training on slices" in text or "smaller patch" in text
    assert not out.exists()


def test_a_declined_confirmation_trains_nothing(tmp_path):
    from seglosses.bench.presets import parse_losses
    from seglosses.bench.runner import BenchConfig, run_bench

    asked = []
    cfg = BenchConfig(out=str(tmp_path / "o"), tasks=["liver"], losses=parse_losses("ce"), iterations=10**7,
                      n_cases=6, image_size=32, patch_size=32, batch_size=2, progress=False, report=False)
    summary = run_bench(cfg, log=lambda *_: None, confirm=lambda q: asked.append(q) or False)
    assert summary.get("aborted") and asked and "--budget" in asked[0]
    assert not (tmp_path / "o" / "results.sqlite").exists()
