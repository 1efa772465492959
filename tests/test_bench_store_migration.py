"""Schema 1 -> 2 of ``results.sqlite``: runs get a ``fold`` column; old folders open, resume and report."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess

import pytest

from seglosses.bench import store as S

# the runs table of schema 1 (before folds), as released
_V1_RUNS = S._SCHEMA[S._SCHEMA.index("CREATE TABLE IF NOT EXISTS runs") :]
_V1_RUNS = _V1_RUNS[: _V1_RUNS.index(");") + 2].replace("    fold INTEGER NOT NULL DEFAULT 0,\n", "").replace(
    "UNIQUE (task, loss, lr, fold, seed)", "UNIQUE (task, loss, lr, seed)"
)


def _v1_store(path):
    conn = sqlite3.connect(str(path))
    schema = S._SCHEMA.replace(S._SCHEMA[S._SCHEMA.index("CREATE TABLE IF NOT EXISTS runs") :].split(");", 1)[0] + ");", _V1_RUNS)
    conn.executescript(schema)
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute(
        "INSERT INTO runs(task, loss, spec, options, lr, seed, status, config) VALUES ('liver','ce','ce','{}',0.003,0,'finished','{}')"
    )
    conn.execute("INSERT INTO case_metrics(run_id, case_id, label, dsc) VALUES (1, 'c0', 1, 0.5)")
    conn.commit()
    conn.close()


def test_v1_schema_really_lacks_fold():
    assert "fold" not in _V1_RUNS and "UNIQUE (task, loss, lr, seed)" in _V1_RUNS


def test_old_store_is_migrated_on_write(tmp_path):
    _v1_store(tmp_path / "results.sqlite")
    with S.ResultStore(tmp_path) as st:
        assert st.get_meta("schema_version") == 2
        assert st.finished_runs() == {("liver", "ce", 0.003, 0, 0): {"run_id": 1, "spec": "ce", "options": {}, "status": "finished"}}
        # a second fold of the same (task, loss, lr, seed) is now a different run
        st.record_run({"task": "liver", "loss": "ce", "spec": "ce", "lr": 0.003, "seed": 0, "fold": 1, "status": "finished"})
        runs = st.runs_frame()
        assert list(runs["fold"]) == [0, 1]
        assert st.metrics_frame()["fold"].tolist() == [0]
        with pytest.raises(sqlite3.IntegrityError):
            st.record_run({"task": "liver", "loss": "ce", "spec": "ce", "lr": 0.003, "seed": 0, "fold": 1, "status": "finished"})


def test_old_store_reads_without_migration(tmp_path):
    _v1_store(tmp_path / "results.sqlite")
    st = S.open_results(tmp_path)
    try:
        assert st.runs_frame()["fold"].tolist() == [0]
        assert st.metrics_frame()["fold"].tolist() == [0]
        assert st.finished_runs()[("liver", "ce", 0.003, 0, 0)]["run_id"] == 1
    finally:
        st.close()
    conn = sqlite3.connect(str(tmp_path / "results.sqlite"))
    assert "fold" not in {r[1] for r in conn.execute("PRAGMA table_info(runs)")}  # read-only: untouched
