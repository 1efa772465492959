"""``OUT/results.sqlite``: the benchmark's results, crash-safe and resumable.

Schema (``SCHEMA_VERSION`` 2)
-----------------------------
``meta(key, value)``
    JSON values: ``schema_version``, ``protocol`` (the settings that must not change on
    ``--resume``: iterations, patch size, seed, data, ...), ``environment`` (versions, device),
    ``created_at``.
``tasks(task, label_names, num_classes, in_channels, spatial_dims, train_dims, source,
description, class_ratios, split, n_cases)``
    One row per task; ``split`` is the JSON ``{"train": [...], "val": [...], "test": [...]}`` of
    case ids (the model trains on ``train``, the learning rate is chosen on ``val``, metrics are
    reported on ``test``).
``runs(run_id, task, loss, spec, options, lr, seed, fold, status, reason, val_dice, iterations,
iterations_done, train_seconds, eval_seconds, started_at, finished_at, config)``
    One row per finished run, ``UNIQUE(task, loss, lr, fold, seed)``. ``status`` is ``finished``
    or ``failed`` (``reason`` says why: a NaN loss, an exception). ``fold`` is the
    cross-validation fold (0 for the single split), ``seed`` the training seed.
``case_metrics(run_id, case_id, label, label_name, dsc, iou, sensitivity, specificity,
precision, nsd, hd, hd95, assd)``
    Per test case and foreground class. Distances in mm; ``inf`` where one mask is empty;
    NULL for NaN.
``topology_metrics(run_id, case_id, label, cldice, betti_error, betti0_error, betti1_error)``
    Per test case and foreground class, only for tasks evaluated with topology metrics (the
    built-in ``vessels`` task, or ``--topology-metrics``); the columns are
    :data:`seglosses.metrics.TOPOLOGY_KEYS`. An additive table: a database made before it existed
    gets it, empty, when opened for writing, and reads without it.
``curves(run_id, stage, epoch, iteration, train_loss, val_dice, lr)``
    The training curve, one row per epoch.
``display_slices(task, case_id, axis, idx, image, label)`` and ``predictions(run_id, case_id,
axis, idx, pred)``
    One 2D slice per test case (the slice through the centre of mass of the ground truth) of the
    image, the ground truth and every run's prediction, zlib-compressed ``.npy`` blobs: what the
    report's overlays show, so ``seglosses report OUT`` needs nothing but this file.

Crash safety
------------
WAL journal, ``synchronous=FULL``. A run's rows (run, metrics, curve, predictions) are written in
ONE transaction after the run completes, so killing the process at any moment (SIGKILL
included) either keeps the whole run or nothing of it; the unique key makes a second write of
the same run an error rather than a duplicate. Only one process writes (the parent, with
``--workers``).
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
import zlib
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from seglosses.metrics.case import METRIC_KEYS
from seglosses.metrics.topology import TOPOLOGY_KEYS

__all__ = ["ResultStore", "SCHEMA_VERSION", "encode_array", "decode_array", "open_results"]

SCHEMA_VERSION = 2
DB_NAME = "results.sqlite"

#: metric columns of ``case_metrics``: the per-case metric names of :func:`seglosses.metrics.evaluate_case`
#: (changing them changes the schema: bump ``SCHEMA_VERSION``)
METRIC_COLUMNS = METRIC_KEYS
#: columns of ``topology_metrics`` (the table is additive: no schema version change)
TOPOLOGY_COLUMNS = TOPOLOGY_KEYS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    task TEXT PRIMARY KEY,
    label_names TEXT NOT NULL,
    num_classes INTEGER NOT NULL,
    in_channels INTEGER NOT NULL,
    spatial_dims INTEGER NOT NULL,
    train_dims INTEGER NOT NULL,
    source TEXT,
    description TEXT,
    class_ratios TEXT,
    split TEXT NOT NULL,
    n_cases INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    task TEXT NOT NULL,
    loss TEXT NOT NULL,
    spec TEXT NOT NULL,
    options TEXT NOT NULL,
    lr REAL NOT NULL,
    seed INTEGER NOT NULL,
    fold INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('finished', 'failed')),
    reason TEXT,
    val_dice REAL,
    iterations INTEGER,
    iterations_done INTEGER,
    train_seconds REAL,
    eval_seconds REAL,
    started_at TEXT,
    finished_at TEXT,
    config TEXT NOT NULL,
    UNIQUE (task, loss, lr, fold, seed)
);
CREATE TABLE IF NOT EXISTS case_metrics (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    case_id TEXT NOT NULL,
    label INTEGER NOT NULL,
    label_name TEXT,
    {metric_columns},
    PRIMARY KEY (run_id, case_id, label)
);
CREATE TABLE IF NOT EXISTS topology_metrics (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    case_id TEXT NOT NULL,
    label INTEGER NOT NULL,
    {topology_columns},
    PRIMARY KEY (run_id, case_id, label)
);
CREATE TABLE IF NOT EXISTS curves (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    stage INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    iteration INTEGER,
    train_loss REAL,
    val_dice REAL,
    lr REAL,
    PRIMARY KEY (run_id, stage, epoch)
);
CREATE TABLE IF NOT EXISTS display_slices (
    task TEXT NOT NULL,
    case_id TEXT NOT NULL,
    axis INTEGER,
    idx INTEGER,
    image BLOB NOT NULL,
    label BLOB NOT NULL,
    PRIMARY KEY (task, case_id)
);
CREATE TABLE IF NOT EXISTS predictions (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    case_id TEXT NOT NULL,
    axis INTEGER,
    idx INTEGER,
    pred BLOB NOT NULL,
    PRIMARY KEY (run_id, case_id)
);
"""

_SCHEMA = _SCHEMA.replace("{metric_columns}", ", ".join(f"{k} REAL" for k in METRIC_COLUMNS))
_SCHEMA = _SCHEMA.replace("{topology_columns}", ", ".join(f"{k} REAL" for k in TOPOLOGY_COLUMNS))
REQUIRED_TABLES = ("meta", "tasks", "runs", "case_metrics", "curves")


def encode_array(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return zlib.compress(buf.getvalue(), 6)


def decode_array(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(zlib.decompress(blob)), allow_pickle=False)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _nan_to_none(v):
    if v is None:
        return None
    v = float(v)
    return None if v != v else v


class ResultStore:
    """The results database of one output folder.

    ``ResultStore(out_dir)`` creates ``out_dir/results.sqlite`` when ``create=True`` (the bench
    runner); ``open_results(out_dir)`` opens an existing one read-only for ``report`` and
    ``export`` and raises an error naming the file when it is missing, corrupt or not a
    seglosses results database.
    """

    def __init__(self, out_dir, *, create: bool = True, readonly: bool = False):
        out_dir = Path(out_dir)
        self.path = out_dir / DB_NAME if out_dir.suffix != ".sqlite" else out_dir
        if not self.path.exists():
            if not create:
                raise FileNotFoundError(
                    f"{self.path}: no results database here (run `seglosses bench --out {self.path.parent}` first)"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # ``readonly``: never create or alter the schema (a plain connection still, so that a
            # WAL database whose -shm file is gone opens too)
            self.conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
            self.conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = FULL")
                self.conn.executescript(_SCHEMA)
                self._migrate()
                if self.get_meta("schema_version") is None:
                    self.set_meta("schema_version", SCHEMA_VERSION)
                    self.set_meta("created_at", _now())
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path}: not a readable SQLite results database ({exc})") from None

    def _check_schema(self) -> None:
        names = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in REQUIRED_TABLES if t not in names]
        if missing:
            raise ValueError(f"{self.path}: not a seglosses results database (missing tables {missing})")
        version = self.get_meta("schema_version")
        if version is not None and int(version) > SCHEMA_VERSION:
            raise ValueError(
                f"{self.path}: written by a newer seglosses (schema {version}, this one reads {SCHEMA_VERSION})"
            )

    def _run_columns(self) -> set:
        return {r[1] for r in self.conn.execute("PRAGMA table_info(runs)")}

    def _migrate(self) -> None:
        """Schema 1 -> 2: ``runs`` gets a ``fold`` column (0: the single split of schema 1) and
        the unique key ``(task, loss, lr, fold, seed)``; SQLite cannot change a table's unique
        key, so the table is rebuilt (SQLite's documented 12-step procedure) in one transaction."""
        if "fold" in self._run_columns():
            return
        columns = [r[1] for r in self.conn.execute("PRAGMA table_info(runs)")]
        create = _SCHEMA[_SCHEMA.index("CREATE TABLE IF NOT EXISTS runs") :]
        create = create[: create.index(");") + 2].replace("IF NOT EXISTS runs", "runs_v2")
        self.conn.execute("PRAGMA foreign_keys = OFF")
        try:
            with self._transaction() as c:
                c.execute(create)
                c.execute(f"INSERT INTO runs_v2({', '.join(columns)}) SELECT {', '.join(columns)} FROM runs")
                c.execute("DROP TABLE runs")
                c.execute("ALTER TABLE runs_v2 RENAME TO runs")
                bad = c.execute("PRAGMA foreign_key_check").fetchall()
                if bad:  # pragma: no cover - the copy keeps every run_id
                    raise ValueError(f"{self.path}: migration to schema 2 broke references {bad[:3]}")
                c.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (json.dumps(SCHEMA_VERSION),))
        finally:
            self.conn.execute("PRAGMA foreign_keys = ON")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ transactions
    def _transaction(self):
        store = self

        class _Tx:
            def __enter__(self):
                store.conn.execute("BEGIN IMMEDIATE")
                return store.conn

            def __exit__(self, exc_type, exc, tb):
                if exc_type is None:
                    store.conn.execute("COMMIT")
                else:
                    store.conn.execute("ROLLBACK")
                return False

        return _Tx()

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str, default=None):
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value, sort_keys=True))
        )

    # ------------------------------------------------------------------ tasks
    def put_task(
        self, info: dict, display: Iterable[Tuple[str, int, int, np.ndarray, np.ndarray]] = ()
    ) -> None:
        """Insert or check a task row (and its display slices) in one transaction.

        If the task exists with a different split, raise: results of one folder must share a split.
        """
        existing = self.conn.execute("SELECT split FROM tasks WHERE task = ?", (info["task"],)).fetchone()
        if existing is not None:
            if json.loads(existing[0]) != info["split"]:
                raise ValueError(
                    f"{self.path}: task {info['task']!r} was run with a different case split "
                    "(different data, --seed or number of cases); use another --out"
                )
            return
        with self._transaction() as c:
            c.execute(
                "INSERT INTO tasks(task, label_names, num_classes, in_channels, spatial_dims, train_dims, source, "
                "description, class_ratios, split, n_cases) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    info["task"],
                    json.dumps(list(info["label_names"])),
                    int(info["num_classes"]),
                    int(info["in_channels"]),
                    int(info["spatial_dims"]),
                    int(info["train_dims"]),
                    info.get("source", ""),
                    info.get("description", ""),
                    json.dumps(info.get("class_ratios", {})),
                    json.dumps(info["split"]),
                    int(info["n_cases"]),
                ),
            )
            for case_id, axis, idx, image, label in display:
                c.execute(
                    "INSERT OR REPLACE INTO display_slices(task, case_id, axis, idx, image, label) VALUES (?,?,?,?,?,?)",
                    (
                        info["task"],
                        case_id,
                        axis,
                        idx,
                        encode_array(image.astype(np.float16)),
                        encode_array(label.astype(np.int16)),
                    ),
                )

    def tasks(self) -> Dict[str, dict]:
        out = {}
        for row in self.conn.execute(
            "SELECT task, label_names, num_classes, in_channels, spatial_dims, train_dims, source, description, "
            "class_ratios, split, n_cases FROM tasks ORDER BY rowid"
        ):
            out[row[0]] = {
                "task": row[0],
                "label_names": json.loads(row[1]),
                "num_classes": row[2],
                "in_channels": row[3],
                "spatial_dims": row[4],
                "train_dims": row[5],
                "source": row[6],
                "description": row[7],
                "class_ratios": json.loads(row[8] or "{}"),
                "split": json.loads(row[9]),
                "n_cases": row[10],
            }
        return out

    def display_slices(self, task: str) -> Dict[str, dict]:
        out = {}
        for case_id, axis, idx, image, label in self.conn.execute(
            "SELECT case_id, axis, idx, image, label FROM display_slices WHERE task = ?", (task,)
        ):
            out[case_id] = {
                "axis": axis,
                "idx": idx,
                "image": decode_array(image).astype(np.float32),
                "label": decode_array(label),
            }
        return out

    def predictions(self, run_id: int) -> Dict[str, np.ndarray]:
        return {
            case_id: decode_array(blob)
            for case_id, blob in self.conn.execute(
                "SELECT case_id, pred FROM predictions WHERE run_id = ?", (int(run_id),)
            )
        }

    # ------------------------------------------------------------------ runs
    def finished_runs(self) -> Dict[Tuple[str, str, float, int, int], dict]:
        """``{(task, loss, lr, fold, seed): {"status", "spec", "options", "run_id"}}`` of every stored run."""
        out = {}
        fold = "fold" if "fold" in self._run_columns() else "0"
        for run_id, task, loss, spec, options, lr, fold_, seed, status in self.conn.execute(
            f"SELECT run_id, task, loss, spec, options, lr, {fold}, seed, status FROM runs"
        ):
            out[(task, loss, float(lr), int(fold_), int(seed))] = {
                "run_id": run_id,
                "spec": spec,
                "options": json.loads(options),
                "status": status,
            }
        return out

    def record_run(
        self,
        run: dict,
        metrics: Sequence[dict] = (),
        curves: Sequence[dict] = (),
        predictions: Iterable[Tuple[str, int, int, np.ndarray]] = (),
        replace_run_id: Optional[int] = None,
    ) -> int:
        """Write one completed run (finished or failed) with all its rows in ONE transaction.

        ``replace_run_id``: delete that run (a failed run being retried) in the same transaction.
        """
        with self._transaction() as c:
            if replace_run_id is not None:
                for table in ("case_metrics", "topology_metrics", "curves", "predictions"):
                    c.execute(f"DELETE FROM {table} WHERE run_id = ?", (int(replace_run_id),))
                c.execute("DELETE FROM runs WHERE run_id = ?", (int(replace_run_id),))
            cur = c.execute(
                "INSERT INTO runs(task, loss, spec, options, lr, seed, fold, status, reason, val_dice, iterations, iterations_done, "
                "train_seconds, eval_seconds, started_at, finished_at, config) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run["task"],
                    run["loss"],
                    run["spec"],
                    json.dumps(run.get("options", {}), sort_keys=True),
                    float(run["lr"]),
                    int(run["seed"]),
                    int(run.get("fold") or 0),
                    run["status"],
                    run.get("reason"),
                    _nan_to_none(run.get("val_dice")),
                    run.get("iterations"),
                    run.get("iterations_done"),
                    run.get("train_seconds"),
                    run.get("eval_seconds"),
                    run.get("started_at"),
                    run.get("finished_at") or _now(),
                    json.dumps(run.get("config", {}), sort_keys=True, default=str),
                ),
            )
            run_id = int(cur.lastrowid)
            c.executemany(
                "INSERT INTO case_metrics(run_id, case_id, label, label_name, "
                + ", ".join(METRIC_COLUMNS)
                + ") VALUES (?,?,?,?"
                + ",?" * len(METRIC_COLUMNS)
                + ")",
                [
                    (
                        run_id,
                        m["case_id"],
                        int(m["label"]),
                        m.get("label_name"),
                        *[_nan_to_none(m.get(k)) for k in METRIC_COLUMNS],
                    )
                    for m in metrics
                ],
            )
            topo = [m for m in metrics if any(k in m for k in TOPOLOGY_COLUMNS)]
            if topo:
                c.executemany(
                    "INSERT INTO topology_metrics(run_id, case_id, label, "
                    + ", ".join(TOPOLOGY_COLUMNS)
                    + ") VALUES (?,?,?"
                    + ",?" * len(TOPOLOGY_COLUMNS)
                    + ")",
                    [
                        (run_id, m["case_id"], int(m["label"]), *[_nan_to_none(m.get(k)) for k in TOPOLOGY_COLUMNS])
                        for m in topo
                    ],
                )
            c.executemany(
                "INSERT INTO curves(run_id, stage, epoch, iteration, train_loss, val_dice, lr) VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        run_id,
                        int(p["stage"]),
                        int(p["epoch"]),
                        p.get("iteration"),
                        _nan_to_none(p.get("train_loss")),
                        _nan_to_none(p.get("val_dice")),
                        _nan_to_none(p.get("lr")),
                    )
                    for p in curves
                ],
            )
            c.executemany(
                "INSERT INTO predictions(run_id, case_id, axis, idx, pred) VALUES (?,?,?,?,?)",
                [
                    (run_id, case_id, axis, idx, encode_array(np.asarray(pred).astype(np.int16)))
                    for case_id, axis, idx, pred in predictions
                ],
            )
        return run_id

    # ------------------------------------------------------------------ reading as tables
    def runs_frame(self):
        import pandas as pd

        df = pd.read_sql_query("SELECT * FROM runs ORDER BY run_id", self.conn)
        if "fold" not in df.columns:  # a schema-1 store opened read-only: one split, fold 0
            df.insert(df.columns.get_loc("seed") + 1, "fold", 0)
        return df

    def _fold_sql(self) -> str:
        return "r.fold" if "fold" in self._run_columns() else "0 AS fold"

    def metrics_frame(self):
        """Per case and class metrics of every run; the :data:`TOPOLOGY_COLUMNS` are added (NaN
        where not computed) only when some run has topology metrics."""
        import pandas as pd

        df = pd.read_sql_query(
            f"SELECT r.task, r.loss, r.spec, r.lr, r.seed, {self._fold_sql()}, m.* FROM case_metrics m JOIN runs r USING (run_id) "
            "ORDER BY m.run_id, m.case_id, m.label",
            self.conn,
        )
        has_table = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='topology_metrics'"
        ).fetchone()
        if has_table and self.conn.execute("SELECT 1 FROM topology_metrics LIMIT 1").fetchone():
            topo = pd.read_sql_query("SELECT * FROM topology_metrics", self.conn)
            df = df.merge(topo, on=["run_id", "case_id", "label"], how="left")
        return df

    def curves_frame(self):
        import pandas as pd

        return pd.read_sql_query(
            f"SELECT r.task, r.loss, r.lr, r.seed, {self._fold_sql()}, c.run_id, c.stage, c.epoch, c.iteration, c.train_loss, c.val_dice, "
            "c.lr AS epoch_lr FROM curves c JOIN runs r USING (run_id) ORDER BY c.run_id, c.stage, c.epoch",
            self.conn,
        )


def open_results(out_dir) -> ResultStore:
    """Open an existing results database read-only (errors name the file)."""
    out_dir = Path(out_dir)
    if not out_dir.exists():
        raise FileNotFoundError(f"{out_dir}: no such folder")
    path = out_dir / DB_NAME if out_dir.is_dir() else out_dir
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no results database here (run `seglosses bench --out {out_dir}` first)"
        )
    return ResultStore(path, create=False, readonly=True)
