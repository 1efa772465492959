"""Measure the evidence table that ``seglosses recommend`` reads (``src/seglosses/data/evidence.csv``).

For every regime -- a built-in synthetic task at a given dimensionality, spanning foreground
fractions from about 1:3 to 1:1200, one versus many objects, compact versus thin structures, 2-D
and 3-D -- the script runs ``seglosses bench`` with the candidate losses, several seeds and K-fold
cross-validation, ranks the losses with the significance ranking of Ma et al. (DSC + NSD, every
test case of every fold, per-case metrics averaged over seeds), and writes one row per (regime,
loss) with the regime's profile numbers, the normalised rank (0 = first), mean DSC and NSD.

    python benchmarks/evidence.py                       # the shipped table (about 20 min on 2 cores)
    python benchmarks/evidence.py --regimes liver-2d,tumor-2d --iterations 20 --out /tmp/ev --table /tmp/ev.csv

It also draws ``docs/figures/evidence.png``: a loss x regime heat map of rank scores. Results
are kept in ``OUT/<regime>/results.sqlite``: an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: name -> (built-in task, spatial dims, image size, batch size)
REGIMES = {
    "brain-2d": ("brain", 2, 64, 8),
    "liver-2d": ("liver", 2, 64, 8),
    "aerial-2d": ("aerial", 2, 64, 8),
    "tumor-2d": ("tumor", 2, 64, 8),
    "pancreas-2d": ("pancreas", 2, 64, 8),
    "multiorgan-2d": ("multiorgan", 2, 64, 8),
    "vessels-2d": ("vessels", 2, 64, 8),
    "liver-3d": ("liver", 3, 32, 2),
}
DEFAULT_LOSSES = "dice_ce,dice,dice_topk(topk.k=10),dice_focal,focal_tversky,tversky,ce"


def _regime_row(task: str, dims: int, size: int, n_cases: int, seed: int) -> dict:
    from seglosses.bench.profile import profile_dataset
    from seglosses.bench.synthetic import make_task
    from seglosses.recommend import regime_of

    return regime_of(profile_dataset(make_task(task, n_cases=n_cases, spatial_dims=dims, size=size, seed=seed)))


def _rank_regime(out: Path) -> "list[dict]":
    """Rank the losses of one regime's OUT folder: ``[{"loss", "rank_score", "mean_dsc", "mean_nsd", "n_cases"}]``.

    Every test case of every fold, per-case metrics averaged over seeds, DSC + NSD (Ma et al.)."""
    from seglosses.bench.results import load_results
    from seglosses.ranking import significance_ranking

    cases = load_results(out).cases
    cases = cases.groupby(["method", "task", "case"], as_index=False)[["dsc", "nsd"]].mean()
    ranking = significance_ranking(cases, method="method", case="case", task="task",
                                   metrics={"dsc": "higher", "nsd": "higher"})
    n = len(ranking)
    means = cases.groupby("method")[["dsc", "nsd"]].mean()
    n_cases = cases.groupby("method")["case"].nunique()
    return [
        {
            "loss": loss,
            "rank_score": (int(ranking.loc[loss, "rank"]) - 1) / (n - 1) if n > 1 else 0.0,
            "mean_dsc": float(means.loc[loss, "dsc"]),
            "mean_nsd": float(means.loc[loss, "nsd"]),
            "n_cases": int(n_cases.loc[loss]),
        }
        for loss in ranking.index
    ]


def heat_map(rows: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    regimes = list(dict.fromkeys(r["regime"] for r in rows))
    losses = sorted({r["loss"] for r in rows}, key=lambda l: np.mean([r["rank_score"] for r in rows if r["loss"] == l]))
    grid = np.full((len(losses), len(regimes)), np.nan)
    for r in rows:
        grid[losses.index(r["loss"]), regimes.index(r["regime"])] = r["rank_score"]
    fig, ax = plt.subplots(figsize=(1.1 * len(regimes) + 2.5, 0.42 * len(losses) + 1.6))
    im = ax.imshow(grid, cmap="RdYlGn_r", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(regimes)), regimes, rotation=35, ha="right")
    ax.set_yticks(range(len(losses)), losses)
    for i in range(len(losses)):
        for j in range(len(regimes)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="rank score (0 = first)")
    ax.set_title("seglosses evidence: significance-ranking place per regime")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--regimes", default=",".join(REGIMES), help="comma-separated regime names")
    ap.add_argument("--losses", default=DEFAULT_LOSSES)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--cases", type=int, default=24)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="evidence_out")
    ap.add_argument("--table", default=str(REPO / "src/seglosses/data/evidence.csv"))
    ap.add_argument("--figure", default=str(REPO / "docs/figures/evidence.png"))
    args = ap.parse_args(argv)

    from seglosses.bench.synthetic import TASKS
    from seglosses.cli import main as seglosses

    t0 = time.time()
    rows = []
    names = [r.strip() for r in args.regimes.split(",") if r.strip()]
    unknown = [r for r in names if r not in REGIMES]
    if unknown:
        raise SystemExit(f"--regimes: unknown {unknown}; expected some of {sorted(REGIMES)}")
    for name in names:
        task, dims, size, batch = REGIMES[name]
        if task not in TASKS:
            print(f"[evidence] {name}: task {task!r} is not built in here, skipped", flush=True)
            continue
        out = Path(args.out) / name
        bench_argv = [
            "bench", "--tasks", task, "--spatial-dims", str(dims), "--image-size", str(size),
            "--patch-size", str(size), "--batch-size", str(batch), "--cases", str(args.cases), "--losses", args.losses,
            "--iterations", str(args.iterations), "--folds", str(args.folds), "--seeds", args.seeds,
            "--workers", str(args.workers), "--out", str(out), "--resume", "--no-report", "--quiet", "--yes",
        ]
        print(f"[evidence] {name}: seglosses {' '.join(bench_argv)}", flush=True)
        rc = seglosses(bench_argv)
        if rc:
            raise SystemExit(f"[evidence] {name}: seglosses bench exited with {rc}")
        reg = _regime_row(task, dims, size, args.cases, 0)
        for r in _rank_regime(out):
            rows.append({
                "regime": name, "spatial_dims": dims, "log10_bg_fg": round(reg["log10_bg_fg"], 4),
                "objects_per_case": reg["objects_per_case"], "boundary_fraction": round(reg["boundary_fraction"], 4),
                "thinness": round(reg["thinness"], 4),
                **r, "seeds": args.seeds.replace(",", ";"), "folds": args.folds,
            })
    minutes = (time.time() - t0) / 60
    cmd = "python benchmarks/evidence.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = [
        "# seglosses evidence table: significance-ranking place of each loss per regime (benchmarks/evidence.py)",
        f"# command: {cmd.strip()}",
        f"# settings: {args.iterations} iterations per run, {args.cases} cases, {args.folds} folds, seeds {args.seeds}, "
        f"losses {args.losses}",
        f"# date: {_dt.date.today().isoformat()}",
        f"# machine: {platform.machine()} ({os.cpu_count()} cores), wall time of this invocation {minutes:.1f} min "
        "(a resumed invocation counts only what it trained)",
    ]
    cols = ["regime", "spatial_dims", "log10_bg_fg", "objects_per_case", "boundary_fraction", "thinness", "loss",
            "rank_score", "mean_dsc", "mean_nsd", "n_cases", "seeds", "folds"]
    lines = header + [",".join(cols)]
    for r in rows:
        lines.append(",".join(_cell(r[c]) for c in cols))
    Path(args.table).parent.mkdir(parents=True, exist_ok=True)
    Path(args.table).write_text("\n".join(lines) + "\n")
    if rows and args.figure:
        heat_map(rows, Path(args.figure))
    print(f"[evidence] {len(rows)} rows -> {args.table} ({minutes:.1f} min)")
    return 0


def _cell(v) -> str:
    text = f"{v:.4f}" if isinstance(v, float) else str(v)
    return f'"{text}"' if "," in text else text


if __name__ == "__main__":
    sys.exit(main())
