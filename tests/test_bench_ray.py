"""``seglosses bench --executor ray``: same numbers as the process executor, worker deaths retried,
runs that keep failing stored as failed, Ctrl-C loses no finished run, a clear message without Ray.

Ray is a test dependency (``pip install "seglosses[ray]"``): :func:`conftest.require` fails in CI
when it is missing. The grids are tiny (2-3 runs of a few iterations) because starting Ray costs
seconds; the in-process tests share one Ray runtime (a module fixture), which the executor uses
and leaves running.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import require
from seglosses.cli import main

GRID = [
    "--tasks", "liver", "--iterations", "40", "--epoch-length", "20", "--batch-size", "2",
    "--image-size", "32", "--patch-size", "32", "--cases", "6", "--workers", "2", "--threads", "1",
    "--quiet", "--no-report",
]  # fmt: skip


@pytest.fixture(scope="module")
def ray_runtime():
    ray = require("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def _ps() -> dict:
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=True).stdout
    procs = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            procs[int(parts[0])] = (int(parts[1]), parts[2])
    return procs


def _running_runs() -> list:
    """pids of Ray workers below this process that are executing a run (title ``ray::seglosses ...``)."""
    procs = _ps()
    below, frontier = set(), [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in procs.items():
            if ppid == parent and pid not in below:
                below.add(pid)
                frontier.append(pid)
    return sorted(pid for pid in below if procs[pid][1].startswith("ray::seglosses"))


class _Killer(threading.Thread):
    """SIGKILLs the worker of the first ``times`` runs seen executing (mid-run)."""

    def __init__(self, times: int = 1, after: float = 0.5):
        super().__init__(daemon=True)
        self.times, self.after, self.killed, self.stop = times, after, [], threading.Event()

    def run(self):
        while not self.stop.is_set() and len(self.killed) < self.times:
            running = [p for p in _running_runs() if p not in self.killed]
            if running:
                time.sleep(self.after)
                try:
                    os.kill(running[0], signal.SIGKILL)
                    self.killed.append(running[0])
                except ProcessLookupError:
                    pass
            time.sleep(0.05)


def _runs(out: Path) -> list:
    con = sqlite3.connect(str(out / "results.sqlite"))
    try:
        return con.execute("SELECT task, loss, lr, status, reason FROM runs ORDER BY task, loss, lr").fetchall()
    finally:
        con.close()


def _metrics(out: Path) -> dict:
    con = sqlite3.connect(str(out / "results.sqlite"))
    try:
        cur = con.execute(
            "SELECT r.task, r.loss, r.lr, m.case_id, m.label, m.dsc, m.nsd, m.hd95 "
            "FROM case_metrics m JOIN runs r USING (run_id) ORDER BY r.task, r.loss, r.lr, m.case_id, m.label"
        )
        return {tuple(row[:5]): np.array(row[5:], dtype=float) for row in cur}
    finally:
        con.close()


def _assert_same_metrics(a: dict, b: dict) -> None:
    assert a and sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-6, equal_nan=True, err_msg=str(key))


def test_same_numbers_as_process_and_a_killed_worker_is_retried(ray_runtime, tmp_path):
    grid = GRID + ["--losses", "ce,dice,iou"]
    assert main(["bench", "--out", str(tmp_path / "process"), "--executor", "process"] + grid) == 0
    killer = _Killer(times=1)
    killer.start()
    try:
        assert main(["bench", "--out", str(tmp_path / "ray"), "--executor", "ray", "--max-retries", "2"] + grid) == 0
    finally:
        killer.stop.set()
        killer.join()
    assert len(killer.killed) == 1, "no Ray worker was seen running a run"
    runs = _runs(tmp_path / "ray")
    assert [(r[1], r[3]) for r in runs] == [("ce", "finished"), ("dice", "finished"), ("iou", "finished")], runs
    _assert_same_metrics(_metrics(tmp_path / "ray"), _metrics(tmp_path / "process"))


def test_a_run_that_keeps_failing_is_stored_failed_and_the_grid_goes_on(ray_runtime, tmp_path):
    killer = _Killer(times=1)  # with --max-retries 0 one death is final
    killer.start()
    try:
        code = main(
            ["bench", "--out", str(tmp_path / "out"), "--executor", "ray", "--max-retries", "0", "--workers", "1"]
            + GRID[:-6]
            + ["--losses", "dice,iou", "--quiet", "--no-report"]
        )
    finally:
        killer.stop.set()
        killer.join()
    assert len(killer.killed) == 1
    runs = _runs(tmp_path / "out")
    assert len(runs) == 2, runs
    statuses = sorted(r[3] for r in runs)
    assert statuses == ["failed", "finished"], runs
    reason = next(r[4] for r in runs if r[3] == "failed")
    assert "Ray" in reason and "retried 0" in reason, reason
    assert code == 0


def test_ctrl_c_stops_promptly_and_keeps_finished_runs(tmp_path):
    """SIGINT a grid running on its own local Ray runtime: it stops within seconds, what was
    stored is intact, nothing of Ray survives, and --resume completes the grid."""
    require("ray")
    out = tmp_path / "out"
    grid = GRID + ["--losses", "ce,dice,iou,tversky", "--workers", "1"]
    cmd = [sys.executable, "-m", "seglosses.cli", "bench", "--out", str(out), "--executor", "ray"] + grid
    # SIGINT back to its default in the child: a shell starts background jobs (`make test &`, nohup)
    # with SIGINT ignored, and Python then installs no KeyboardInterrupt handler
    driver = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:  # wait for the first stored run
            assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
            if (out / "results.sqlite").exists() and _safe_count(out) >= 1:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no run finished within 300 s")
        below = _tree(driver.pid)
        driver.send_signal(signal.SIGINT)
        driver.wait(60)  # promptly: Ray's shutdown takes a few seconds
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(30)
        driver.stderr.close()
    assert driver.returncode != 0
    time.sleep(2.0)
    procs = _ps()
    assert not [p for p in below if p in procs], f"left behind: {[procs[p][1] for p in below if p in procs]}"
    stored = _runs(out)
    assert 1 <= len(stored) < 4 and all(r[3] == "finished" for r in stored), stored
    assert main(["bench", "--out", str(out), "--executor", "process", "--resume"] + grid[:-2] + ["--workers", "2"]) == 0
    assert [r[1] for r in _runs(out)] == ["ce", "dice", "iou", "tversky"]


def _safe_count(out: Path) -> int:
    try:
        return len(_runs(out))
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def _tree(root: int) -> list:
    procs = _ps()
    below, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in procs.items():
            if ppid == parent and pid not in below:
                below.append(pid)
                frontier.append(pid)
    return below


def test_missing_ray_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    from seglosses.bench.executors.ray import import_ray

    with pytest.raises(ImportError, match=r'pip install "seglosses\[ray\]"'):
        import_ray()
    with pytest.raises((ImportError, SystemExit)) as info:
        code = main(["bench", "--out", str(tmp_path / "out"), "--executor", "ray"] + GRID + ["--losses", "dice"])
        raise SystemExit(code)
    text = str(info.value) + capsys.readouterr().err
    assert 'pip install "seglosses[ray]"' in text
    assert not (tmp_path / "out" / "results.sqlite").exists()


def test_bad_ray_options_are_errors():
    from seglosses.bench.executors.ray import RayExecutor

    with pytest.raises(ValueError, match="--gpus-per-run"):
        RayExecutor(gpus_per_run=0)
    with pytest.raises(ValueError, match="--max-retries"):
        RayExecutor(max_retries=-1)


def test_a_run_that_cannot_fit_the_local_runtime_is_an_error(ray_runtime):
    """More CPUs per run than the runtime has would wait forever: an error names --threads."""
    from seglosses.bench.executors.ray import RayExecutor

    ex = RayExecutor(threads=64, datasets={"t": object()}, progress=False)
    job = {"task": "t", "train": {"device": "cpu"}, "loss": {"name": "dice"}, "lr": 1e-3}
    with pytest.raises(ValueError, match="--threads"):
        ex.submit([job])
    assert ray_runtime.is_initialized()  # a runtime the executor did not start is left running


def test_an_error_raised_in_the_worker_comes_back_with_its_type_and_message(ray_runtime):
    """Outside execute_run (which never raises for a failing loss) an exception in the task is
    not retried; the driver gets it, with the original type and message, to store as the reason."""
    from seglosses.bench.executors.ray import RayExecutor

    ex = RayExecutor(datasets={"t": None}, progress=False)
    job = {"task": "t", "train": {"device": "cpu"}, "loss": {"name": "dice"}, "lr": 1e-3}  # a malformed job
    outcomes = list(ex.run([job]))
    assert len(outcomes) == 1 and outcomes[0][0] is job
    error = outcomes[0][1]
    assert isinstance(error, RuntimeError) and str(error).startswith("in the Ray worker: TypeError:"), error
