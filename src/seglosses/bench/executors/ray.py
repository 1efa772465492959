"""``ray`` (``--executor ray``): every run of the grid is a Ray task, on this machine or a cluster.

Ray (https://docs.ray.io) is optional: ``pip install "seglosses[ray]"``.

Where it runs
    Without ``--ray-address`` a local Ray runtime starts with this machine's CPUs and GPUs and
    stops at the end of the grid; ``--ray-address auto`` joins the cluster started on this
    machine with ``ray start --head``, ``--ray-address HOST:6379`` a remote one (every node
    needs the same seglosses and torch installed). If Ray is already initialised in this
    process (a notebook), that runtime is used and left running.
Resources per run
    ``--threads`` CPUs (the run's torch threads) and, with ``--device cuda``, ``--gpus-per-run``
    GPUs (default 1; ``0.5`` puts two runs on one GPU). Ray sets ``CUDA_VISIBLE_DEVICES`` per
    task, so a run always trains on ``cuda`` (its first visible device). At most ``--workers``
    runs are in flight at a time.
Data
    Each task's dataset, already loaded by the driver, is put in Ray's object store once
    (``ray.put``) and passed to every run of that task by reference; numpy arrays are read
    zero-copy from shared memory on the node.
The driver is the only writer
    Workers return the result dict of :func:`seglosses.bench.job.execute_run`; the driver
    (:func:`seglosses.bench.runner.run_bench`) stores each one in one transaction as it
    arrives. No shared storage is needed and ``--resume`` works as with every executor.
Faults
    A worker process that dies mid-run (killed, out of memory, node lost) is retried by Ray
    (``--max-retries``, default 2); only the successful attempt returns, so the run is stored
    once. A run that keeps failing comes back as an exception that the driver stores as a
    failed run with the reason (:func:`seglosses.bench.job.failed_result`); the grid goes on.
    Ctrl-C cancels the runs in flight (their worker processes are killed) and stops the local
    runtime; every run finished before it is already stored.
No orphans
    A local runtime is watched by a :class:`~seglosses.bench.executors.lifeline.Reaper`: if
    the driver dies (even ``kill -9``), every process of the runtime is killed within a second.
    On a cluster, Ray itself kills the tasks of a driver that died.
Progress
    Runs report (iteration, loss) to a small Ray actor about twice a second; the driver shows
    one line per running run under the grid bar (``--quiet``: no actor, no bars).
Same numbers
    The task only sets the torch threads and calls ``execute_run`` with the job: seeding and
    initialisation do not depend on the executor, so on the CPU with ``--threads 1`` a grid
    stores the same metrics as with ``--executor process`` (tested).
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Dict, Iterator, Optional, Sequence

from ..job import execute_run
from .base import Bars, Executor, Outcome
from .lifeline import Reaper

__all__ = ["RayExecutor", "import_ray"]

MISSING_RAY = '--executor ray needs Ray, which is not installed: pip install "seglosses[ray]"'


def import_ray():
    """``import ray``, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(MISSING_RAY) from exc
    return ray


class _Board:
    """Ray actor: the latest ``(iteration, loss, pid)`` of every running run, for the driver."""

    def __init__(self):
        self.state: Dict[int, tuple] = {}

    def report(self, key: int, i: int, loss: float, pid: int) -> None:
        self.state[key] = (i, loss, pid)

    def snapshot(self) -> Dict[int, tuple]:
        return dict(self.state)


class _Reporter:
    """``progress(i, info)`` of :func:`seglosses.bench.train.train_run` inside a Ray task:
    forwards to the board at most every ``every`` seconds (fire and forget)."""

    def __init__(self, board, key: int, every: float = 0.5):
        self.board, self.key, self.every, self.last = board, key, every, 0.0

    def __call__(self, i: int, info: dict) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.board.report.remote(self.key, int(i), float(info.get("loss", float("nan"))), os.getpid())


def _run_job(job: dict, dataset, threads: int, board, key: int) -> dict:
    """The Ray task: one run, in a Ray worker process (``dataset`` arrives from the object store)."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    if str(job["train"].get("device", "cpu")).startswith("cuda"):
        job = {**job, "train": {**job["train"], "device": "cuda"}}  # the GPU(s) Ray assigned
    if board is not None:
        board.report.remote(key, 0, float("nan"), os.getpid())
    return execute_run(job, dataset, None if board is None else _Reporter(board, key))


class RayExecutor(Executor):
    """Runs as Ray tasks (see the module docstring).

    Extra keyword arguments: ``address`` (None: a local runtime; ``"auto"`` or ``host:port``),
    ``gpus_per_run`` (GPUs per run when the job's device is CUDA; default 1), ``max_retries``
    (attempts after a worker died; default 2), ``poll`` (seconds between progress refreshes).
    """

    name = "ray"
    #: use Ray even for one worker or one job (the user asked for it: a cluster, GPUs)
    always = True

    @classmethod
    def options(cls, cfg) -> dict:
        return {"address": cfg.ray_address, "gpus_per_run": cfg.gpus_per_run, "max_retries": cfg.max_retries}

    def __init__(
        self,
        *,
        address: Optional[str] = None,
        gpus_per_run: Optional[float] = None,
        max_retries: int = 2,
        poll: float = 0.5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if gpus_per_run is not None and not gpus_per_run > 0:
            raise ValueError(f"--gpus-per-run: expected a positive number, got {gpus_per_run!r}")
        if int(max_retries) < 0:
            raise ValueError(f"--max-retries: expected 0 or more, got {max_retries!r}")
        self.address = address
        self.gpus_per_run = gpus_per_run
        self.max_retries = int(max_retries)
        self.poll = float(poll)
        self._ray = None
        self._owns_runtime = False
        self._reaper: Optional[Reaper] = None
        self._pending: Dict[object, tuple] = {}
        self._queue: deque = deque()
        self._slots: Dict[int, int] = {}

    # ------------------------------------------------------------------ runtime
    def _start(self) -> None:
        ray = self._ray = import_ray()
        if ray.is_initialized():  # a runtime this process already uses (a notebook): leave it be
            return
        self._owns_runtime = True
        kw = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR", configure_logging=True)
        if self.address is None:
            self._reaper = Reaper().start()  # before ray.init: it watches what the driver starts
            ray.init(**kw)  # this machine's CPUs and GPUs
        else:
            ray.init(address=self.address, **kw)

    def _stop(self) -> None:
        if self._owns_runtime and self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns_runtime = False
        if self._reaper is not None:
            self._reaper.stop()
            self._reaper = None

    # ------------------------------------------------------------------ protocol
    def submit(self, jobs: Sequence[dict]) -> None:
        self._queue = deque(enumerate(jobs))
        self._bars = Bars(self.progress, self.workers)
        if not self._queue:
            return
        try:
            self._start()
            ray = self._ray
            if self.address is None:
                self._check_fits([job for _, job in self._queue])
            self._data = {}  # task name -> ObjectRef: each task's data enters the object store once
            for _, job in self._queue:
                if job["task"] not in self._data:
                    self._data[job["task"]] = ray.put(self.datasets[job["task"]])
            self._remote = ray.remote(_run_job)
            self._board = ray.remote(_Board).options(num_cpus=0).remote() if self.progress else None
        except BaseException:
            self._stop()
            raise

    def _gpus(self, job: dict) -> float:
        cuda = str(job["train"].get("device", "cpu")).startswith("cuda")
        return (self.gpus_per_run or 1.0) if cuda else 0.0

    def _check_fits(self, jobs: Sequence[dict]) -> None:
        """A local runtime cannot grow: a run asking for more than it has would wait forever."""
        have = self._ray.cluster_resources()
        cpus, gpus = have.get("CPU", 0.0), have.get("GPU", 0.0)
        if self.threads > cpus:
            raise ValueError(f"--threads: each Ray run reserves {self.threads} CPU(s), but this machine's Ray runtime has {cpus:g}")
        need = max((self._gpus(j) for j in jobs), default=0.0)
        if need > gpus:
            raise ValueError(
                f"--gpus-per-run: each Ray run on CUDA reserves {need:g} GPU(s), but this machine's Ray runtime has {gpus:g}"
            )

    def _fill(self) -> None:
        while self._queue and len(self._pending) < self.workers:
            key, job = self._queue.popleft()
            ref = self._remote.options(
                num_cpus=self.threads,
                num_gpus=self._gpus(job),
                max_retries=self.max_retries,
                retry_exceptions=False,  # execute_run never raises for a failing loss
                name=f"seglosses {job['task']}/{job['loss']['name']}/lr{job['lr']:g}",  # the worker's process title
            ).remote(job, self._data[job["task"]], self.threads, self._board, key)
            self._pending[ref] = (key, job)

    def results(self) -> Iterator[Outcome]:
        ray = self._ray
        try:
            while self._queue or self._pending:
                self._fill()
                ready, _ = ray.wait(list(self._pending), num_returns=1, timeout=self.poll)
                for ref in ready:
                    key, job = self._pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # worker died more than max_retries times, ...
                        outcome = _describe(exc, self.max_retries)
                    self._close_bar(key)
                    self._fill()  # keep the workers busy while the driver stores the result
                    yield job, outcome
                self._refresh_bars()
        finally:
            self._bars.close_all()
        self._stop()

    def cancel(self) -> None:
        if self._ray is not None:
            for ref in list(self._pending):
                try:
                    self._ray.cancel(ref, force=True)  # kills the worker process of a running task
                except Exception:  # pragma: no cover - already finished or runtime gone
                    pass
        self._pending, self._queue = {}, deque()
        if hasattr(self, "_bars"):
            self._bars.close_all()
        self._stop()

    # ------------------------------------------------------------------ progress
    def _refresh_bars(self) -> None:
        if self._board is None:
            return
        try:
            state = self._ray.get(self._board.snapshot.remote(), timeout=5)
        except Exception:  # pragma: no cover - progress is best effort
            return
        running = {key: job for key, job in self._pending.values()}
        for key, (i, loss, _pid) in state.items():
            if key not in running:
                continue
            if key not in self._slots:
                if self.on_start is not None:
                    self.on_start(running[key])
                self._slots[key], _ = self._bars.open(running[key])
            bar = self._bars.open_bars.get(self._slots[key])
            if bar is not None and i > bar.n:
                bar.update(i - bar.n)
                if loss == loss:
                    bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def _close_bar(self, key: int) -> None:
        slot = self._slots.pop(key, None)
        if slot is not None:
            self._bars.close(slot)


def _describe(exc: BaseException, retries: int) -> Exception:
    """A failed run's reason: the kind of Ray error and its first line (no remote traceback);
    for an exception raised in the task, that exception's type and message."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):  # RayTaskError: raised in the worker, outside execute_run
        text = " ".join(str(cause).split())[:500]
        return RuntimeError(f"in the Ray worker: {type(cause).__name__}: {text}")
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    kind = type(exc).__name__
    if "WorkerCrashed" in kind or "NodeDied" in kind or "OutOfMemory" in kind or "ActorDied" in kind:
        return RuntimeError(f"Ray {kind} (retried {retries} time(s)): {first}")
    return RuntimeError(f"Ray {kind}: {first}")
