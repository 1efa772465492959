"""The benchmark's sub-commands of ``seglosses``: ``bench``, ``report``, ``export``, ``tasks``.

This is the top layer of :mod:`seglosses.bench` (see ``docs/bench_layout.md``): the only module
that imports both the runner and the report. :func:`bench` is the Python form of
``seglosses bench``: the grid (:func:`seglosses.bench.runner.run_bench`), then the report.

Dispatch convention (see :mod:`seglosses.cli`): ``configure_<name>(parser)`` adds the arguments,
``run_<name>(args) -> int`` runs the command. Argument errors raise ``ValueError`` /
``FileNotFoundError`` with a message naming the flag; ``seglosses.cli.main`` prints it and exits
with status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import List, Optional

__all__ = [
    "configure_bench",
    "run_bench",
    "configure_report",
    "run_report",
    "configure_export",
    "run_export",
    "configure_tasks",
    "run_tasks",
    "export_csv",
    "bench",
]

BENCH_EPILOG = """\
examples:
  seglosses bench                                   # quick preset: 12 losses x liver, tumor (CPU, minutes)
  seglosses bench --tasks liver,multiorgan --losses 'dice*,ce,0.5*dice+ce'
  seglosses bench --losses 'topk(k=30),topk_k50,dice_sample_squared' --iterations 500
  seglosses bench --data /data/Task03_Liver --spatial-dims 2 --lrs 3e-3,3e-4,3e-5
  seglosses bench --data /data/aerial_2d --losses ce,focal,iou --out aerial_out
  seglosses bench --preset paper --device cuda --out paper_out      # Ma et al. protocol (GPU/cluster)
  seglosses bench --preset topology --out topo_out  # thin vessels: clDice, skeleton recall, Betti errors
  seglosses bench --out seglosses_out --resume      # continue after an interruption
  seglosses bench --data /data/my_2d --budget 10m   # fit the grid into 10 minutes (plan printed first)
  seglosses bench --tasks liver --folds 5 --seeds 0,1,2 --plan      # cross-validation x 3 seeds: plan and ETA only
  seglosses report seglosses_out                    # rewrite report.html / report.md
  seglosses export seglosses_out --csv && seglosses rank seglosses_out/results.csv

--losses takes registered names (seglosses losses), wildcards ('dice*'), weighted sums ('0.5*dice+ce'),
options in parentheses ('topk(k=30)', 'dice_ce(dice.batch=true)') and the named variants of Ma et al.
Tables 3-4 (topk_k30 .. topk_k90, topk_t0.1 .. topk_t0.9, dice_batch_squared, dice_sample, dice_sample_squared).
"""


# ----------------------------------------------------------------------------------------------
# parsing helpers
# ----------------------------------------------------------------------------------------------


def _number_list(text: str, flag: str, cast, noun: str, example: str, ok, bound: str, unique: bool) -> list:
    """A comma-separated list of numbers (``--lrs``, ``--seeds``): each item cast and checked,
    errors naming the flag and the bad item."""
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        try:
            v = cast(item)
        except ValueError:
            raise ValueError(f"{flag}: {item!r} is not {noun} (expected e.g. {example})") from None
        if not ok(v):
            raise ValueError(f"{flag}: expected {bound}, got {item!r}")
        if not (unique and v in out):
            out.append(v)
    if not out:
        plural = "numbers" if cast is float else "integers"
        raise ValueError(f"{flag}: expected a comma-separated list of {plural}, got {text!r}")
    return out


def _float_list(text: str, flag: str) -> List[float]:
    return _number_list(text, flag, float, "a number", "3e-3,3e-4,3e-5",
                        lambda v: v > 0 and math.isfinite(v), "positive numbers", unique=False)


def _int_list(text: str, flag: str) -> List[int]:
    return _number_list(text, flag, int, "an integer", "0,1,2", lambda v: v >= 0,
                        "non-negative integers", unique=True)


def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= ``minimum`` (``what`` names it in the error)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = None
        if v is None or v < minimum:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return v

    return parse


_positive_int = _int_at_least(1, "positive")
_non_negative_int = _int_at_least(0, "non-negative")


#: ``bench`` flags whose value the planner never changes when given (docs/evidence.md)
_EXPLICIT = {
    "iterations": "iterations",
    "epochs": "iterations",
    "patch_size": "patch_size",
    "batch_size": "batch_size",
    "spatial_dims": "train_dims",
    "folds": "folds",
    "seeds": "seeds",
}


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return v


def _tasks(text: str) -> List[str]:
    from .synthetic import TASKS

    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["all"]:
        return list(TASKS)
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise ValueError(
            f"--tasks: unknown task(s) {unknown}; built-in tasks are {', '.join(TASKS)} (or 'all'); use --data PATH for your own data"
        )
    if not names:
        raise ValueError("--tasks: expected a comma-separated list of built-in tasks")
    return names


# ----------------------------------------------------------------------------------------------
# bench
# ----------------------------------------------------------------------------------------------


def configure_bench(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the Loss Odyssey protocol (Ma et al. 2021): train a U-Net per loss (and learning rate), evaluate every test "
        "case (DSC, NSD, HD95, IoU, sensitivity, specificity), rank, and write OUT/report.html and OUT/report.md. "
        "Results go to OUT/results.sqlite, one transaction per finished run; --resume continues an interrupted grid."
    )
    parser.epilog = BENCH_EPILOG
    g = parser.add_argument_group("what to run")
    g.add_argument(
        "--preset",
        default="quick",
        choices=["quick", "paper", "topology"],
        help="defaults for everything below (default: quick; topology: thin vessels, clDice / skeleton recall)",
    )
    g.add_argument(
        "--tasks",
        help="built-in synthetic tasks, comma-separated, or 'all' (default: the preset's; none when --data is given)",
    )
    g.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="PATH",
        help="dataset folder: Medical Segmentation Decathlon / nnU-Net raw layout, or 2D images/ + masks/ (repeatable)",
    )
    g.add_argument("--losses", help="comma-separated losses (default: the preset's); see the examples below")
    g.add_argument(
        "--lrs",
        help="learning rates to try per loss, picked by validation Dice (quick: 3e-3; paper: 3e-3,3e-4,3e-5)",
    )
    it = g.add_mutually_exclusive_group()
    it.add_argument("--iterations", type=_positive_int, help="training iterations per run (quick: 200)")
    it.add_argument(
        "--epochs", type=_positive_int, help="training epochs per run (an epoch is --epoch-length iterations)"
    )
    g.add_argument(
        "--epoch-length", type=_positive_int, help="iterations per epoch (quick: 25; paper: 250 as nnU-Net)"
    )
    g.add_argument(
        "--spatial-dims",
        type=int,
        choices=[2, 3],
        help="2: 2D network (3D volumes trained on slices, predicted slice by slice); 3: 3D network (default: preset / data)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of data generation, split, initialisation and sampling (default 0)",
    )
    m = parser.add_argument_group("model and training")
    m.add_argument("--batch-size", type=_positive_int, help="patches per batch (quick: 8; paper: 2)")
    m.add_argument(
        "--patch-size",
        type=int,
        help="patch side in voxels, rounded up to the network's divisor; 0: whole images (quick: 64)",
    )
    m.add_argument(
        "--image-size", type=_positive_int, help="side of the generated built-in images (quick: 64)"
    )
    m.add_argument(
        "--cases", type=_positive_int, help="number of generated cases per built-in task (quick: 40)"
    )
    m.add_argument(
        "--model-size",
        choices=["tiny", "small", "nnunet"],
        help="U-Net filters: tiny 8-64, small 16-256, nnunet 32-320",
    )
    m.add_argument(
        "--arch",
        choices=["dynunet", "basicunet"],
        default="dynunet",
        help="MONAI network (default dynunet, the nnU-Net architecture)",
    )
    m.add_argument(
        "--deep-supervision",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train with DynUNet's deep-supervision heads, nnU-Net's weights (default: the preset's; paper: on)",
    )
    m.add_argument(
        "--topology-metrics",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="clDice and Betti-number errors of every test case (default: for the built-in 'vessels' task only)",
    )
    m.add_argument(
        "--val-fraction",
        type=_fraction,
        help="fraction of the training cases held out to pick the learning rate (default 0.2)",
    )
    m.add_argument(
        "--test-fraction", type=_fraction, help="fraction of the cases held out for testing (default 0.2)"
    )
    m.add_argument(
        "--tolerance", type=float, default=1.0, help="NSD tolerance in mm (default 1.0, as the Decathlon)"
    )
    e = parser.add_argument_group("evidence and time (docs/evidence.md)")
    e.add_argument(
        "--folds",
        type=_positive_int,
        help="K-fold cross-validation by case: every case is tested exactly once (default: a single split; "
        "5 folds when --budget allows)",
    )
    e.add_argument(
        "--fold",
        type=_non_negative_int,
        action="append",
        metavar="F",
        help="run only fold F of --folds (repeatable; spread folds over machines, add them later with --resume)",
    )
    e.add_argument(
        "--seeds",
        help="training seeds, comma-separated (e.g. 0,1,2): initialisation and sampling; the split keeps --seed "
        "(default: --seed)",
    )
    e.add_argument(
        "--budget",
        help="fit the whole grid into this wall time (90s, 30m, 2h, 1h30m): the planner chooses iterations, "
        "2-D/3-D, patch, batch and folds",
    )
    e.add_argument("--plan", action="store_true", help="print the plan (data fingerprint, settings, ETA) and exit")
    e.add_argument(
        "--yes", action="store_true", help="do not ask before a grid estimated at more than one hour on a CPU"
    )
    r = parser.add_argument_group("execution and output")
    r.add_argument("--out", default="seglosses_out", help="output folder (default: seglosses_out)")
    r.add_argument(
        "--resume",
        action="store_true",
        help="continue the grid stored in OUT, skipping finished and failed runs",
    )
    r.add_argument(
        "--retry-failed", action="store_true", help="with --resume: run failed configurations again"
    )
    r.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    r.add_argument(
        "--workers",
        type=_positive_int,
        help="runs trained at the same time (quick: 2; paper: 1); only the main process writes results",
    )
    from .executors import choices as executor_choices

    r.add_argument(
        "--executor",
        choices=executor_choices(),
        default="thread",
        help="how --workers run: threads of this process (default, with progress bars), spawned processes, "
        'or Ray tasks (pip install "seglosses[ray]"; on this machine or a cluster, see --ray-address)',
    )
    r.add_argument(
        "--ray-address",
        default=None,
        help="--executor ray: join this Ray cluster ('auto': the one started here with 'ray start --head'; "
        "or HOST:PORT); default: start a local Ray runtime with this machine's CPUs and GPUs",
    )
    r.add_argument(
        "--gpus-per-run",
        type=float,
        default=None,
        help="--executor ray with --device cuda: GPUs per run (default 1; 0.5 shares a GPU between two runs)",
    )
    r.add_argument(
        "--max-retries",
        type=int,
        default=2,
        help="--executor ray: retries of a run whose worker process died (killed, out of memory, node lost; default 2)",
    )
    r.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch CPU threads per run (default 1: on a shared CPU more threads per op were measured slower)",
    )
    r.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    r.add_argument("--quiet", action="store_true", help="no progress bars")


def build_config(args):
    """A :class:`~seglosses.bench.runner.BenchConfig` from parsed ``bench`` arguments."""
    from .presets import get_preset, parse_losses, resolve_preset_losses
    from .runner import BenchConfig

    preset = get_preset(args.preset)
    data = [str(p) for p in (args.data or [])]
    for p in data:
        if not Path(p).exists():
            raise FileNotFoundError(f"--data: {p} does not exist")
    if args.tasks:
        tasks = _tasks(args.tasks)
    elif data:
        tasks = []
    else:
        tasks = list(preset.tasks)
    warnings = []
    if args.losses:
        losses = parse_losses(args.losses)
    else:
        losses, warnings = resolve_preset_losses(preset)
    lrs = _float_list(args.lrs, "--lrs") if args.lrs else list(preset.lrs)
    epoch_length = args.epoch_length or preset.epoch_length
    iterations = args.iterations or (args.epochs * epoch_length if args.epochs else None)
    if args.patch_size is not None and args.patch_size < 0:
        raise ValueError(f"--patch-size: expected a positive size or 0 (whole images), got {args.patch_size}")
    if args.retry_failed and not args.resume:
        raise ValueError("--retry-failed needs --resume")
    if args.tolerance is not None and not args.tolerance > 0:
        raise ValueError(f"--tolerance: expected a positive distance in mm, got {args.tolerance}")
    spatial_dims = args.spatial_dims
    if spatial_dims is None:
        spatial_dims = None if data and not tasks else preset.spatial_dims
    cfg = BenchConfig.from_preset(
        preset,
        out=args.out,
        tasks=tasks,
        data=data,
        losses=losses,
        lrs=lrs,
        iterations=iterations,
        epoch_length=epoch_length,
        batch_size=args.batch_size,
        image_size=args.image_size,
        n_cases=args.cases,
        model_size=args.model_size,
        arch=args.arch,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        tolerance=args.tolerance,
        seed=args.seed,
        device=args.device,
        resume=args.resume,
        retry_failed=args.retry_failed,
        workers=args.workers,
        executor=args.executor,
        threads=args.threads,
        ray_address=args.ray_address,
        gpus_per_run=args.gpus_per_run,
        max_retries=args.max_retries,
        report=not args.no_report,
        progress=not args.quiet,
        deep_supervision=args.deep_supervision,
        topology_metrics=args.topology_metrics,
    )
    cfg.spatial_dims = spatial_dims
    if args.patch_size is not None:
        cfg.patch_size = args.patch_size or None
    # evidence and time (docs/evidence.md)
    from .plan import parse_budget

    cfg.folds = getattr(args, "folds", None)
    cfg.run_folds = sorted(set(getattr(args, "fold", None) or [])) or None
    if cfg.run_folds and not cfg.folds:
        raise ValueError("--fold needs --folds K (the number of folds the cases are split into)")
    if cfg.run_folds and cfg.run_folds[-1] >= cfg.folds:
        raise ValueError(f"--fold: expected fold numbers in [0, {cfg.folds - 1}] for --folds {cfg.folds}, got {cfg.run_folds[-1]}")
    cfg.seeds = _int_list(args.seeds, "--seeds") if getattr(args, "seeds", None) else None
    cfg.budget = parse_budget(args.budget) if getattr(args, "budget", None) else None
    cfg.plan_only = bool(getattr(args, "plan", False))
    cfg.yes = bool(getattr(args, "yes", False))
    cfg.explicit = sorted({v for k, v in _EXPLICIT.items() if getattr(args, k, None) is not None})
    return cfg, warnings


def bench(cfg, log=print, confirm=None) -> dict:
    """Run the grid of ``cfg`` (a :class:`~seglosses.bench.runner.BenchConfig`), then write the
    report when ``cfg.report``; return the runner's summary with ``"report"`` set to the report's
    paths (None without a report). ``--plan`` (``cfg.plan_only``) and a declined confirmation
    return before training, without a report; ``confirm`` is passed to the runner."""
    from .report import write_report
    from .runner import run_bench as run_grid

    summary = run_grid(cfg, log=log, confirm=confirm)
    if cfg.plan_only or summary.get("aborted"):
        return summary
    if cfg.report:
        paths = write_report(cfg.out)
        log(f"report: {paths['html']} and {paths['md']}")
        summary["report"] = paths
    return summary


def run_bench(args) -> int:
    cfg, warnings = build_config(args)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    n_tasks = len(cfg.tasks) + len(cfg.data)
    print(
        f"seglosses bench: preset {cfg.preset}, {n_tasks} task(s), {len(cfg.losses)} loss configuration(s), "
        f"{len(cfg.lrs)} learning rate(s); device {cfg.device}; results in {Path(cfg.out) / 'results.sqlite'}",
        flush=True,
    )
    try:
        summary = bench(cfg, log=lambda line: print(line, flush=True), confirm=_ask if sys.stdin.isatty() else None)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: every finished run is in {Path(cfg.out) / 'results.sqlite'}; "
            f"continue with the same command and --resume",
            file=sys.stderr,
        )
        return 130
    if cfg.plan_only:
        print("--plan: nothing trained", flush=True)
        return 0
    if summary.get("aborted"):
        return 1
    print(
        f"done: {summary['ran']} run(s) in {summary['seconds']:.0f} s ({summary['failed']} failed, {summary['skipped']} skipped as already stored)",
        flush=True,
    )
    return 0


def _ask(question: str) -> bool:
    """``[y/N]`` on the terminal (only asked when stdin is a terminal)."""
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        return False


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------


def configure_report(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "example:\n  seglosses report seglosses_out      # writes seglosses_out/report.html, report.md, figures/"
    parser.add_argument("out", help="output folder of `seglosses bench` (holding results.sqlite)")
    parser.add_argument(
        "--bootstrap",
        type=_positive_int,
        default=1000,
        help="bootstrap samples for rank stability (default 1000)",
    )
    parser.add_argument(
        "--hardest", type=_positive_int, default=3, help="hardest test cases shown per task (default 3)"
    )


def run_report(args) -> int:
    from .report import write_report

    paths = write_report(args.out, n_bootstrap=args.bootstrap, hardest=args.hardest)
    print(f"wrote {paths['html']} and {paths['md']} (figures in {paths['figures']})")
    return 0


# ----------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------


def configure_export(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "writes, in OUT (or --to DIR):\n"
        "  results.csv        one row per method x task x case (selected learning rate, class mean): input of `seglosses rank`\n"
        "  results_tidy.csv   one row per task x loss x lr x case x class, every metric\n"
        "  runs.csv           one row per run (status, reason, timings, learning rate, validation Dice)\n"
        "  curves.csv         training curves, one row per run x epoch\n"
        "example:\n  seglosses export seglosses_out --csv && seglosses rank seglosses_out/results.csv"
    )
    parser.add_argument("out", help="output folder of `seglosses bench` (holding results.sqlite)")
    parser.add_argument(
        "--csv", action="store_true", default=True, help="write CSV files (the default and only format)"
    )
    parser.add_argument("--to", help="folder for the CSV files (default: OUT)")


def export_csv(out, to: Optional[str] = None) -> dict:
    """Write the CSV files described in ``seglosses export --help``; return their paths
    (:func:`seglosses.bench.results.export_csv`)."""
    from .results import export_csv as _export

    return _export(out, to)


def run_export(args) -> int:
    paths = export_csv(args.out, args.to)
    for kind, p in paths.items():
        print(f"{kind:>6}: {p}")
    return 0


# ----------------------------------------------------------------------------------------------
# tasks
# ----------------------------------------------------------------------------------------------


def configure_tasks(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "examples:\n  seglosses tasks\n  seglosses tasks --measure\n  seglosses tasks --preview previews/ --cases 4"
    parser.add_argument(
        "--preview", metavar="DIR", help="save one PNG per task with a few cases and their labels"
    )
    parser.add_argument("--tasks", help="only these tasks (comma-separated)")
    parser.add_argument("--cases", type=_positive_int, default=4, help="cases per preview (default 4)")
    parser.add_argument(
        "--spatial-dims", type=int, choices=[2, 3], default=2, help="preview 2D or 3D cases (default 2)"
    )
    parser.add_argument("--size", type=_positive_int, help="image side of the previews (default: the task's)")
    parser.add_argument(
        "--measure", action="store_true", help="measure the BG:FG ratios on generated cases (a few seconds)"
    )
    parser.add_argument("--seed", type=int, default=0)


def run_tasks(args) -> int:
    from .synthetic import list_tasks, preview_tasks

    names = _tasks(args.tasks) if args.tasks else None
    rows = [r for r in list_tasks(measure=args.measure, seed=args.seed) if names is None or r.name in names]
    width = max(len(r.name) for r in rows)
    for r in rows:
        print(f"{r.name:<{width}}  {len(r.classes):>2} classes  BG:FG {r.ratio:<12} {r.description}")
        print(f"{'':<{width}}  labels: {', '.join(r.classes)}")
    if args.preview:
        paths = preview_tasks(
            args.preview,
            tasks=names,
            n_cases=args.cases,
            seed=args.seed,
            spatial_dims=args.spatial_dims,
            size=args.size,
        )
        print(f"previews: {', '.join(str(p) for p in paths)}")
    return 0
