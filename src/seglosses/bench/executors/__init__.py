"""Executors: *where* benchmark runs execute, never what they compute or store.

The driver (:func:`seglosses.bench.runner.run_bench`) builds the jobs (JSON-able dicts, see
:mod:`seglosses.bench.job`), hands them to one executor and records every outcome in
``OUT/results.sqlite`` itself, one transaction per run, in its own thread. So resume after a
kill, failure recording and determinism are the same whichever executor runs the jobs.

The protocol (:class:`~seglosses.bench.executors.base.Executor`)
------------------------------------------------------------------
``Executor(workers=, threads=, datasets=, progress=, on_start=)`` and three methods:

``submit(jobs)``
    queue the jobs;
``results()``
    yield ``(job, result)`` per job in completion order, ``result`` being the dict of
    :func:`seglosses.bench.job.execute_run`, or ``(job, exception)`` when the worker failed
    outside ``execute_run`` (the driver then records a failed run);
``cancel()``
    stop (Ctrl-C, an error in the driver): abandon running jobs where possible, drop queued
    ones, release the workers; nothing of an abandoned run is yielded.

``run(jobs)`` (inherited) is ``submit`` + ``results`` with ``cancel`` on early exit. An executor
may take extra keyword arguments, read from the bench config by its ``options(cfg)`` classmethod
(Ray: ``address``, ``gpus_per_run``, ``max_retries``), and set ``always = True`` to be used even
for one worker or one job.

The executors: ``local`` (in the driver, in order), ``thread``, ``process`` (spawned processes
that die with the driver, :mod:`~seglosses.bench.executors.lifeline`), ``ray`` (Ray tasks on this
machine or a cluster, :mod:`~seglosses.bench.executors.ray`; ``docs/executors.md``).

Adding an executor
------------------
Write one module here with a subclass of ``Executor`` that sets ``name`` and implements the
three methods (in-process executors call :func:`~seglosses.bench.job.execute_run` with
``datasets[job["task"]]``; out-of-process ones call
:func:`~seglosses.bench.job.execute_in_worker`, which loads the data from ``job["loader"]``),
then add its class to :data:`EXECUTORS` below. ``--executor`` offers every name in
:data:`EXECUTORS` except ``local`` (what the driver uses for one worker or one job).
"""

from __future__ import annotations

from typing import Dict, Type

from .base import Bars, Cancelled, Executor, Outcome
from .local import LocalExecutor
from .process import ProcessExecutor
from .ray import RayExecutor
from .threads import ThreadExecutor

__all__ = ["Executor", "Outcome", "Bars", "Cancelled", "EXECUTORS", "get_executor", "choices"]

#: ``--executor`` name -> class
EXECUTORS: Dict[str, Type[Executor]] = {
    cls.name: cls for cls in (LocalExecutor, ThreadExecutor, ProcessExecutor, RayExecutor)
}


def choices() -> list:
    """The names ``--executor`` accepts (``local`` is chosen by the driver, not the user)."""
    return [n for n in EXECUTORS if n != "local"]


def get_executor(name: str) -> Type[Executor]:
    """The executor class registered as ``name`` (an error names the valid ones)."""
    try:
        return EXECUTORS[name]
    except KeyError:
        expected = " or ".join(repr(n) for n in choices())
        raise ValueError(f"--executor: expected {expected}, got {name!r}") from None
