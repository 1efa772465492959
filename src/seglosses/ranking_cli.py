"""``seglosses rank``: significance ranking of a per-case results CSV.

Dispatched by :mod:`seglosses.cli` (``configure_rank`` / ``run_rank``). The maths lives in
:mod:`seglosses.ranking`; this module only parses arguments, prints and saves.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from . import ranking

EPILOG = """\
Metric directions: NAME:higher or NAME:lower in --metrics; without a suffix, names starting with
hd/hausdorff, assd/asd/masd and names containing 'distance' are lower-is-better, others higher.

Examples:
  seglosses rank OUT/results.csv
  seglosses rank results.csv --metrics dsc,nsd,hd95 --plot rank.png
  seglosses rank results.csv --metrics dsc,hd95:lower --worst hd95=300 --bootstrap 1000
  seglosses rank results.csv --task-col task,label --variant mean_then_rank
"""


def configure_rank(parser: argparse.ArgumentParser) -> None:
    """Add the ``rank`` arguments to ``parser``."""
    parser.epilog = EPILOG
    parser.add_argument("results", metavar="RESULTS.csv", help="long table: one row per method x task x case")
    parser.add_argument(
        "--metrics",
        default="dsc,nsd",
        help="comma-separated metric columns, each optionally NAME:higher|lower (default: dsc,nsd)",
    )
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="significance level of the one-sided tests (default: 0.05)"
    )
    parser.add_argument("--method-col", default="method", help="method column (default: method)")
    parser.add_argument("--case-col", default="case", help="case column (default: case)")
    parser.add_argument(
        "--task-col",
        default=None,
        help="task column(s), comma-separated (default: 'task' if the table has it, else one task)",
    )
    parser.add_argument(
        "--variant",
        choices=ranking.VARIANTS,
        default="significance",
        help="significance (Ma et al., default), mean_then_rank or rank_then_mean",
    )
    parser.add_argument(
        "--missing",
        choices=("worst", "raise"),
        default="worst",
        help="missing or non-finite values get the metric's worst value (default) or are an error",
    )
    parser.add_argument(
        "--worst",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="substitute for missing values of METRIC (repeatable or comma-separated), e.g. hd95=300",
    )
    parser.add_argument(
        "--diagonal-col", default=None, help="column with the image diagonal in mm: worst value of distances"
    )
    parser.add_argument("--plot", default=None, metavar="PNG", help="save a bar chart of the rank scores")
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="also print rank stability over N bootstrap samples",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default: 0)")
    parser.add_argument(
        "--stability-plot",
        default=None,
        metavar="PNG",
        help="save the bootstrap blob plot (needs --bootstrap)",
    )
    parser.add_argument("--out", default=None, metavar="CSV", help="also write the ranking table as CSV")


def _parse_worst(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        for part in (p.strip() for p in item.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not sep or not name.strip() or not math.isfinite(number):
                raise ValueError(f"--worst: expected METRIC=VALUE with a finite number, got {part!r}")
            out[name.strip()] = number
    return out


def _task_argument(args: argparse.Namespace, columns) -> str | list[str] | None:
    if args.task_col is None:
        lowered = {str(c).lower() for c in columns}
        return "task" if "task" in lowered else None
    cols = [c.strip() for c in args.task_col.split(",") if c.strip()]
    if not cols:
        raise ValueError("--task-col: empty column name")
    return cols[0] if len(cols) == 1 else cols


def _reraise_with_option(exc: ValueError, names: dict[str, str]) -> ValueError:
    """Prefix library argument names with the matching command-line option."""
    message = str(exc)
    head, sep, rest = message.partition(":")
    if sep and head in names:
        return ValueError(f"{names[head]}: {rest.strip()}")
    return exc


def run_rank(args: argparse.Namespace) -> int:
    """Run ``seglosses rank``; prints the ranking table. Returns the exit code."""
    path = Path(args.results)
    if not path.is_file():
        raise ValueError(f"RESULTS.csv: no such file: '{path}'")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"RESULTS.csv: cannot read '{path}' as CSV: {exc}") from None
    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap: expected N >= 0, got {args.bootstrap}")
    if args.stability_plot and not args.bootstrap:
        raise ValueError("--stability-plot: needs --bootstrap N (N >= 1)")
    kwargs = {
        "method": args.method_col,
        "case": args.case_col,
        "task": _task_argument(args, table.columns),
        "metrics": args.metrics,
        "alpha": args.alpha,
        "missing": args.missing,
        "variant": args.variant,
        "worst_values": _parse_worst(args.worst),
        "diagonal": args.diagonal_col,
    }
    options = {
        "method": "--method-col",
        "case": "--case-col",
        "task": "--task-col",
        "metrics": "--metrics",
        "alpha": "--alpha",
        "missing": "--missing",
        "worst_values": "--worst",
        "diagonal": "--diagonal-col",
        "table": "RESULTS.csv",
    }
    try:
        if args.bootstrap:
            stability = ranking.rank_stability(table, n_bootstrap=args.bootstrap, seed=args.seed, **kwargs)
            result = stability.ranking
        else:
            stability = None
            result = ranking.significance_ranking(table, **kwargs)
    except ValueError as exc:
        raise _reraise_with_option(exc, options) from None

    out = sys.stdout
    attrs = result.attrs
    metrics = ", ".join(f"{m} ({d} is better)" for m, d in attrs["metrics"].items())
    tasks = ", ".join(f"{t or 'all'} ({attrs['n_cases'][t]} cases)" for t in attrs["tasks"])
    title = {
        "significance": f"Significance ranking (Ma et al. 2021), one-sided Wilcoxon, alpha={attrs['alpha']:g}",
        "mean_then_rank": "Mean-then-rank ranking (aggregate per task, rank, mean rank)",
        "rank_then_mean": "Rank-then-mean ranking (rank per case, mean per task, rank, mean rank)",
    }[attrs["variant"]]
    print(title, file=out)
    print(f"{len(result)} methods; tasks: {tasks}; metrics: {metrics}", file=out)
    substituted = {k: v for k, v in attrs["n_substituted"].items() if v}
    if substituted:
        detail = ", ".join(f"{k}: {v}" for k, v in substituted.items())
        print(f"missing values replaced by the worst value: {detail}", file=out)
    print(file=out)
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.max_rows", None):
        print(result.to_string(float_format=lambda v: f"{v:.3f}"), file=out)
    if stability is not None:
        tau = stability.tau_summary()
        print(file=out)
        print(
            f"Rank stability over {stability.n_bootstrap} bootstrap samples (seed {stability.seed}): "
            f"Kendall tau median {tau['median']:.3f}, 95% interval [{tau['q025']:.3f}, {tau['q975']:.3f}]",
            file=out,
        )
        print(stability.summary.to_string(float_format=lambda v: f"{v:.3f}"), file=out)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        result.to_csv(args.out)
        print(f"\nranking table written to {args.out}", file=out)
    if args.plot:
        written = ranking.plot_ranking(result, args.plot)
        print(f"bar chart written to {written}", file=out)
    if args.stability_plot and stability is not None:
        written = ranking.plot_rank_stability(stability, args.stability_plot)
        print(f"stability plot written to {written}", file=out)
    return 0
