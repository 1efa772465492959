"""End-to-end tests of the benchmark: bench -> results.sqlite -> export -> rank -> report.

Tiny on purpose (a few iterations, 32 px images, a handful of cases): they check the plumbing,
not the numbers. Data: a built-in synthetic task, a 2D ``images/`` + ``masks/`` folder and a
Medical Segmentation Decathlon folder, both built here from real images that installed packages
ship (nibabel's test MR volume, matplotlib's MR slice); nothing is downloaded.
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from seglosses.bench import io as bio
from seglosses.bench.presets import LossConfig
from seglosses.bench.cli import bench
from seglosses.bench.runner import BenchConfig, run_bench
from seglosses.cli import main

TINY = ["--iterations", "4", "--epoch-length", "2", "--batch-size", "2", "--quiet"]


# ----------------------------------------------------------------------------------------------
# fixtures built from real images shipped by installed packages
# ----------------------------------------------------------------------------------------------


def _otsu(x: np.ndarray) -> float:
    hist, edges = np.histogram(x, bins=128)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centers) - np.cumsum(hist * centers)) / np.maximum(w1, 1)
    return float(centers[np.argmax(w0 * w1 * (m0 - m1) ** 2)])


def real_mr_volume():
    """nibabel's test T1 MR volume (33 x 41 x 25, 2 mm) and its spacing."""
    import nibabel as nib
    from nibabel.testing import data_path

    img = nib.load(os.path.join(data_path, "anatomical.nii"))
    return np.asarray(img.dataobj).astype(np.float32), tuple(float(z) for z in img.header.get_zooms()[:3])


def real_mr_slice() -> np.ndarray:
    """matplotlib's sample MR slice (256 x 256, 16 bit)."""
    from matplotlib import cbook

    with cbook.get_sample_data("s1045.ima.gz") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return np.frombuffer(raw, ">u2").reshape(256, 256).astype(np.uint16)


def make_folder_2d(root: Path, n: int = 6) -> Path:
    """A 2D folder: ``n`` 40 x 40 crops of the real MR slice (16-bit PNG) and Otsu masks (8-bit PNG)."""
    from PIL import Image

    mr = real_mr_slice()
    small = mr[::3, ::3]  # 86 x 86
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    thr = _otsu(small)
    for i in range(n):
        y, x = (i * 7) % 40, (i * 11) % 40
        crop = small[y : y + 40, x : x + 40]
        Image.fromarray(crop.astype(np.uint16) * 257).save(root / "images" / f"mr_{i:02d}.png")
        Image.fromarray(((crop > thr) * 255).astype(np.uint8)).save(root / "masks" / f"mr_{i:02d}.png")
    return root


def make_decathlon(root: Path, n: int = 5) -> Path:
    """A Medical Segmentation Decathlon folder from the real MR volume: flipped / cropped variants,
    the label an Otsu threshold of the tissue (anisotropic spacing kept from the header)."""
    from scipy import ndimage

    vol, spacing = real_mr_volume()
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    thr = _otsu(vol)
    for i in range(n):
        v = vol[:, :, i : i + 16]
        if i % 2:
            v = v[::-1]
        v = v[:, 2 * (i % 3) : 2 * (i % 3) + 36]
        lab = ndimage.binary_opening(v > thr).astype(np.uint8)
        bio.write_nifti(root / "imagesTr" / f"mr_{i:03d}.nii.gz", np.ascontiguousarray(v), spacing)
        bio.write_nifti(root / "labelsTr" / f"mr_{i:03d}.nii.gz", lab, spacing)
        training.append({"image": f"./imagesTr/mr_{i:03d}.nii.gz", "label": f"./labelsTr/mr_{i:03d}.nii.gz"})
    meta = {
        "name": "RealMR",
        "modality": {"0": "MRI"},
        "labels": {"0": "background", "1": "tissue"},
        "training": training,
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def _db(out: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(out / "results.sqlite"))


# ----------------------------------------------------------------------------------------------
# built-in task: the whole chain
# ----------------------------------------------------------------------------------------------


def test_builtin_task_bench_export_rank_report(tmp_path, capsys):
    out = tmp_path / "out"
    args = [
        "bench",
        "--tasks",
        "liver",
        "--losses",
        "ce,dice,0.5*dice+ce",
        "--image-size",
        "32",
        "--patch-size",
        "32",
        "--cases",
        "8",
        "--out",
        str(out),
        "--no-report",
    ] + TINY
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "liver" in printed and "dice" in printed and "done: 3 run(s)" in printed  # summary table

    con = _db(out)
    runs = pd.read_sql_query("SELECT * FROM runs", con)
    assert sorted(runs["loss"]) == ["0.5*dice+ce", "ce", "dice"]
    assert (runs["status"] == "finished").all() and (runs["iterations_done"] == 4).all()
    split = json.loads(con.execute("SELECT split FROM tasks WHERE task='liver'").fetchone()[0])
    assert len(split["test"]) == 2 and len(split["val"]) == 1 and len(split["train"]) == 5
    assert json.loads((out / "splits" / "liver.json").read_text())["test"] == split["test"]
    metrics = pd.read_sql_query("SELECT * FROM case_metrics", con)
    assert len(metrics) == 3 * 2  # runs x test cases x 1 foreground class
    assert set(metrics["case_id"]) == set(split["test"])
    assert metrics["dsc"].between(0, 1).all() and metrics["specificity"].between(0, 1).all()
    curves = pd.read_sql_query("SELECT * FROM curves", con)
    assert len(curves) == 3 * 2 and curves["train_loss"].notna().all()  # 2 epochs of 2 iterations
    assert con.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 6
    config = json.loads(runs["config"][0])
    assert config["train"]["patch_size"] == [32, 32] and config["train"]["lr"] == 3e-3
    con.close()

    # deterministic: the same grid in another folder gives the same numbers
    out2 = tmp_path / "out2"
    assert main(args[: -len(TINY) - 3] + ["--out", str(out2), "--no-report"] + TINY) == 0
    # (with --workers 2, the quick preset's default, runs finish in any order: compare by loss and case)
    query = "SELECT r.loss, m.case_id, m.dsc, m.nsd FROM case_metrics m JOIN runs r USING (run_id) ORDER BY r.loss, m.case_id"
    m1 = pd.read_sql_query(query, _db(out))
    m2 = pd.read_sql_query(query, _db(out2))
    pd.testing.assert_frame_equal(m1, m2)

    # export -> rank
    assert main(["export", str(out), "--csv"]) == 0
    rank_csv = pd.read_csv(out / "results.csv")
    assert {"method", "task", "case", "dsc", "nsd", "hd95", "sensitivity", "specificity"} <= set(
        rank_csv.columns
    )
    assert len(rank_csv) == 3 * 2
    tidy = pd.read_csv(out / "results_tidy.csv")
    assert {"task", "loss", "lr", "case", "class", "class_name", "dsc", "nsd", "hd95", "iou"} <= set(
        tidy.columns
    )
    assert (out / "runs.csv").exists() and (out / "curves.csv").exists()
    capsys.readouterr()
    assert main(["rank", str(out / "results.csv")]) == 0
    assert "dice" in capsys.readouterr().out

    # report
    assert main(["report", str(out), "--bootstrap", "20"]) == 0
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    for name in (
        "violin_liver.png",
        "ranking.png",
        "stability_bootstrap.png",
        "stability_metrics.png",
        "curves_liver.png",
        "overlays_liver.png",
    ):
        assert name in figures
    assert html.count('src="data:image/png;base64,') == len(figures)
    assert "http://" not in html and "https://" not in html and "<link" not in html and "<script" not in html
    for name in figures:
        assert f"figures/{name}" in md
    for text in ("What to use", "Table 2", "sensitivity", "specificity", "Rank stability", "Caveats"):
        assert text in md and text in html


# ----------------------------------------------------------------------------------------------
# real data layouts
# ----------------------------------------------------------------------------------------------


def test_2d_folder_bench_and_report(tmp_path):
    data = make_folder_2d(tmp_path / "mr2d")
    out = tmp_path / "out"
    # weighted_bce has no multiclass mode: the 2-class task gets a 1-channel sigmoid head for it
    assert (
        main(
            [
                "bench",
                "--data",
                str(data),
                "--losses",
                "dice,weighted_bce",
                "--patch-size",
                "32",
                "--out",
                str(out),
            ]
            + TINY
        )
        == 0
    )
    con = _db(out)
    tasks = pd.read_sql_query("SELECT * FROM tasks", con)
    assert list(tasks["task"]) == ["mr2d"] and tasks["spatial_dims"][0] == 2
    assert json.loads(tasks["label_names"][0])[0] == "background"
    runs = pd.read_sql_query("SELECT status FROM runs", con)
    assert list(runs["status"]) == ["finished", "finished"]
    m = pd.read_sql_query("SELECT * FROM case_metrics", con)
    assert len(m) == 2 * 1 * 1  # 2 losses x 1 test case (20 % of 6 -> 1) x 1 class
    assert (out / "report.html").exists() and (out / "figures" / "violin_mr2d.png").exists()


def test_decathlon_volumes_as_2d_slices_and_3d(tmp_path):
    data = make_decathlon(tmp_path / "Task90_RealMR")
    out = tmp_path / "out2d"
    assert (
        main(
            [
                "bench",
                "--data",
                str(data),
                "--spatial-dims",
                "2",
                "--losses",
                "dice_ce",
                "--patch-size",
                "32",
                "--out",
                str(out),
                "--no-report",
            ]
            + TINY
        )
        == 0
    )
    con = _db(out)
    t = con.execute("SELECT task, spatial_dims, train_dims FROM tasks").fetchone()
    assert t == ("RealMR", 3, 2)  # volumes evaluated in 3D, trained on 2D slices
    m = pd.read_sql_query("SELECT * FROM case_metrics", con)
    assert len(m) == 1 and m["case_id"][0].startswith("mr_")
    assert np.isfinite(m["dsc"][0]) and 0 <= m["nsd"][0] <= 1
    pred_axis = con.execute("SELECT axis FROM predictions").fetchone()[0]
    assert pred_axis in (0, 1, 2)  # a 2D display slice cut from the 3D prediction

    out3 = tmp_path / "out3d"
    assert (
        main(
            [
                "bench",
                "--data",
                str(data),
                "--spatial-dims",
                "3",
                "--losses",
                "dice",
                "--patch-size",
                "16",
                "--iterations",
                "2",
                "--epoch-length",
                "2",
                "--batch-size",
                "1",
                "--quiet",
                "--out",
                str(out3),
                "--no-report",
            ]
        )
        == 0
    )
    con3 = _db(out3)
    assert con3.execute("SELECT spatial_dims, train_dims FROM tasks").fetchone() == (3, 3)
    assert con3.execute("SELECT status FROM runs").fetchone()[0] == "finished"
    assert json.loads(con3.execute("SELECT config FROM runs").fetchone()[0])["train"]["patch_size"] == [
        16,
        16,
        16,
    ]


# ----------------------------------------------------------------------------------------------
# failures are recorded, the grid goes on
# ----------------------------------------------------------------------------------------------


class _NanAfter(torch.nn.Module):
    """A loss that is fine for ``n`` calls, then NaN."""

    def __init__(self, n=2):
        super().__init__()
        self.n, self.calls = n, 0

    def forward(self, logits, target):
        self.calls += 1
        v = logits.float().mean() * 0 + 1.0
        return v * float("nan") if self.calls > self.n else v


class _Raises(torch.nn.Module):
    def forward(self, logits, target):
        raise RuntimeError("boom from the loss")


def test_failed_runs_are_recorded_and_reported(tmp_path, monkeypatch):
    real_build = LossConfig.build

    def fake_build(self):
        if self.name == "nan_loss":
            return _NanAfter()
        if self.name == "raising_loss":
            return _Raises()
        return real_build(self)

    monkeypatch.setattr(LossConfig, "build", fake_build)
    losses = [LossConfig("nan_loss", "ce"), LossConfig("dice", "dice"), LossConfig("raising_loss", "ce")]
    cfg = BenchConfig(
        out=str(tmp_path / "out"),
        tasks=["liver"],
        losses=losses,
        iterations=4,
        epoch_length=2,
        batch_size=2,
        patch_size=32,
        image_size=32,
        n_cases=6,
        progress=False,
        report=True,
    )
    summary = bench(cfg, log=lambda *a: None)  # the grid, then the report
    assert summary["ran"] == 3 and summary["failed"] == 2
    con = _db(tmp_path / "out")
    rows = {r[0]: r[1:] for r in con.execute("SELECT loss, status, reason, iterations_done FROM runs")}
    assert rows["dice"][0] == "finished"
    assert rows["nan_loss"][0] == "failed" and "nan" in rows["nan_loss"][1] and rows["nan_loss"][2] == 2
    assert (
        rows["raising_loss"][0] == "failed" and "RuntimeError: boom from the loss" in rows["raising_loss"][1]
    )
    n_metrics = con.execute(
        "SELECT COUNT(*) FROM case_metrics JOIN runs USING (run_id) WHERE status = 'failed'"
    ).fetchone()[0]
    assert n_metrics == 0
    md = (tmp_path / "out" / "report.md").read_text()
    table2 = md.split("## Mean DSC and NSD")[1].split("##")[0]
    nan_row = [line for line in table2.splitlines() if line.startswith("| nan_loss")][0]
    assert "—" in nan_row
    assert "Failed" in md and "nan_loss on liver" in md

    # --resume skips failed runs; --retry-failed runs them again (replacing the old rows)
    cfg.resume, cfg.report = True, False
    assert run_bench(cfg, log=lambda *a: None)["ran"] == 0
    monkeypatch.setattr(LossConfig, "build", real_build)
    cfg.retry_failed = True
    assert run_bench(cfg, log=lambda *a: None)["ran"] == 2
    statuses = dict(con.execute("SELECT loss, status FROM runs").fetchall())
    assert statuses == {"nan_loss": "finished", "dice": "finished", "raising_loss": "finished"}
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 3


def test_learning_rate_selection_by_validation_dice(tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "bench",
                "--tasks",
                "liver",
                "--losses",
                "dice",
                "--lrs",
                "3e-3,3e-5",
                "--image-size",
                "32",
                "--patch-size",
                "32",
                "--cases",
                "8",
                "--out",
                str(out),
                "--no-report",
            ]
            + TINY
        )
        == 0
    )
    from seglosses.bench.runner import select_runs

    runs = pd.read_sql_query("SELECT * FROM runs", _db(out))
    assert sorted(runs["lr"]) == [3e-5, 3e-3]
    chosen = select_runs(runs)
    assert len(chosen) == 1
    best = runs.loc[runs["val_dice"].fillna(-1).idxmax()]
    assert chosen["run_id"].iloc[0] == best["run_id"]
    assert main(["export", str(out)]) == 0
    tidy = pd.read_csv(out / "results_tidy.csv")
    assert tidy.groupby("lr")["selected"].first().sum() == 1
    assert len(pd.read_csv(out / "results.csv")) == 2  # only the picked learning rate is ranked
