"""The topology benchmark end to end: ``--preset topology`` on the built-in ``vessels`` task
(clDice and Betti-number errors stored and reported) and ``--deep-supervision`` (DynUNet's heads).

Tiny on purpose (a few iterations, small images): they check the plumbing, not the numbers.
"""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
from conftest import require

from seglosses.bench.cli import build_config, configure_bench
from seglosses.bench.presets import PRESETS, resolve_preset_losses
from seglosses.cli import main

TINY = ["--iterations", "4", "--epoch-length", "2", "--batch-size", "2", "--quiet", "--workers", "1"]


def _db(out):
    return sqlite3.connect(str(out / "results.sqlite"))


def test_topology_preset_is_what_the_docs_say():
    p = PRESETS["topology"]
    assert p.tasks == ("vessels",) and p.spatial_dims == 2 and not p.deep_supervision
    losses, warnings = resolve_preset_losses(p)
    assert not warnings
    assert [c.spec for c in losses] == ["ce", "dice", "dice_ce", "cldice", "dice_cldice", "dice+ce+skeleton_recall"]
    assert PRESETS["paper"].deep_supervision and not PRESETS["quick"].deep_supervision


def test_deep_supervision_flag_and_protocol():
    import argparse

    parser = argparse.ArgumentParser()
    configure_bench(parser)
    cfg, _ = build_config(parser.parse_args(["--preset", "paper"]))
    assert cfg.deep_supervision and cfg.protocol()["deep_supervision"] is True
    cfg, _ = build_config(parser.parse_args(["--preset", "paper", "--no-deep-supervision"]))
    assert not cfg.deep_supervision and "deep_supervision" not in cfg.protocol()  # older folders resume
    cfg, _ = build_config(parser.parse_args(["--deep-supervision"]))
    assert cfg.preset == "quick" and cfg.deep_supervision


def test_topology_bench_stores_and_reports_topology_metrics(tmp_path):
    require("skimage")
    out = tmp_path / "topo"
    args = [
        "bench", "--preset", "topology", "--losses", "dice,dice_cldice", "--image-size", "64", "--patch-size", "32",
        "--cases", "6", "--out", str(out), "--deep-supervision",
    ] + TINY
    assert main(args) == 0
    con = _db(out)
    runs = pd.read_sql_query("SELECT * FROM runs", con)
    assert (runs["status"] == "finished").all(), runs["reason"].tolist()
    config = json.loads(runs["config"][0])
    assert config["train"]["deep_supervision"] is True
    topo = pd.read_sql_query("SELECT * FROM topology_metrics", con)
    metrics = pd.read_sql_query("SELECT * FROM case_metrics", con)
    assert len(topo) == len(metrics) > 0
    assert topo["cldice"].between(0, 1).all() and (topo["betti_error"] >= 0).all()
    assert (topo["betti_error"] == topo["betti0_error"] + topo["betti1_error"]).all()  # 2-D
    con.close()
    md = (out / "report.md").read_text()
    assert "## Topology of thin structures" in md and "clDice" in md
    assert "Error" not in md
    assert main(["export", str(out), "--csv"]) == 0
    results = pd.read_csv(out / "results.csv")
    assert {"cldice", "betti_error"} <= set(results.columns)


def test_quick_tasks_get_no_topology_metrics(tmp_path):
    out = tmp_path / "liver"
    args = [
        "bench", "--tasks", "liver", "--losses", "dice", "--image-size", "32", "--patch-size", "32", "--cases", "6",
        "--out", str(out), "--no-report",
    ] + TINY
    assert main(args) == 0
    con = _db(out)
    assert con.execute("SELECT COUNT(*) FROM topology_metrics").fetchone()[0] == 0
    runs = pd.read_sql_query("SELECT config FROM runs", con)
    assert "deep_supervision" not in json.loads(runs["config"][0])["train"]  # stored configs as before
    con.close()
    assert main(["export", str(out), "--csv"]) == 0
    assert "cldice" not in pd.read_csv(out / "results.csv").columns


@pytest.mark.parametrize("flag", ["--topology-metrics"])
def test_topology_metrics_for_any_task_on_request(tmp_path, flag):
    require("skimage")
    out = tmp_path / "liver_topo"
    args = [
        "bench", "--tasks", "liver", "--losses", "dice", "--image-size", "32", "--patch-size", "32", "--cases", "6",
        "--out", str(out), "--no-report", flag,
    ] + TINY
    assert main(args) == 0
    con = _db(out)
    assert con.execute("SELECT COUNT(*) FROM topology_metrics").fetchone()[0] > 0
    con.close()
