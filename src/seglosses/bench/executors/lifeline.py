"""No orphans: worker processes and a local Ray runtime do not outlive the driver.

When ``seglosses bench`` dies -- Ctrl-C, an exception, ``kill -9``, out of memory -- nothing it
started may keep running (a spawned training worker holds hundreds of MB and a core for as
long as its run lasts, and then waits forever for the next job). Two mechanisms:

* :func:`die_with_parent`, run first thing in every process-pool worker: on Linux the kernel
  kills the worker when its parent dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)`` via ctypes); on
  every POSIX system a daemon thread also polls ``os.getppid()`` and exits the worker when it
  changes (the parent died and the worker was re-parented). Either way the worker is gone
  within a second of the driver.
* :class:`Reaper`, for a local Ray runtime started by the driver: Ray's own fate sharing kills
  its GCS server, raylet and workers with the driver, but its dashboard and runtime-env agents
  were measured to survive a ``kill -9`` of the driver (ray 2.60, still running minutes later).
  The reaper is a tiny separate process that watches the driver through a pipe; it records the
  processes the driver starts (its descendants) every ``interval`` seconds and, when the pipe
  closes without a ``stop`` (the driver died), kills every recorded process that is still
  running, then exits. An orderly end (``Reaper.stop()``, after ``ray.shutdown()``) kills
  nothing.

The reaper needs ``psutil`` (a dependency of the ``ray`` extra; Ray also bundles one); ``die_with_parent`` needs
nothing. Windows: ``getppid`` does not change when the parent dies, so only the reaper applies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Optional

__all__ = ["die_with_parent", "Reaper"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _set_pdeathsig(sig: int) -> bool:
    """Ask the Linux kernel to send ``sig`` to this process when its parent *thread* exits."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return False


def _watch_parent(parent_pid: int, interval: float) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent_pid:
            os._exit(1)  # no cleanup: the driver that would receive our result is gone


def die_with_parent(parent_pid: int, *, pdeathsig: bool = True, interval: float = 0.5) -> None:
    """Make this (worker) process exit within ``interval`` seconds once ``parent_pid`` has died.

    Call it first thing in a worker (a process-pool initializer). ``pdeathsig``: also use
    Linux's ``PR_SET_PDEATHSIG`` (immediate). The kernel sends that signal when the *thread*
    that started the worker exits, so pass ``pdeathsig=False`` unless workers are started from
    a thread that lives as long as the driver (the main thread); the polling thread alone then
    still ends the worker within ``interval``.
    """
    if pdeathsig:
        _set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the line above ran
        os._exit(1)
    if os.name == "posix":
        threading.Thread(target=_watch_parent, args=(parent_pid, interval), daemon=True, name="seglosses-lifeline").start()


class Reaper:
    """A watchdog process that kills what the driver started if the driver dies.

    ``with Reaper(): ray.init(...); ...; ray.shutdown()``. Leaving the block calls
    :meth:`stop`: an orderly end, nothing is killed. If the driver dies inside the block
    (even ``kill -9``), the pipe to the reaper closes and the reaper kills every process that
    appeared below the driver after the reaper started (sampled every ``interval`` s), checking
    each one's start time so that a recycled pid is never hit.
    """

    def __init__(self, interval: float = 0.25):
        self.interval = float(interval)
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Reaper":
        import psutil  # noqa: F401  (fail here, in the driver, with a clear ImportError)

        self.proc = subprocess.Popen(
            # this file as a script: the reaper does not import seglosses (nor torch)
            [sys.executable, os.path.abspath(__file__), str(os.getpid()), str(self.interval)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C must not kill the reaper first
            # the driver's import path: psutil may come from Ray's bundled third-party files
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        if self.proc.stdout.readline().strip() != b"ready":  # the baseline is taken: protection is on
            self.proc.wait()
            self.proc = None
            raise RuntimeError("the orphan reaper (seglosses.bench.executors.lifeline) did not start; see the error above")
        return self

    def stop(self) -> None:
        """Orderly end: the reaper exits without killing anything."""
        if self.proc is None:
            return
        try:
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.close()
        except OSError:  # pragma: no cover - the reaper is already gone
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()
        self.proc = None

    def __enter__(self) -> "Reaper":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _reaper_main(driver_pid: int, interval: float) -> None:
    import psutil

    me = os.getpid()
    try:
        driver = psutil.Process(driver_pid)
        baseline = {(p.pid, p.create_time()) for p in driver.children(recursive=True)}
    except psutil.Error:
        return
    seen: dict = {}
    state = {"stop": False}
    eof = threading.Event()

    def read_pipe():
        for line in sys.stdin.buffer:
            if line.strip() == b"stop":
                state["stop"] = True
        eof.set()  # the driver closed the pipe (stop) or died (the kernel closed it)

    threading.Thread(target=read_pipe, daemon=True).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while not eof.wait(interval):
        try:
            for p in driver.children(recursive=True):
                key = (p.pid, p.create_time())
                if p.pid != me and key not in baseline:
                    seen.setdefault(key, p)
        except psutil.Error:  # the driver is gone: kill now
            break
    if state["stop"]:
        return
    for p in seen.values():
        try:
            if p.is_running():  # compares the start time: never a recycled pid
                p.kill()
        except psutil.Error:
            pass


if __name__ == "__main__":  # python lifeline.py DRIVER_PID INTERVAL (started by Reaper)
    _here = os.path.dirname(os.path.abspath(__file__))  # holds ray.py: must not shadow the real ray
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _reaper_main(int(sys.argv[1]), float(sys.argv[2]))
