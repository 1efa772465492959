"""``results.sqlite``: one transaction per run, unique runs, NaN / inf round trip, schema checks."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from seglosses.bench.store import ResultStore, decode_array, encode_array, open_results


def _run(loss="dice", lr=3e-3, status="finished"):
    return {
        "task": "liver",
        "loss": loss,
        "spec": loss,
        "options": {},
        "lr": lr,
        "seed": 0,
        "status": status,
        "reason": None if status == "finished" else "loss became nan",
        "config": {"x": 1},
    }


def _metric(case="c1", dsc=0.5, hd95=float("inf")):
    return {"case_id": case, "label": 1, "label_name": "liver", "dsc": dsc, "nsd": float("nan"), "hd95": hd95}


def test_record_run_round_trip_and_unique_key(tmp_path):
    store = ResultStore(tmp_path, create=True)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rid = store.record_run(
        _run(),
        [_metric("c1"), _metric("c2", 0.7, 3.0)],
        [{"stage": 0, "epoch": 0, "iteration": 5, "train_loss": 0.4, "val_dice": float("nan"), "lr": 3e-3}],
        [("c1", -1, -1, np.eye(4, dtype=np.int64))],
    )
    m = store.metrics_frame()
    assert list(m["dsc"]) == [0.5, 0.7] and np.isinf(m["hd95"][0]) and m["nsd"].isna().all()
    assert store.curves_frame()["val_dice"].isna().all()
    np.testing.assert_array_equal(store.predictions(rid)["c1"], np.eye(4))
    with pytest.raises(sqlite3.IntegrityError):
        store.record_run(_run(), [_metric()])  # same (task, loss, lr, seed): refused, not duplicated
    assert store.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    assert store.conn.execute("SELECT COUNT(*) FROM case_metrics").fetchone()[0] == 2
    assert set(store.finished_runs()) == {("liver", "dice", 3e-3, 0, 0)}  # (task, loss, lr, fold, seed)
    store.close()


def test_a_failing_write_leaves_nothing(tmp_path):
    store = ResultStore(tmp_path, create=True)
    bad_metrics = [
        _metric("c1"),
        {"case_id": "c1", "label": 1},
    ]  # duplicate primary key -> error mid-transaction
    with pytest.raises(sqlite3.IntegrityError):
        store.record_run(_run("ce"), bad_metrics)
    for table in ("runs", "case_metrics", "curves", "predictions"):
        assert store.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
    store.close()


def test_replace_failed_run_in_one_transaction(tmp_path):
    store = ResultStore(tmp_path, create=True)
    old = store.record_run(_run("focal", status="failed"), [], [{"stage": 0, "epoch": 0, "train_loss": 1.0}])
    new = store.record_run(_run("focal"), [_metric()], [], replace_run_id=old)
    rows = store.conn.execute("SELECT run_id, status FROM runs").fetchall()
    assert rows == [(new, "finished")]
    assert store.conn.execute("SELECT COUNT(*) FROM curves").fetchone()[0] == 0
    store.close()


def test_open_results_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.sqlite"):
        open_results(tmp_path)
    (tmp_path / "results.sqlite").write_bytes(b"\x00garbage" * 64)
    with pytest.raises(ValueError, match=str(tmp_path / "results.sqlite")):
        open_results(tmp_path)


def test_array_codec():
    a = (np.arange(24).reshape(2, 3, 4) % 5).astype(np.int16)
    np.testing.assert_array_equal(decode_array(encode_array(a)), a)


def test_report_of_a_results_file_without_finished_runs(tmp_path):
    from seglosses.bench.report import write_report

    store = ResultStore(tmp_path, create=True)
    store.close()
    paths = write_report(tmp_path)
    assert "No finished run" in paths["md"].read_text()
    store = ResultStore(tmp_path, create=True)
    store.record_run(_run("ce", status="failed"))
    store.close()
    md = write_report(tmp_path)["md"].read_text()
    assert "No finished run" in md and "loss became nan" in md
