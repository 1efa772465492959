"""No orphans: SIGKILL the driver of a grid, then check that every process it started is gone.

``--executor process``: the spawned pool workers (and multiprocessing's helpers) die within
seconds (:func:`seglosses.bench.executors.lifeline.die_with_parent`). ``--executor ray`` with a
local runtime: every process of the runtime (GCS, raylet, agents, workers) dies within seconds
(Ray's fate sharing plus :class:`~seglosses.bench.executors.lifeline.Reaper`).

Processes are listed with ``ps`` (POSIX), so the check needs no extra package.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import require

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals and ps")

GRID = [
    "--tasks", "liver", "--losses", "ce,dice", "--iterations", "5000", "--epoch-length", "2500",
    "--batch-size", "2", "--image-size", "32", "--patch-size", "32", "--cases", "6",
    "--workers", "2", "--quiet", "--no-report",
]  # fmt: skip
GRACE = 8.0  # seconds a process may outlive the driver ("a few seconds"; the machine may be loaded)


def _ps() -> dict:
    """``pid -> (ppid, state, command line)`` of every process."""
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    procs = {}
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3:
            procs[int(parts[0])] = (int(parts[1]), parts[2], parts[3] if len(parts) > 3 else "")
    return procs


def _descendants(root: int) -> dict:
    """``pid -> command line`` of every process below ``root``."""
    procs = _ps()
    out, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, args) in procs.items():
            if ppid == parent and pid not in out:
                out[pid] = args
                frontier.append(pid)
    return out


def _alive(pids) -> dict:
    """The processes among ``pids`` that still run (zombies are dead: they only await reaping)."""
    procs = _ps()
    return {pid: procs[pid][2] for pid in pids if pid in procs and not procs[pid][1].startswith("Z")}


def _start_driver(tmp_path, executor):
    return subprocess.Popen(
        [sys.executable, "-m", "seglosses.cli", "bench", "--out", str(tmp_path / "out"), "--executor", executor] + GRID,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def _kill_and_check(driver, ready, timeout=300.0) -> dict:
    """Wait until ``ready(descendants)``, SIGKILL the driver, check its descendants die."""
    t0 = time.monotonic()
    kids: dict = {}
    try:
        while time.monotonic() - t0 < timeout:
            assert driver.poll() is None, f"the driver ended early: {driver.stderr.read().decode()[-2000:]}"
            kids = _descendants(driver.pid)
            if ready(kids):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the grid did not reach the state to test within {timeout:.0f} s: {kids}")
        kids = _descendants(driver.pid)  # the whole tree just before the kill
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        t_kill = time.monotonic()
        while _alive(kids) and time.monotonic() - t_kill < GRACE:
            time.sleep(0.1)
        survivors = _alive(kids)
        for pid in survivors:  # do not leave them behind
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        assert not survivors, f"processes outlived the killed driver by more than {GRACE} s: {survivors}"
        return kids
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(30)
        driver.stderr.close()


def test_sigkill_driver_process_executor_leaves_no_worker(tmp_path):
    driver = _start_driver(tmp_path, "process")
    seen = []

    def ready(kids):  # both pool workers exist and have been busy for a few seconds
        workers = [a for a in kids.values() if "multiprocessing" in a and "resource_tracker" not in a]
        if len(workers) >= 2 and not seen:
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] > 5.0

    kids = _kill_and_check(driver, ready)
    assert sum("multiprocessing" in a for a in kids.values()) >= 2, kids


def test_sigkill_driver_ray_local_runtime_leaves_no_process(tmp_path):
    require("ray")
    driver = _start_driver(tmp_path, "ray")

    def ready(kids):  # a run is executing in a Ray worker
        return any("ray::seglosses" in a for a in kids.values())

    kids = _kill_and_check(driver, ready)
    cmds = " ".join(kids.values())
    assert "raylet" in cmds and "gcs_server" in cmds, kids


def test_die_with_parent_watchdog_thread_alone():
    """The portable fallback: without PR_SET_PDEATHSIG the watchdog thread ends the worker."""
    worker = (
        "import os, sys, time\n"
        "from seglosses.bench.executors.lifeline import die_with_parent\n"
        "die_with_parent(int(sys.argv[1]), pdeathsig=False, interval=0.2)\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(120)\n"
    )
    parent_code = (
        "import os, subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {worker!r}, str(os.getpid())])\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE)
    try:
        pid = int(parent.stdout.readline())
        assert _alive([pid])
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        t0 = time.monotonic()
        while _alive([pid]) and time.monotonic() - t0 < GRACE:
            time.sleep(0.05)
        alive = _alive([pid])
        for p in alive:
            os.kill(p, signal.SIGKILL)
        assert not alive, "the watchdog thread did not end the orphaned worker"
    finally:
        if parent.poll() is None:
            parent.kill()
        parent.stdout.close()


def _psutil_available():
    """psutil comes with the ray extra (and Ray bundles one, importable after ``import ray``)."""
    try:
        import psutil  # noqa: F401
    except ImportError:
        require("ray")
        import ray  # noqa: F401  (puts Ray's bundled third-party packages on sys.path)


def test_reaper_kills_what_a_killed_driver_started():
    _psutil_available()
    driver_code = (
        "import subprocess, sys, time\n"
        "try:\n    import psutil\nexcept ImportError:\n    import ray\n"  # Ray's bundled psutil
        "from seglosses.bench.executors.lifeline import Reaper\n"
        "Reaper(interval=0.05).start()\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
        "time.sleep(0.5)\n"  # the reaper has sampled the child
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", driver_code], stdout=subprocess.PIPE)
    try:
        pid = int(driver.stdout.readline())
        assert _alive([pid])
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        t0 = time.monotonic()
        while _alive([pid]) and time.monotonic() - t0 < GRACE:
            time.sleep(0.05)
        alive = _alive([pid])
        for p in alive:
            os.kill(p, signal.SIGKILL)
        assert not alive, "the reaper did not kill the dead driver's child (its own session: no signal reached it)"
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.stdout.close()


def test_reaper_orderly_stop_kills_nothing():
    _psutil_available()
    from seglosses.bench.executors.lifeline import Reaper

    reaper = Reaper(interval=0.05).start()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        time.sleep(0.5)  # sampled by the reaper
        reaper.stop()
        time.sleep(0.5)
        assert child.poll() is None, "an orderly stop must not kill anything"
    finally:
        child.kill()
        child.wait(30)
