"""How the benchmark grid scales: the same small grid with 1 and 2 Ray workers and with the
process executor, plus what Ray costs per run.

Every configuration runs the same grid (one built-in task, ``--losses`` x one learning rate,
``--iterations`` iterations, CPU, ``--threads 1`` per run) into a fresh output folder through
:func:`seglosses.bench.runner.run_bench`, and its wall time is measured from the call to the
last stored result (data loading and the final summary included; the report is not written).
Reported per configuration: runs per minute, and the ratio to ideal scaling, i.e. runs/min
divided by ``workers`` x the runs/min of the in-process executor with one worker (``local``).

Ray's overhead is measured separately, in this process:

* start-up: ``ray.init()`` of a local runtime and ``ray.shutdown()`` (once per grid);
* object transfer: ``ray.put`` of the task's dataset (once per task) and one task that receives
  it by reference (per run: scheduling, argument resolution, result return of an empty task);
* per run: (wall time with 1 Ray worker - wall time of ``local``) / runs, which includes both.

Usage (numbers mean something only on a quiet machine; runs are long enough that start-up is
amortised only with ``--iterations`` of a few hundred)::

    python benchmarks/grid_scaling.py                        # 4 runs x 200 iterations
    python benchmarks/grid_scaling.py --losses ce,dice,iou,tversky,focal,dice_ce --iterations 300
    python benchmarks/grid_scaling.py --configs local,ray1,ray2,process2 --csv scaling.csv

Needs Ray (``pip install "seglosses[ray]"``).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
import time
from pathlib import Path

CONFIGS = {  # name -> (executor, workers)
    "local": ("thread", 1),  # one worker: the driver runs the grid in-process
    "ray1": ("ray", 1),
    "ray2": ("ray", 2),
    "process1": ("process", 1),
    "process2": ("process", 2),
}


def _config(args, executor: str, workers: int, out: Path):
    from seglosses.bench.presets import get_preset, parse_losses
    from seglosses.bench.runner import BenchConfig

    cfg = BenchConfig.from_preset(
        get_preset("quick"),
        out=str(out),
        tasks=[args.task],
        lrs=[3e-3],
        iterations=args.iterations,
        epoch_length=max(1, args.iterations // 2),
        batch_size=args.batch_size,
        image_size=args.image_size,
        n_cases=args.cases,
        workers=workers,
        executor=executor,
        threads=1,
        report=False,
        progress=False,
    )
    cfg.patch_size = args.image_size
    cfg.losses = parse_losses(args.losses)
    return cfg


def time_grid(args, name: str, root: Path) -> float:
    from seglosses.bench.runner import run_bench

    executor, workers = CONFIGS[name]
    out = root / name
    shutil.rmtree(out, ignore_errors=True)
    cfg = _config(args, executor, workers, out)
    t0 = time.perf_counter()
    result = run_bench(cfg, log=lambda *a: None)
    seconds = time.perf_counter() - t0
    if result["failed"]:
        raise RuntimeError(f"{name}: {result['failed']} run(s) failed; see {out}")
    return seconds


def ray_overheads(args) -> dict:
    import ray

    from seglosses.bench.synthetic import make_task

    t0 = time.perf_counter()
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    startup = time.perf_counter() - t0
    try:
        dataset = make_task(args.task, n_cases=args.cases, spatial_dims=2, size=args.image_size, seed=0)
        t0 = time.perf_counter()
        ref = ray.put(dataset)
        put = time.perf_counter() - t0

        @ray.remote(num_cpus=1)
        def touch(ds):
            return len(ds)

        ray.get(touch.remote(ref))  # warm a worker
        t0 = time.perf_counter()
        n = 20
        for _ in range(n):
            ray.get(touch.remote(ref))
        per_task = (time.perf_counter() - t0) / n
    finally:
        t0 = time.perf_counter()
        ray.shutdown()
        shutdown = time.perf_counter() - t0
    return {"startup_s": startup + shutdown, "put_s": put, "task_roundtrip_s": per_task}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="liver")
    p.add_argument("--losses", default="ce,dice,iou,tversky", help="comma-separated (runs = losses; one lr)")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--cases", type=int, default=10)
    p.add_argument("--configs", default="local,ray1,ray2,process2", help=f"comma-separated, from {sorted(CONFIGS)}")
    p.add_argument("--csv", help="also write the table as CSV")
    p.add_argument("--keep", help="keep the output folders here (default: a temporary folder)")
    args = p.parse_args(argv)
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        p.error(f"--configs: unknown {unknown}; expected names from {sorted(CONFIGS)}")
    n_runs = len([x for x in args.losses.split(",") if x.strip()])
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="seglosses-scaling-"))
    root.mkdir(parents=True, exist_ok=True)
    wall = {}
    for name in names:
        wall[name] = time_grid(args, name, root)
        print(f"{name}: {wall[name]:.1f} s", flush=True)
    base = wall.get("local")
    rows = []
    for name in names:
        executor, workers = CONFIGS[name]
        rpm = 60.0 * n_runs / wall[name]
        ideal = None if base is None else rpm / (workers * 60.0 * n_runs / base)
        rows.append({"config": name, "executor": executor, "workers": workers, "runs": n_runs, "wall_s": round(wall[name], 1),
                     "runs_per_min": round(rpm, 2), "ratio_to_ideal": None if ideal is None else round(ideal, 3)})  # fmt: skip
    over = ray_overheads(args) if any(CONFIGS[n][0] == "ray" for n in names) else None
    print(f"\ngrid: task {args.task}, {n_runs} runs x {args.iterations} iterations, image {args.image_size}, 1 thread per run\n")
    print("| config | executor | workers | wall (s) | runs/min | ratio to ideal |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = "" if r["ratio_to_ideal"] is None else f"{r['ratio_to_ideal']:.2f}"
        print(f"| {r['config']} | {r['executor']} | {r['workers']} | {r['wall_s']:.1f} | {r['runs_per_min']:.2f} | {ratio} |")
    if over is not None:
        print(f"\nRay start-up + shutdown of a local runtime: {over['startup_s']:.2f} s per grid")
        print(f"ray.put of the task's dataset: {1000 * over['put_s']:.1f} ms per task")
        print(f"round trip of an empty task receiving the dataset by reference: {1000 * over['task_roundtrip_s']:.1f} ms per run")
        if base is not None and "ray1" in wall:
            print(f"measured overhead per run, (ray1 - local) / runs: {(wall['ray1'] - base) / n_runs:.2f} s")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
