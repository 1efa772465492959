"""``seglosses recommend``: which loss for this dataset, from its profile and measured evidence.

Three steps, each usable on its own:

1. :func:`~seglosses.bench.profile.profile_dataset` -- what the labels look like (imbalance,
   absent classes, objects per case and their size, thin versus compact, dims, spacing);
2. :func:`shortlist` -- 3-6 loss specs, each with one-line reasons citing the profile numbers,
   the papers' findings and the project's measured evidence (:func:`load_evidence`); the baseline
   Dice+CE (nnU-Net's default) is always on it;
3. :func:`confirm` -- ``seglosses bench`` on the user's own data with the shortlist, under a time
   budget, and the winner with its significance against the baseline.

Where the rules come from (cited in every reason):

* Ma et al. 2021, *Loss odyssey* (doi:10.1016/j.media.2021.102035), sections 4-6: Dice-related
  compound losses are the most robust (DiceTopK first in every metric set, DiceFocal, DiceHD,
  DiceBD next); TopK-% is more robust than TopK-threshold; TopK alone fails on the large,
  mildly imbalanced liver; weighted CE is weak; GDice is good on binary tasks but fails on
  multi-class ones; boundary/distance losses gain most on HD95 and NSD.
* Jadon 2020 (doi:10.1109/CIBCB48159.2020.9277638), Table III: focal for highly imbalanced data,
  Tversky / focal Tversky where recall of small structures matters, Dice-family for mildly
  skewed data, Combo (Dice + BCE) for light imbalance.
* Shit et al. 2021 (clDice, arXiv:2003.07311) and Kirchhoff et al. 2024 (skeleton recall,
  arXiv:2404.03010): topology-aware terms for thin, tubular structures.
* nnU-Net (Isensee et al. 2021): batch Dice when many samples lack a class.

The JSON schema of ``seglosses recommend --json`` is documented in ``docs/recommend.md``::

    {"profile": {"dataset": {...}, "classes": {name: {...}}},
     "regime": {...}, "evidence": {"source": ..., "nearest": [...]},
     "shortlist": [{"loss": SPEC, "reasons": [...], "evidence_score": float | null}],
     "confirmed": {...} | null}
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Sequence

__all__ = [
    "BASELINE",
    "Candidate",
    "regime_of",
    "shortlist",
    "load_evidence",
    "recommend",
    "confirm",
    "format_recommendation",
]

#: ``thinness`` (boundary fraction / that of a compact object of the same size) from which a
#: class counts as a thin structure (vessels ~3, the built-in pancreas ~1.7, compact organs ~1)
THIN = 1.5

#: the baseline every shortlist carries: nnU-Net's default loss (Dice + CE)
BASELINE = "dice_ce"

MA = "Ma et al. 2021"
JADON = "Jadon 2020 (Table III)"


@dataclass
class Candidate:
    """One shortlisted loss: a ``--losses`` spec and why it is there."""

    loss: str
    reasons: List[str] = field(default_factory=list)
    evidence_score: Optional[float] = None  # mean normalised rank in the nearest regimes, 0 = best
    evidence_note: str = ""
    prior: float = 0.0  # rule strength (higher = more specific to this profile); breaks ties

    def to_dict(self) -> dict:
        reasons = list(self.reasons) + ([self.evidence_note] if self.evidence_note else [])
        return {"loss": self.loss, "reasons": reasons, "evidence_score": self.evidence_score}


# ----------------------------------------------------------------------------------------------
# Regime: the few numbers the rules and the evidence look-up use
# ----------------------------------------------------------------------------------------------


def regime_of(profile: dict) -> dict:
    """Summarise a profile by its hardest class (largest BG:FG among the classes present).

    Returns ``{"spatial_dims", "hardest_class", "bg_fg_ratio", "log10_bg_fg", "objects_per_case",
    "small_object_voxels", "boundary_fraction", "thinness", "absent_fraction", "classes",
    "ratio_spread", "anisotropy"}``: ``boundary_fraction``, ``thinness`` and ``objects_per_case`` are the largest over the
    classes, ``absent_fraction`` the largest, ``ratio_spread`` the largest / smallest BG:FG over
    the classes (1 for one class).

    >>> p = {"dataset": {"spatial_dims": 2, "anisotropy": 1.0, "classes": 1},
    ...      "classes": {"fg": {"bg_fg_ratio": 99.0, "objects_per_case": {"median": 1.0},
    ...                         "object_size_voxels": {"p10": 50.0}, "boundary_fraction": 0.1,
    ...                         "absent_fraction": 0.0}}}
    >>> r = regime_of(p); r["hardest_class"], round(r["log10_bg_fg"], 4), r["thinness"]
    ('fg', 1.9956, 1.0)
    """
    classes = profile["classes"]
    present = {k: v for k, v in classes.items() if math.isfinite(v["bg_fg_ratio"])}
    if not present:
        raise ValueError("profile: no foreground class occurs in any case; nothing to segment")
    hardest = max(present, key=lambda k: present[k]["bg_fg_ratio"])
    ratios = [v["bg_fg_ratio"] for v in present.values()]
    ratio = present[hardest]["bg_fg_ratio"]
    return {
        "spatial_dims": int(profile["dataset"]["spatial_dims"]),
        "hardest_class": hardest,
        "bg_fg_ratio": float(ratio),
        "log10_bg_fg": float(math.log10(max(ratio, 1e-3))),
        "objects_per_case": float(max(v["objects_per_case"]["median"] for v in present.values())),
        "small_object_voxels": float(min(v["object_size_voxels"]["p10"] for v in present.values())),
        "boundary_fraction": float(max(v["boundary_fraction"] for v in present.values())),
        "thinness": float(max(v.get("thinness", 1.0) for v in present.values())),
        "absent_fraction": float(max(v["absent_fraction"] for v in classes.values())),
        "classes": len(classes),
        "ratio_spread": float(max(ratios) / max(min(ratios), 1e-12)),
        "anisotropy": float(profile["dataset"].get("anisotropy", 1.0)),
    }


# ----------------------------------------------------------------------------------------------
# Evidence measured by the project (benchmarks/evidence.py -> seglosses/data/evidence.csv)
# ----------------------------------------------------------------------------------------------

EVIDENCE_COLUMNS = (
    "regime", "spatial_dims", "log10_bg_fg", "objects_per_case", "boundary_fraction", "thinness",
    "loss", "rank_score", "mean_dsc", "mean_nsd", "n_cases", "seeds", "folds",
)


def load_evidence(path=None) -> dict:
    """Read the evidence table: ``{"meta": {...}, "rows": [dict, ...]}``.

    ``path=None`` reads the table shipped with the package (``seglosses/data/evidence.csv``).
    Lines starting with ``#`` are metadata (``# key: value``): the command that made the table,
    its budget and date. ``rank_score`` is the loss's significance-ranking place in its regime,
    normalised to [0, 1] (0 = first).
    """
    if path is None:
        try:
            text = resources.files("seglosses").joinpath("data/evidence.csv").read_text()
        except (FileNotFoundError, OSError):
            return {"meta": {}, "rows": []}
    else:
        text = Path(path).read_text()
    meta, body = {}, []
    for line in text.splitlines():
        if line.startswith("#"):
            if ":" in line:
                k, v = line[1:].split(":", 1)
                meta[k.strip()] = v.strip()
        elif line.strip():
            body.append(line)
    rows = []
    reader = csv.DictReader(io.StringIO("\n".join(body)))
    missing = [c for c in EVIDENCE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"evidence table {path or 'seglosses/data/evidence.csv'}: missing columns {missing}")
    for r in reader:
        row = dict(r)
        for k in ("log10_bg_fg", "objects_per_case", "boundary_fraction", "thinness", "rank_score", "mean_dsc",
                  "mean_nsd"):
            row[k] = float(row[k])
        for k in ("spatial_dims", "n_cases"):
            row[k] = int(row[k])
        rows.append(row)
    return {"meta": meta, "rows": rows}


def _regime_distance(a: dict, b: dict) -> float:
    """Distance between two regimes: decades of imbalance, doublings of objects per case (/2),
    doublings of thinness, and 1 for another dimensionality."""
    d = (a["log10_bg_fg"] - b["log10_bg_fg"]) ** 2
    d += ((math.log2(1 + a["objects_per_case"]) - math.log2(1 + b["objects_per_case"])) / 2.0) ** 2
    d += (math.log2(max(a["thinness"], 0.1)) - math.log2(max(b["thinness"], 0.1))) ** 2
    d += 1.0 if int(a["spatial_dims"]) != int(b["spatial_dims"]) else 0.0
    return math.sqrt(d)


def nearest_regimes(regime: dict, evidence: dict, k: int = 2) -> List[dict]:
    """The ``k`` evidence regimes nearest to ``regime``: ``[{"regime", "distance", "weight"}]``."""
    seen: Dict[str, dict] = {}
    for row in evidence["rows"]:
        seen.setdefault(row["regime"], row)
    scored = sorted(((_regime_distance(regime, r), name) for name, r in seen.items()))[:k]
    weights = [1.0 / (d + 0.1) for d, _ in scored]
    total = sum(weights) or 1.0
    return [
        {"regime": name, "distance": round(d, 3), "weight": round(w / total, 3)}
        for (d, name), w in zip(scored, weights)
    ]


def _base(spec: str) -> str:
    return spec.split("(", 1)[0].strip()


def _score(loss: str, nearest: List[dict], evidence: dict):
    """Weighted mean rank score of ``loss`` (matched by its base name) in the nearest regimes."""
    got, wsum, parts = 0.0, 0.0, []
    for n in nearest:
        rows = [r for r in evidence["rows"] if r["regime"] == n["regime"] and _base(r["loss"]) == _base(loss)]
        if not rows:
            continue
        s = min(r["rank_score"] for r in rows)
        dsc = max(r["mean_dsc"] for r in rows)
        got += n["weight"] * s
        wsum += n["weight"]
        n_losses = len({r["loss"] for r in evidence["rows"] if r["regime"] == n["regime"]})
        place = 1 + round(s * (n_losses - 1))
        parts.append(f"{n['regime']}: place {place} of {n_losses}, mean DSC {dsc:.3f}")
    if not wsum:
        return None, ""
    return got / wsum, "measured (seglosses evidence, nearest regimes): " + "; ".join(parts)


# ----------------------------------------------------------------------------------------------
# Rules
# ----------------------------------------------------------------------------------------------


def _fmt_ratio(r: float) -> str:
    return f"{r:.0f}:1" if r >= 10 else f"{r:.1f}:1"


def _rules(profile: dict, regime: dict, registered: Sequence[str]) -> List[Candidate]:
    ratio = regime["bg_fg_ratio"]
    hard = regime["hardest_class"]
    rt = f"BG:FG {_fmt_ratio(ratio)} for '{hard}'"
    absent = regime["absent_fraction"]
    cands: List[Candidate] = []

    def add(loss: str, reason: str, prior: float) -> None:
        if _base(loss) not in registered:
            return
        for c in cands:
            if c.loss == loss:
                c.reasons.append(reason)
                c.prior = max(c.prior, prior)
                return
        cands.append(Candidate(loss, [reason], prior=prior))

    batch = absent >= 0.1
    base = f"{BASELINE}(dice.batch=true)" if batch else BASELINE
    add(base, f"baseline: Dice + CE is nnU-Net's default and among the most robust losses ({MA}, sec. 6)", 0.0)
    if batch:
        add(base, f"batch Dice: a class is absent from {absent:.0%} of the cases, where per-sample Dice "
                  "is undefined or unstable (nnU-Net's batch Dice)", 0.0)

    if ratio >= 100:
        add("dice_topk(topk.k=10)", f"{rt} is highly imbalanced: DiceTopK-10% ranked first overall and in "
                                    f"every metric set ({MA}, Fig. 10-11); TopK-% beats TopK-threshold", 3.0)
        add("dice_focal", f"{rt}: focal terms suit highly imbalanced data ({JADON}); DiceFocal is second "
                          f"among the compound losses ({MA}, Fig. 10)", 2.0)
    else:
        add("dice", f"{rt} is mildly imbalanced: the Dice family works well on mildly skewed data ({JADON})", 2.0)
        add("dice_topk(topk.k=10)", f"DiceTopK-10% is the most robust loss across tasks ({MA}, Fig. 10); "
                                    f"TopK alone failed on the mildly imbalanced liver task ({MA}, sec. 4)", 1.5)
        if ratio < 20 and regime["classes"] == 1:
            add("combo", f"{rt}: Combo (Dice + BCE) targets lightly imbalanced binary data ({JADON})", 1.0)

    small = regime["small_object_voxels"]
    many = regime["objects_per_case"]
    if ratio >= 100 and (small < 50 or many >= 3):
        why = []
        if small < 50:
            why.append(f"the smallest objects (10th percentile) have {small:.0f} voxels")
        if many >= 3:
            why.append(f"a median of {many:.0f} objects per case")
        add("focal_tversky", f"{' and '.join(why)}: Tversky weights false negatives (beta 0.7) and the focal "
                             f"exponent favours hard, small regions ({JADON}; Abraham & Khan 2019)", 2.5)
    elif ratio >= 300:
        add("tversky", f"{rt}: Tversky's false-negative weight (beta 0.7) helps recall of small structures "
                       f"({JADON}; Salehi et al. 2017)", 1.5)

    thin = regime["thinness"]
    if thin >= THIN:
        tb = (f"{regime['boundary_fraction']:.0%} of the voxels of the thinnest class lie on its boundary, "
              f"{thin:.1f}x a compact object of its size (thin structure)")
        if "skeleton_recall" in registered:
            add("dice_ce+skeleton_recall", f"{tb}: skeleton recall preserves connectivity of thin structures "
                                           "at almost no cost (Kirchhoff et al. 2024)", 2.5)
        if "dice_cldice" in registered:
            add("dice_cldice", f"{tb}: clDice rewards topology-preserving segmentations of tubular "
                               "structures (Shit et al. 2021)", 2.0)
        add("dice_bd", f"{tb}: boundary-aware losses gain most on boundary metrics (NSD, HD95); DiceBD "
                       f"ranks 2nd on HD95 ({MA}, sec. 5.1)", 1.5)
    elif ratio >= 100:
        add("dice_bd", f"{rt}: DiceBD/DiceHD are among the top compound losses and gain most on NSD and "
                       f"HD95 ({MA}, sec. 5.1; Kervadec et al. 2021)", 1.0)

    if regime["classes"] >= 3 and regime["ratio_spread"] >= 10:
        add("dice_ce(dice.batch=true)" if not batch else base,
            f"{regime['classes']} classes whose BG:FG spans a factor {regime['ratio_spread']:.0f}: batch Dice "
            f"pools each class over the batch; GDice is not recommended for multi-class tasks ({MA}, sec. 6)", 0.5)
    elif regime["classes"] == 1 and ratio >= 100:
        add("gdice", f"binary task, {rt}: generalized Dice did well on the binary tasks ({MA}, sec. 6; "
                     "Sudre et al. 2017)", 0.5)
    return cands


def shortlist(profile: dict, *, evidence: Optional[dict] = None, max_losses: int = 6) -> dict:
    """Shortlist 3-6 loss specs for ``profile`` (see the module docstring for the sources).

    Candidates come from the rules; measured evidence (the nearest regimes of the evidence table)
    orders them (lower mean rank score first; candidates without evidence follow, ordered by how
    specific their rule is). The baseline is always kept. Returns ``{"regime", "evidence",
    "shortlist"}`` with ``shortlist`` a list of :class:`Candidate`.
    """
    from .registry import list_losses

    if not 3 <= max_losses <= 6:
        raise ValueError(f"max_losses: expected 3 to 6, got {max_losses!r}")
    registered = list_losses()
    regime = regime_of(profile)
    cands = _rules(profile, regime, registered)
    evidence = load_evidence() if evidence is None else evidence
    nearest = nearest_regimes(regime, evidence) if evidence["rows"] else []
    for c in cands:
        c.evidence_score, c.evidence_note = _score(c.loss, nearest, evidence) if nearest else (None, "")
    baseline = cands[0]
    others = sorted(
        cands[1:],
        key=lambda c: (c.evidence_score is None, c.evidence_score if c.evidence_score is not None else 0.0, -c.prior),
    )
    # measured-best losses not suggested by a rule join when there is room
    if nearest:
        pool = {}
        for n in nearest:
            for r in evidence["rows"]:
                if r["regime"] == n["regime"]:
                    pool.setdefault(r["loss"], None)
        have = {_base(c.loss) for c in cands}
        extra = []
        for loss in pool:
            if _base(loss) in have or _base(loss) not in registered:
                continue
            s, note = _score(loss, nearest, evidence)
            if s is not None and s <= 0.25:
                c = Candidate(loss, [f"top quarter of the measured ranking in the nearest regimes"], s, note)
                extra.append(c)
        extra.sort(key=lambda c: c.evidence_score)
        others = others + extra
        others.sort(key=lambda c: (c.evidence_score is None, c.evidence_score or 0.0, -c.prior))
    chosen = [baseline] + others[: max_losses - 1]
    src = evidence["meta"].get("command", "") if evidence["rows"] else ""
    return {
        "regime": regime,
        "evidence": {"source": src, "date": evidence["meta"].get("date", ""), "nearest": nearest},
        "shortlist": chosen,
    }


# ----------------------------------------------------------------------------------------------
# The command's steps
# ----------------------------------------------------------------------------------------------


def load_data(data: str, spatial_dims: Optional[int] = None, n_cases: int = 40, seed: int = 0):
    """A built-in task name (``liver``, ...) or a dataset folder, as ``seglosses bench`` reads them."""
    from .bench.synthetic import TASKS, make_task

    if data in TASKS:
        return make_task(data, n_cases=n_cases, spatial_dims=spatial_dims or 2, seed=seed)
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(
            f"DATA: {data!r} is neither a built-in task ({', '.join(sorted(TASKS))}) nor an existing folder"
        )
    from .bench.data_layouts import load_dataset

    return load_dataset(path, spatial_dims=spatial_dims)


def recommend(dataset, *, evidence: Optional[dict] = None, max_losses: int = 6) -> dict:
    """Profile ``dataset`` and shortlist losses for it; the ``--json`` document (``confirmed`` None)."""
    from .bench.profile import profile_dataset

    profile = profile_dataset(dataset)
    sl = shortlist(profile, evidence=evidence, max_losses=max_losses)
    return {
        "profile": profile,
        "regime": sl["regime"],
        "evidence": sl["evidence"],
        "shortlist": [c.to_dict() for c in sl["shortlist"]],
        "confirmed": None,
    }


def format_recommendation(doc: dict) -> List[str]:
    """The human-readable text of ``seglosses recommend``."""
    from .bench.profile import format_profile

    lines = ["Profile", *format_profile(doc["profile"]), "", "Shortlist (first: the baseline)"]
    for i, c in enumerate(doc["shortlist"]):
        score = "" if c["evidence_score"] is None else f"  [measured rank score {c['evidence_score']:.2f}]"
        lines.append(f"  {i + 1}. {c['loss']}{score}")
        for r in c["reasons"]:
            lines.append(f"       - {r}")
    ev = doc["evidence"]
    if ev["nearest"]:
        near = ", ".join(f"{n['regime']} (distance {n['distance']})" for n in ev["nearest"])
        lines += ["", f"Evidence: nearest measured regimes {near}; table made by `{ev['source']}` ({ev['date']})"]
    else:
        lines += ["", "Evidence: no measured evidence table found; the order follows the papers' findings only"]
    conf = doc.get("confirmed")
    if conf:
        lines += ["", "Confirmation on your data", *(f"  {x}" for x in conf.get("summary", []))]
    else:
        loss_arg = ",".join(c["loss"] for c in doc["shortlist"])
        lines += ["", "Confirm on your data: seglosses recommend DATA --confirm --budget 20m",
                  f"  (or: seglosses bench --data DATA --losses '{loss_arg}')"]
    return lines


def confirm(doc: dict, data: str, *, out: str, budget: Optional[str] = None, spatial_dims=None,
            device: str = "cpu", extra_args: Sequence[str] = (), quiet: bool = False) -> dict:
    """Run ``seglosses bench`` on ``data`` with the shortlist and report the winner.

    The bench runs with ``--resume`` (an interrupted confirmation continues where it stopped) and
    ``--budget`` when given (the bench's planner fits the grid into it). The recommendation
    (profile, shortlist and reasons) is then stored with the results (meta key
    ``recommendation``) and the report is rewritten, so its "What to use" section shows them.
    Returns ``{"out", "report", "winner", "baseline", "significant", "p_value", "ranking",
    "mean_dsc", "summary"}`` (:func:`summarise_confirmation`).
    """
    from .bench.store import ResultStore
    from .bench.synthetic import TASKS
    from .cli import main

    losses = ",".join(c["loss"] for c in doc["shortlist"])
    argv = ["bench", "--losses", losses, "--out", str(out), "--device", device, "--resume", "--no-report"]
    argv += ["--tasks", data] if data in TASKS else ["--data", str(data)]
    if budget:
        argv += ["--budget", budget]
    if spatial_dims:
        argv += ["--spatial-dims", str(spatial_dims)]
    if quiet:
        argv += ["--quiet"]
    argv += list(extra_args)
    rc = main(argv)
    if rc != 0:
        raise RuntimeError(f"--confirm: seglosses {' '.join(argv)} exited with status {rc}")
    with ResultStore(out) as store:
        store.set_meta("recommendation", {k: _jsonable(doc[k]) for k in ("profile", "regime", "evidence", "shortlist")})
    main(["report", str(out)])
    return summarise_confirmation(out, baseline=doc["shortlist"][0]["loss"])


def summarise_confirmation(out, baseline: str) -> dict:
    """Winner, significance against ``baseline`` and the ranking, from a bench OUT folder.

    Per-case metrics come from the results layer (the selected learning rate, every test case of
    every fold), averaged over seeds before the tests, as the bench's own ranking does.
    """
    from .bench.results import load_results
    from .ranking import significance_ranking, wilcoxon_signed_rank_pvalue

    cases = load_results(out).cases
    cases = cases.groupby(["method", "task", "case"], as_index=False)[["dsc", "nsd"]].mean()
    ranking = significance_ranking(cases, method="method", case="case", task="task",
                                   metrics={"dsc": "higher", "nsd": "higher"})
    order = list(ranking.index)
    winner = order[0]
    top = ranking["rank_score"].max()
    leaders = [m for m in order if ranking.loc[m, "rank_score"] == top]
    if baseline in leaders:  # a tie with the baseline: the baseline stays the choice
        winner = baseline
    means = cases.groupby("method")["dsc"].mean()
    p, n_pairs, significant = None, 0, False
    if winner != baseline and baseline in means.index:
        piv = cases.pivot_table(index=["task", "case"], columns="method", values="dsc")
        pair = piv[[winner, baseline]].fillna(0.0)
        n_pairs = len(pair)
        if n_pairs:
            p = float(wilcoxon_signed_rank_pvalue(pair[winner].to_numpy(), pair[baseline].to_numpy()))
            significant = bool(p < 0.05)
    summary = [f"winner: {winner} (mean DSC {means[winner]:.3f}; ranking of {len(order)} losses: {', '.join(order)})"]
    if winner == baseline:
        summary.append(f"the baseline {baseline} ranks first (alone or tied): nothing on the shortlist beat it on your data")
    elif p is not None:
        word = "significantly" if significant else "not significantly"
        summary.append(
            f"{winner} is {word} better than the baseline {baseline} on per-case DSC "
            f"(one-sided Wilcoxon signed-rank p = {p:.3g}, {n_pairs} cases; baseline mean DSC {means[baseline]:.3f})"
        )
    report = str(Path(out) / "report.html")
    summary.append(f"full report: {report}")
    return {
        "out": str(out),
        "report": report,
        "winner": winner,
        "baseline": baseline,
        "significant": significant,
        "p_value": p,
        "ranking": order,
        "mean_dsc": {k: float(v) for k, v in means.items() if math.isfinite(v)},
        "summary": summary,
    }


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------


def configure_recommend(parser) -> None:
    parser.add_argument("data", metavar="DATA", help="a built-in task name or a dataset folder (as seglosses bench --data)")
    parser.add_argument("--dims", type=int, choices=(2, 3), default=None,
                        help="built-in task: 2 (default) or 3; folder of volumes: 2 trains on slices")
    parser.add_argument("--max-losses", type=int, default=6, help="shortlist length, 3-6 (default 6)")
    parser.add_argument("--evidence", default=None, help="an evidence table CSV (default: the one shipped)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                        help="write the result as JSON to FILE (or stdout with no FILE)")
    parser.add_argument("--confirm", action="store_true", help="run seglosses bench with the shortlist on DATA")
    parser.add_argument("--budget", default=None, help="time budget of the confirmation (e.g. 20m, 1h)")
    parser.add_argument("--out", default="seglosses_recommend", help="output folder of the confirmation")
    parser.add_argument("--device", default="cpu", help="device of the confirmation (cpu, cuda)")


def run_recommend(args) -> int:
    dataset = load_data(args.data, spatial_dims=args.dims)
    evidence = load_evidence(args.evidence) if args.evidence else None
    doc = recommend(dataset, evidence=evidence, max_losses=args.max_losses)
    to_stdout = args.json == "-"
    if not to_stdout:
        print("\n".join(format_recommendation(doc)), flush=True)
    if args.confirm:
        if to_stdout:  # keep stdout pure JSON: the bench's own output goes to stderr
            with contextlib.redirect_stdout(sys.stderr):
                doc["confirmed"] = confirm(doc, args.data, out=args.out, budget=args.budget,
                                           spatial_dims=args.dims, device=args.device)
        else:
            doc["confirmed"] = confirm(doc, args.data, out=args.out, budget=args.budget,
                                       spatial_dims=args.dims, device=args.device)
        if not to_stdout:
            print("\n".join(["", "Confirmation on your data", *(f"  {x}" for x in doc["confirmed"]["summary"])]))
    if args.json:
        text = json.dumps(_jsonable(doc), indent=2, allow_nan=False)
        if to_stdout:
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


def _jsonable(x):
    """``inf``/``nan`` become ``null`` (the schema's "never occurs"), containers recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x
