"""Crash safety of ``OUT/results.sqlite``: SIGKILL a running grid, resume, nothing lost or doubled."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seglosses.cli import main

GRID = [
    "--tasks",
    "liver",
    "--losses",
    "ce,dice,focal,topk,wce,dice_ce,iou,tversky",
    "--iterations",
    "6",
    "--epoch-length",
    "3",
    "--batch-size",
    "2",
    "--image-size",
    "32",
    "--patch-size",
    "32",
    "--cases",
    "6",
    "--workers",
    "1",
    "--quiet",
    "--no-report",
]


def _runs(db: Path):
    con = sqlite3.connect(str(db), timeout=30)
    try:
        return con.execute("SELECT task, loss, lr, seed, status FROM runs ORDER BY run_id").fetchall()
    except sqlite3.OperationalError:  # table not created yet
        return []
    finally:
        con.close()


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_then_resume_loses_nothing_and_duplicates_nothing(tmp_path):
    out = tmp_path / "out"
    db = out / "results.sqlite"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "seglosses.cli", "bench", "--out", str(out)] + GRID,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.time() + 240
        before = []
        while time.time() < deadline:
            if db.exists():
                before = _runs(db)
                if len(before) >= 1:
                    break
            if proc.poll() is not None:
                pytest.fail(f"bench exited before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        assert before, "no run finished within the time limit"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    after_kill = _runs(db)
    assert len(after_kill) >= len(before) and after_kill[: len(before)] == before
    assert len(after_kill) < 8, "the grid finished before the kill; make it longer"
    con = sqlite3.connect(str(db))
    # every stored run is complete: metrics for each test case, a curve
    for run_id, n_metrics, n_curve in con.execute(
        "SELECT r.run_id, (SELECT COUNT(*) FROM case_metrics m WHERE m.run_id = r.run_id), "
        "(SELECT COUNT(*) FROM curves c WHERE c.run_id = r.run_id) FROM runs r"
    ):
        assert n_metrics == 1 and n_curve == 2, (run_id, n_metrics, n_curve)
    con.close()

    # without --resume an OUT folder with runs is refused
    assert main(["bench", "--out", str(out)] + GRID) == 2

    assert main(["bench", "--out", str(out), "--resume"] + GRID) == 0
    final = _runs(db)
    assert len(final) == 8
    keys = [r[:4] for r in final]
    assert len(set(keys)) == len(keys)  # no duplicate
    assert final[: len(after_kill)] == after_kill  # nothing lost or rewritten
    assert all(r[4] == "finished" for r in final)
    assert sqlite3.connect(str(db)).execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # a second resume runs nothing
    assert main(["bench", "--out", str(out), "--resume"] + GRID) == 0
    assert len(_runs(db)) == 8


def test_resume_refuses_a_different_protocol(tmp_path, capsys):
    out = tmp_path / "out"
    small = [
        "--tasks",
        "liver",
        "--losses",
        "dice",
        "--iterations",
        "2",
        "--epoch-length",
        "2",
        "--batch-size",
        "2",
        "--image-size",
        "32",
        "--patch-size",
        "32",
        "--cases",
        "4",
        "--quiet",
        "--no-report",
        "--out",
        str(out),
    ]
    assert main(["bench"] + small) == 0
    capsys.readouterr()
    changed = [a if a != "2" else "3" for a in small]  # iterations / epoch length / batch size differ
    assert main(["bench", "--resume"] + changed) == 2
    err = capsys.readouterr().err
    assert "different protocol" in err and "iterations: stored 2, now 3" in err and "results.sqlite" in err
    # new losses may be added on resume
    more = list(small)
    more[more.index("dice")] = "dice,ce"
    assert main(["bench", "--resume"] + more) == 0
    assert [r[1] for r in _runs(out / "results.sqlite")] == ["dice", "ce"]
    # the same name with other options is refused
    from seglosses.bench.presets import LossConfig
    from seglosses.bench.runner import BenchConfig, run_bench

    cfg = BenchConfig(
        out=str(out),
        tasks=["liver"],
        losses=[LossConfig("dice", "dice", {"batch": True})],
        iterations=2,
        epoch_length=2,
        batch_size=2,
        image_size=32,
        patch_size=32,
        n_cases=4,
        resume=True,
        progress=False,
        report=False,
    )
    with pytest.raises(ValueError, match="was run as dice"):
        run_bench(cfg, log=lambda *a: None)


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
def test_ctrl_c_stops_promptly_with_workers(tmp_path):
    out = tmp_path / "out"
    db = out / "results.sqlite"
    grid = [a if a != "1" else "2" for a in GRID]  # --workers 2: runs in threads
    # SIGINT back to its default in the child: a shell starts background jobs (`make test &`, nohup)
    # with SIGINT ignored, and Python then installs no KeyboardInterrupt handler
    proc = subprocess.Popen([sys.executable, "-m", "seglosses.cli", "bench", "--out", str(out)] + grid,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not (db.exists() and _runs(db)):
            if proc.poll() is not None:
                pytest.fail(proc.stderr.read().decode()[-2000:])
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, proc.stderr.read().decode()[-2000:]
    assert "--resume" in proc.stderr.read().decode()
    con = sqlite3.connect(str(db))
    for n_metrics, n_curve in con.execute(
        "SELECT (SELECT COUNT(*) FROM case_metrics m WHERE m.run_id = r.run_id), "
        "(SELECT COUNT(*) FROM curves c WHERE c.run_id = r.run_id) FROM runs r"
    ):
        assert n_metrics == 1 and n_curve == 2
