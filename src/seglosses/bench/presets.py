"""Benchmark presets, as data: which losses, tasks, learning rates and training budget a grid uses.

A grid entry is a :class:`LossConfig`: a *name* (the label in tables and the key in the results
database), a registry *spec* (``"topk"``, ``"dice+ce"``, ``"0.5*dice+ce"``) and the *options*
passed to :func:`seglosses.build_loss` (``{"k": 30}``; for a compound, one dict per term:
``{"topk": {"k": 30}}``). The same spec with different options is a different configuration, as
in Ma et al. (2021) Tables 3 and 4 (``topk_k30``, ``dice_sample_squared``).

Three presets:

``quick``
    ``seglosses bench`` with no argument: 12 losses on 2 built-in 2D tasks (liver: mild imbalance,
    pancreas: high imbalance), one learning rate,
    a tiny DynUNet, a few hundred iterations -- a CPU run of a few minutes (measured numbers in
    ``docs/bench.md``). It shows the machinery and a first ranking; it is not the paper.
``paper``
    Ma et al.'s protocol: the 20 losses of their Table 2 plus the TopK (Table 3) and Dice
    (Table 4) variants -- 27 configurations in their Fig. 10 -- plus the TopK threshold variants
    of Table 3 and every other registered loss, on their 4 tasks (liver, tumor, pancreas,
    multiorgan) in 3D, 3 learning rates {3e-3, 3e-4, 3e-5}, nnU-Net-sized network, 1000 epochs
    of 250 iterations with batch 2, with deep supervision (DynUNet's heads, nnU-Net's weights), as
    nnU-Net trained for Ma et al. Meant for a GPU or a cluster.
``topology``
    Thin structures where topology matters: the built-in ``vessels`` task (retina-like vessel
    trees) with Dice / CE baselines against ``cldice``, ``dice_cldice`` and
    ``dice+ce+skeleton_recall``; the report adds the clDice and Betti-number errors of the
    predictions (:mod:`seglosses.metrics.topology`). A CPU run of a few minutes.

Loss names differ between libraries, so a preset lists *candidate* registry names per
configuration (``("gdice", "generalized_dice")``); the first registered one is used, and a
configuration none of whose names is registered in this build is skipped with a warning
(:func:`resolve_preset_losses`).
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

__all__ = [
    "LossConfig",
    "Preset",
    "PRESETS",
    "QUICK",
    "PAPER",
    "NAMED_CONFIGS",
    "get_preset",
    "parse_losses",
    "resolve_preset_losses",
]


@dataclass(frozen=True)
class LossConfig:
    """One loss configuration of a grid.

    Attributes
    ----------
    name : str
        Label in tables and key in the results (unique within a grid).
    spec : str
        Registry spec: a name or a weighted sum (``"0.5*dice+ce"``).
    options : dict
        Keyword arguments of :func:`seglosses.build_loss`.
    """

    name: str
    spec: str
    options: Dict = field(default_factory=dict)

    def build(self):
        """The loss module (``seglosses.build_loss(spec, **options)``)."""
        from seglosses import build_loss

        return build_loss(self.spec, **dict(self.options))

    def options_json(self) -> str:
        return json.dumps(self.options, sort_keys=True)

    def to_dict(self) -> dict:
        return {"name": self.name, "spec": self.spec, "options": dict(self.options)}

    def __hash__(self) -> int:  # options is a dict
        return hash((self.name, self.spec, self.options_json()))


@dataclass(frozen=True)
class Preset:
    """Everything a grid needs besides the output folder.

    ``losses`` holds ``(name, candidate specs, options)`` entries resolved at run time against
    the registry (:func:`resolve_preset_losses`).
    """

    name: str
    description: str
    tasks: Tuple[str, ...]
    losses: Tuple[Tuple[str, Tuple[str, ...], Dict], ...]
    lrs: Tuple[float, ...]
    iterations: int
    epoch_length: int
    batch_size: int
    patch_size: int
    image_size: int
    n_cases: int
    spatial_dims: int
    model_size: str
    plateau_patience: int
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    overlap: float = 0.25
    workers: int = 1
    #: train with DynUNet's deep-supervision heads (nnU-Net's weights); ``--deep-supervision``
    deep_supervision: bool = False


def _c(name: str, specs, options: Optional[dict] = None):
    specs = (specs,) if isinstance(specs, str) else tuple(specs)
    return (name, specs, dict(options or {}))


# ----------------------------------------------------------------------------------------------
# Ma et al. (2021): Table 2 (20 losses), Table 3 (TopK variants), Table 4 (Dice variants)
# ----------------------------------------------------------------------------------------------

#: Ma et al.'s default Dice is nnU-Net's batch Dice without squares (their footnote 12).
_MA_DICE = {"batch": True, "squared": False}

MA_TABLE2 = (
    _c("asym", ("asym", "asymmetric")),
    _c("ce", "ce"),
    _c("dice", "dice", _MA_DICE),
    _c("dice_bd", ("dice_bd", "dice_boundary")),
    _c("dice_ce", "dice_ce", {"dice": _MA_DICE}),
    _c("dice_focal", "dice_focal", {"dice": _MA_DICE}),
    _c("dice_hd", ("dice_hd", "dice_hausdorff")),
    _c("dice_topk", "dice_topk", {"dice": _MA_DICE, "topk": {"k": 10}}),
    _c("ell", ("ell", "exp_log")),
    _c("focal", "focal"),
    _c("focal_tversky", "focal_tversky"),
    _c("gdice", ("gdice", "generalized_dice", "gdl")),
    _c("iou", ("iou", "jaccard")),
    _c("lovasz", ("lovasz", "lovasz_softmax")),
    _c("pce", ("pce", "penalty_ce", "distance_ce", "dpce")),
    _c("pgdice", ("pgdice", "penalty_gdice", "penalty_generalized_dice")),
    _c("ss", ("ss", "sensitivity_specificity")),
    _c("topk", "topk", {"k": 10}),
    _c("tversky", "tversky"),
    _c("wce", "wce"),
)
MA_TABLE3_K = tuple(_c(f"topk_k{k}", "topk", {"k": float(k)}) for k in (30, 50, 70, 90))
MA_TABLE3_T = tuple(
    _c(f"topk_t{t:.1f}", "topk_threshold", {"threshold": t}) for t in (0.1, 0.3, 0.5, 0.7, 0.9)
)
MA_TABLE4 = (
    _c("dice_batch_squared", "dice", {"batch": True, "squared": True}),
    _c("dice_sample", "dice", {"batch": False, "squared": False}),
    _c("dice_sample_squared", "dice", {"batch": False, "squared": True}),
)
#: the 27 configurations ranked in Ma et al. Fig. 10
MA_FIG10 = MA_TABLE2 + MA_TABLE3_K + MA_TABLE4

#: named configurations usable in ``--losses`` (``--losses topk_k30,dice_sample``)
NAMED_CONFIGS: Dict[str, Tuple[Tuple[str, ...], Dict]] = {
    name: (specs, opts) for name, specs, opts in MA_TABLE3_K + MA_TABLE3_T + MA_TABLE4
}

QUICK_LOSSES = (
    _c("ce", "ce"),
    _c("wce", "wce"),
    _c("focal", "focal"),
    _c("topk", "topk", {"k": 10}),
    _c("dice", "dice"),
    _c("iou", ("iou", "jaccard")),
    _c("tversky", "tversky"),
    _c("dice_ce", "dice_ce"),
    _c("dice_focal", "dice_focal"),
    _c("dice_topk", "dice_topk"),
    _c("gdice", ("gdice", "generalized_dice", "gdl")),
    _c("focal_tversky", "focal_tversky"),
)

QUICK = Preset(
    name="quick",
    description=(
        "12 losses x 2 built-in 2D tasks (liver, pancreas), lr 3e-3 only, tiny DynUNet (8-16-32-64 filters), "
        "64 px images, 300 iterations of batch 8 per run; CPU, a few minutes"
    ),
    tasks=("liver", "pancreas"),
    losses=QUICK_LOSSES,
    lrs=(3e-3,),
    iterations=300,
    epoch_length=25,
    batch_size=8,
    patch_size=64,
    image_size=64,
    n_cases=40,
    spatial_dims=2,
    model_size="tiny",
    plateau_patience=3,
    workers=2,
)

PAPER = Preset(
    name="paper",
    description=(
        "Ma et al. 2021: 27 configurations of Fig. 10 + TopK threshold variants + every other registered loss, "
        "tasks liver, tumor, pancreas, multiorgan (3D), lr in {3e-3, 3e-4, 3e-5}, nnU-Net-sized DynUNet, "
        "1000 epochs x 250 iterations, batch 2; GPU or cluster"
    ),
    tasks=("liver", "tumor", "pancreas", "multiorgan"),
    losses=MA_FIG10 + MA_TABLE3_T,
    lrs=(3e-3, 3e-4, 3e-5),
    iterations=1000 * 250,
    epoch_length=250,
    batch_size=2,
    patch_size=64,
    image_size=64,
    n_cases=100,
    spatial_dims=3,
    model_size="nnunet",
    plateau_patience=50,
    deep_supervision=True,  # as nnU-Net trained for Ma et al.
)

#: the topology benchmark: Dice/CE baselines against the topology-aware losses on thin vessels
TOPOLOGY_LOSSES = (
    _c("ce", "ce"),
    _c("dice", "dice"),
    _c("dice_ce", "dice_ce"),
    _c("cldice", "cldice"),
    _c("dice_cldice", "dice_cldice"),
    _c("dice_ce_skeleton_recall", "dice+ce+skeleton_recall"),
)

TOPOLOGY = Preset(
    name="topology",
    description=(
        "6 losses (ce, dice, dice_ce vs cldice, dice_cldice, dice+ce+skeleton_recall) on the built-in 'vessels' task "
        "(retina-like vessel trees, 128 px, 2D), lr 3e-3, tiny DynUNet, 400 iterations of batch 8; the report adds "
        "clDice and Betti-number errors of the predictions; CPU, a few minutes"
    ),
    tasks=("vessels",),
    losses=TOPOLOGY_LOSSES,
    lrs=(3e-3,),
    iterations=400,
    epoch_length=25,
    batch_size=8,
    patch_size=64,
    image_size=128,
    n_cases=40,
    spatial_dims=2,
    model_size="tiny",
    plateau_patience=3,
    workers=2,
)

PRESETS = {"quick": QUICK, "paper": PAPER, "topology": TOPOLOGY}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"--preset: unknown preset {name!r}; valid presets are {sorted(PRESETS)}")
    return PRESETS[name]


def _first_registered(specs: Sequence[str]) -> Optional[str]:
    from seglosses import list_losses
    from seglosses.registry import parse_spec

    registered = set(list_losses())
    for spec in specs:
        try:
            if spec in registered or parse_spec(spec):
                return spec
        except ValueError:
            continue
    return None


def resolve_preset_losses(
    preset: Preset, *, include_unlisted: Optional[bool] = None
) -> Tuple[List[LossConfig], List[str]]:
    """The preset's configurations available in this build, and a list of warnings.

    For the ``paper`` preset (``include_unlisted`` defaults to True there), every registered
    loss that no configuration uses yet is appended with its default options, so the paper
    preset runs *every registered loss*.
    """
    if include_unlisted is None:
        include_unlisted = preset.name == "paper"
    out: List[LossConfig] = []
    warnings: List[str] = []
    used = set()
    for name, specs, opts in preset.losses:
        spec = _first_registered(specs)
        if spec is None:
            warnings.append(
                f"preset {preset.name!r}: loss {name!r} ({' / '.join(specs)}) is not registered in this build; skipped"
            )
            continue
        out.append(LossConfig(name, spec, _checked_options(spec, opts)))
        used.add(spec)
    if include_unlisted:
        from seglosses import list_losses

        names = {c.name for c in out}
        for n in list_losses():
            if n not in used and n not in names:
                out.append(LossConfig(n, n, {}))
    return out, warnings


def _unknown_option(loss: str, key: str, valid) -> ValueError:
    valid = sorted(valid)
    near = difflib.get_close_matches(key, valid, n=3)
    hint = f"did you mean {' or '.join(repr(n) for n in near)}? " if near else ""
    return ValueError(f"loss {loss!r}: unknown option {key!r}; {hint}valid options are {valid}")


def _checked_options(spec: str, options: dict) -> dict:
    """``options`` after checking every key against the loss (an error names the loss, the bad
    option and the nearest valid names).

    A single loss takes its own options; a compound (``dice_ce``, ``0.5*dice+ce``) takes its
    top-level options and one dict per term (``{"dice": {"batch": True}}``) whose keys are that
    term's options.
    """
    from seglosses.registry import loss_info, parse_spec

    info = loss_info(spec) if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", spec) else None
    if info is not None and info.spec is None:
        for key in options:
            if key not in info.options:
                raise _unknown_option(spec, key, info.options)
        return dict(options)
    terms = [t for _, t in parse_spec(spec)]
    valid = set(terms) | set(info.options if info is not None else ())
    for key, value in options.items():
        if key not in valid:
            raise _unknown_option(spec, key, valid)
        if key in terms:
            if not isinstance(value, dict):
                raise TypeError(
                    f"loss {spec!r}: options of term {key!r} must be a dict of that term's options, "
                    f"got {value!r} ({type(value).__name__})"
                )
            term_options = loss_info(key).options
            for sub in value:
                if sub not in term_options:
                    raise _unknown_option(f"{spec}: {key}", sub, term_options)
    return dict(options)


# ----------------------------------------------------------------------------------------------
# --losses parsing
# ----------------------------------------------------------------------------------------------

_OPT_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.+?)\s*$")


def _split_top(text: str, sep: str = ",") -> List[str]:
    """Split on ``sep`` outside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _parse_value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low == "none":
            return None
        return text


def _parse_options(text: str, token: str) -> dict:
    """``"k=30, dice.batch=true"`` -> ``{"k": 30, "dice": {"batch": True}}``."""
    opts: dict = {}
    for item in _split_top(text):
        if not item.strip():
            continue
        m = _OPT_ITEM.match(item)
        if not m:
            raise ValueError(
                f"--losses: cannot parse option {item.strip()!r} in {token!r}; expected key=value"
            )
        key, value = m.group(1), _parse_value(m.group(2))
        if "." in key:
            term, sub = key.split(".", 1)
            opts.setdefault(term, {})[sub] = value
        else:
            opts[key] = value
    return opts


def parse_losses(text: str) -> List[LossConfig]:
    """Parse ``--losses``: a comma-separated list of

    * registered names (``dice``), wildcards over registered names (``dice*``);
    * named configurations of Ma et al.'s Tables 3-4 (``topk_k30``, ``dice_sample_squared``);
    * weighted sums (``0.5*dice+ce``);
    * any of these with options in parentheses: ``topk(k=30)``, ``dice_ce(dice.batch=true)``.

    Raises ``ValueError`` listing the valid names when a name is unknown or a wildcard matches
    nothing. Duplicate names are dropped (first wins).
    """
    from seglosses import list_losses
    from seglosses.registry import parse_spec

    if not text or not text.strip():
        raise ValueError("--losses: expected a comma-separated list of loss names, got an empty string")
    registered = list_losses()
    valid_hint = f"registered losses: {', '.join(registered)}; named configurations: {', '.join(sorted(NAMED_CONFIGS))}"
    out: List[LossConfig] = []
    for token in _split_top(text):
        token = token.strip()
        if not token:
            continue
        m = re.fullmatch(r"(?P<body>[^()]+?)\s*(?:\((?P<opts>.*)\))?", token)
        if not m:
            raise ValueError(f"--losses: cannot parse {token!r}")
        body, opts_text = m.group("body").strip(), m.group("opts")
        opts = _parse_options(opts_text, token) if opts_text is not None else {}
        if any(ch in body for ch in "*?[") and "+" not in body and not re.search(r"\d\s*\*", body):
            matches = fnmatch.filter(registered, body)
            if not matches:
                raise ValueError(f"--losses: wildcard {body!r} matches no loss; {valid_hint}")
            for n in matches:
                out.append(LossConfig(n, n, dict(opts)))
            continue
        if body in NAMED_CONFIGS and body not in registered:
            specs, base = NAMED_CONFIGS[body]
            spec = _first_registered(specs)
            if spec is None:
                raise ValueError(
                    f"--losses: configuration {body!r} needs loss {specs[0]!r}, not registered; {valid_hint}"
                )
            merged = dict(base)
            merged.update(opts)
            out.append(LossConfig(body if not opts else token, spec, merged))
            continue
        try:
            parse_spec(body)
        except ValueError as exc:
            raise ValueError(
                f"--losses: {exc}; named configurations: {', '.join(sorted(NAMED_CONFIGS))}"
            ) from None
        out.append(LossConfig(token if opts else body, body, opts))
    seen, unique = set(), []
    for cfg in out:
        if cfg.name not in seen:
            seen.add(cfg.name)
            unique.append(cfg)
    if not unique:
        raise ValueError(f"--losses: no loss given; {valid_hint}")
    for cfg in unique:  # validate options now, before any training
        try:
            check_option_types(cfg)
            cfg.build()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"--losses: {cfg.name}: {exc}") from None
    return unique


def _check_value(loss: str, key: str, value, default) -> None:
    if default is None or value is None:
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        want = "true or false"
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        want = "a number"
    elif isinstance(default, str):
        ok = isinstance(value, str)
        want = "a string"
    else:
        return
    if not ok:
        raise ValueError(f"option {key!r} of {loss!r} expects {want} (default {default!r}), got {value!r}")


def check_option_types(cfg: LossConfig) -> None:
    """Options whose default is a bool / number / string must get one (``k=oops`` is an error)."""
    from seglosses.registry import loss_info, parse_spec

    try:
        info = loss_info(cfg.spec)
    except ValueError:
        info = None
    if info is not None and info.spec is None:
        for k, v in cfg.options.items():
            _check_value(cfg.spec, k, v, info.defaults.get(k))
        return
    for _, term in parse_spec(cfg.spec):
        opts = cfg.options.get(term, {})
        if isinstance(opts, dict):
            tinfo = loss_info(term)
            for k, v in opts.items():
                _check_value(term, k, v, tinfo.defaults.get(k))
