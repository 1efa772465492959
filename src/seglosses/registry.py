"""The loss registry: one decorator fills it, one factory builds from it.

A loss is written once, as a *core* function of a :class:`~seglosses._contract.Prepared` input::

    @register_loss("dice", category="region", paper="Milletari et al. 2016 ...", formula="1 - ...")
    def dice_loss(prep, *, smooth=1e-5, batch=False, reduction="mean"):
        ...

The decorator

* turns ``dice_loss`` into the public functional form
  ``dice_loss(logits, target, *, mode=None, from_logits=True, ignore_index=None, **options)``
  (the core stays reachable as ``dice_loss.core``);
* gives the thin ``torch.nn.Module`` form (``DiceLoss``), which stores the options and calls
  the same core, so module and functional forms cannot disagree. The module classes are real
  class definitions in the generated, checked-in :mod:`seglosses.losses._classes` (written by
  ``python scripts/gen_loss_classes.py``; a test fails when it differs from the registry); each
  binds itself to its registry entry (``class DiceLoss(SegLoss, registered_as="dice")``). A loss
  registered outside the package gets a class made on the fly (``class_name``);
* records metadata (:class:`LossInfo`): category, paper, formula, defaults read from the
  signature, supported modes, whether a distance map is needed.

``build_loss("0.5*dice+2*ce", dice={"batch": True})`` builds a weighted sum of registered terms
(:class:`seglosses.losses.compound.CompoundLoss`); ``list_losses("dice*")`` lists names with
fnmatch wildcards.
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ._checks import check_choice
from ._contract import MODES, Prepared, prepare

__all__ = [
    "LossInfo",
    "SegLoss",
    "register_loss",
    "register_compound",
    "build_loss",
    "list_losses",
    "loss_info",
    "parse_spec",
    "CONTRACT_ARGS",
    "FOREIGN_ARGS",
]

#: keyword arguments every loss accepts: they configure the input contract (``prepare``)
CONTRACT_ARGS = ("mode", "from_logits", "ignore_index")
CATEGORIES = ("distribution", "region", "boundary", "topology", "compound")


@dataclass(frozen=True)
class LossInfo:
    """Metadata of a registered loss (``seglosses.loss_info(name)``)."""

    name: str
    category: str
    paper: str
    formula: str
    defaults: Dict[str, Any]
    modes: Tuple[str, ...]
    needs_distance_map: bool = False
    call_args: Tuple[str, ...] = ()
    #: multiclass input read one class against the rest: a sigmoid per channel, not a softmax
    one_vs_rest: bool = False
    spec: Optional[str] = None  # named compounds: the weighted sum they stand for
    #: named compounds: builds the weight schedule the compound gets from build_loss(name)
    schedule_factory: Optional[Callable] = field(default=None, repr=False, compare=False)
    functional: Optional[Callable] = field(default=None, repr=False, compare=False)
    module: Optional[type] = field(default=None, repr=False, compare=False)
    summary: str = ""
    #: name of the module class (``DiceLoss``); ``aliases``: other importable names of it
    class_name: Optional[str] = None
    aliases: Tuple[str, ...] = ()

    @property
    def options(self) -> Tuple[str, ...]:
        """Every keyword accepted by ``build_loss(name, ...)``."""
        return tuple(self.defaults) + CONTRACT_ARGS


_REGISTRY: Dict[str, LossInfo] = {}
_STATE: Dict[str, bool] = {}


class SegLoss(nn.Module):
    """Base of the module forms: stores options, prepares the input, calls the core function.

    ``forward(logits, target, **call_kwargs)``; ``call_kwargs`` are per-call inputs such as a
    precomputed ``distance_map``. ``forward_prepared(prep)`` is used by compound losses so that
    terms sharing a contract share one softmax.
    """

    info: LossInfo
    _core: Callable

    def __init_subclass__(cls, registered_as: Optional[str] = None, **kwargs):
        """``class DiceLoss(SegLoss, registered_as="dice")`` binds the class to the registered
        loss ``"dice"``: its core function, its metadata, and ``build_loss("dice")``."""
        super().__init_subclass__(**kwargs)
        if registered_as is not None:
            info = _get(registered_as)
            if info.functional is None:
                raise ValueError(f"registered_as: {registered_as!r} is a named compound, not a single loss")
            cls._core = staticmethod(info.functional.core)
            cls.info = _replace(info, module=cls)
            _REGISTRY[registered_as] = cls.info

    def __init__(self, **kwargs):
        super().__init__()
        _check_kwargs(self.info, kwargs)
        contract = {k: kwargs.pop(k) for k in CONTRACT_ARGS if k in kwargs}
        self.contract = {"mode": None, "from_logits": True, "ignore_index": None, **contract}
        if self.contract["mode"] is not None:
            check_choice("mode", self.contract["mode"], self.info.modes)
        # options equal to the core's default are left to the core (and out of the repr)
        self.options = {k: v for k, v in kwargs.items() if not _is_default(v, self.info.defaults.get(k, _MISSING))}

    def prepare(self, logits: Tensor, target: Tensor) -> Prepared:
        prep = prepare(logits, target, **self.contract)
        if prep.mode not in self.info.modes:
            raise ValueError(f"mode: {self.info.name!r} supports {list(self.info.modes)}, got {prep.mode!r}")
        return prep

    def forward_prepared(self, prep: Prepared, **call_kwargs) -> Tensor:
        return type(self)._core(prep, **self.options, **call_kwargs)

    def forward(self, logits: Tensor, target: Tensor, **call_kwargs) -> Tensor:
        _check_call_kwargs(self.info, call_kwargs)
        return self.forward_prepared(self.prepare(logits, target), **call_kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Schedules hook (no-op for a plain loss)."""

    def extra_repr(self) -> str:
        items = {**{k: v for k, v in self.contract.items() if v is not None and k != "from_logits"}, **self.options}
        if not self.contract["from_logits"]:
            items["from_logits"] = False
        return ", ".join(f"{k}={v!r}" for k, v in items.items())


#: argument names of MONAI / smp / kornia losses -> what seglosses offers instead
FOREIGN_ARGS = {
    "to_onehot_y": (
        "nothing: label maps (N, *spatial) or (N, 1, *spatial), integer or float, are accepted as they are"
    ),
    "softmax": "mode='multiclass' (the default when C > 1)",
    "use_softmax": "mode='multiclass' (the default when C > 1)",
    "sigmoid": "mode='binary' (the default when C == 1) or mode='multilabel'",
    "other_act": "from_logits=False, passing the activated tensor instead of the logits",
    "squared_pred": "squared=True",
    "jaccard": (
        "the 'iou' loss (MONAI's jaccard=True with smooth_nr=a, smooth_dr=b is iou with "
        "smooth_nr=a/2, smooth_dr=b/2)"
    ),
    "weight": "class_weights=[...] (a weighted mean over the classes)",
    "lambda_dice": "a weighted spec such as build_loss('0.5*dice+2*ce')",
    "lambda_ce": "a weighted spec such as build_loss('0.5*dice+2*ce')",
    "lambda_focal": "a weighted spec such as build_loss('dice+0.5*focal')",
    "smooth_factor": "label_smoothing=... (on 'ce')",
}


def foreign_hint(unknown) -> str:
    """``"; 'softmax' is not a seglosses argument; the seglosses equivalent is ..."`` for the MONAI /
    smp / kornia names among ``unknown`` (empty string if none)."""
    hints = [
        f"{k!r} is not a seglosses argument; the seglosses equivalent is {FOREIGN_ARGS[k]}"
        for k in sorted(unknown)
        if k in FOREIGN_ARGS
    ]
    return ("; " + "; ".join(hints)) if hints else ""


_MISSING = object()
_PLAIN = (bool, int, float, str, type(None))


def _is_default(value: Any, default: Any) -> bool:
    """Whether an option equals its default (plain values only; a tensor or list never does)."""
    if value is default:
        return True
    return type(value) is type(default) and isinstance(value, _PLAIN) and value == default


def _check_kwargs(info: LossInfo, kwargs: dict) -> None:
    unknown = sorted(set(kwargs) - set(info.options))
    if unknown:
        import difflib

        close = sorted({m for k in unknown if k not in FOREIGN_ARGS for m in difflib.get_close_matches(k, info.options, n=3)})
        near = f"; did you mean {close}?" if close else ""
        raise ValueError(
            f"{info.name}: unknown argument(s) {unknown}{foreign_hint(unknown)}{near}; "
            f"valid arguments are {sorted(info.options)}"
        )
    _check_bool_options(kwargs)


#: switches that take True or False only (a string such as soft_label="no" would read as True)
BOOL_OPTIONS = ("batch", "ddp", "soft_label", "spatial_mean", "squared", "per_image", "alpha_foreground")


def _check_bool_options(kwargs: dict) -> None:
    for k in BOOL_OPTIONS:
        if k in kwargs and not isinstance(kwargs[k], bool):
            raise TypeError(f"{k}: expected True or False, got {kwargs[k]!r}")


def instantiate(info: LossInfo, kwargs: dict) -> "SegLoss":
    """``info.module(**kwargs)``, after checking the names (a ValueError that lists the valid ones)."""
    _check_kwargs(info, kwargs)
    return info.module(**kwargs)


def _check_call_kwargs(info: LossInfo, kwargs: dict) -> None:
    unknown = sorted(set(kwargs) - set(info.call_args))
    if unknown:
        raise ValueError(
            f"{info.name}: forward() got unknown keyword(s) {unknown}; "
            f"per-call inputs are {list(info.call_args) or 'none'}"
        )


def _camel(name: str) -> str:
    """The historical class name of a loss: ``"gdice"`` -> ``"GdiceLoss"`` (kept as an alias)."""
    return "".join(part.capitalize() for part in name.split("_")) + "Loss"


def register_loss(
    name: str,
    *,
    category: str,
    paper: str,
    formula: str,
    modes: Sequence[str] = MODES,
    needs_distance_map: bool = False,
    call_args: Sequence[str] = (),
    class_name: Optional[str] = None,
    aliases: Sequence[str] = (),
    one_vs_rest: bool = False,
) -> Callable[[Callable], Callable]:
    """Register a core loss function ``fn(prep: Prepared, *, **options) -> Tensor``.

    Returns the public functional form. ``call_args`` names keyword-only parameters of the core
    that are per-call inputs (e.g. ``distance_map``), not options. ``class_name`` names the
    module form as the paper does (``"GeneralizedDiceLoss"``; default: the CamelCase name plus
    ``Loss``); ``aliases`` are further importable names of it (the CamelCase name is always one).
    ``one_vs_rest``: in multiclass mode the loss applies a sigmoid per channel (one class against
    the rest), so ``from_logits=False`` expects per-class sigmoid probabilities.
    Losses of the package get their class in :mod:`seglosses.losses._classes`: after adding one,
    run ``python scripts/gen_loss_classes.py``.
    """
    check_choice("category", category, CATEGORIES)
    for m in modes:
        check_choice("modes", m, MODES)

    def decorator(core: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"name: loss {name!r} is already registered")
        sig = inspect.signature(core)
        params = list(sig.parameters.values())
        defaults = {
            p.name: p.default
            for p in params[1:]
            if p.kind is p.KEYWORD_ONLY and p.name not in call_args
        }
        doc = inspect.getdoc(core) or ""
        info = LossInfo(
            name=name,
            category=category,
            paper=paper,
            formula=formula,
            defaults=defaults,
            modes=tuple(modes),
            needs_distance_map=needs_distance_map,
            call_args=tuple(call_args),
            one_vs_rest=one_vs_rest,
            summary=doc.split("\n\n")[0].replace("\n", " "),
            class_name=class_name or _camel(name),
            aliases=tuple(dict.fromkeys(a for a in (*aliases, _camel(name)) if a != (class_name or _camel(name)))),
        )

        @functools.wraps(core)
        def functional(logits: Tensor, target: Tensor, *, mode=None, from_logits=True, ignore_index=None, **kwargs):
            _check_kwargs(info, {k: v for k, v in kwargs.items() if k not in call_args})
            prep = prepare(logits, target, mode=mode, from_logits=from_logits, ignore_index=ignore_index)
            if prep.mode not in info.modes:
                raise ValueError(f"mode: {name!r} supports {list(info.modes)}, got {prep.mode!r}")
            return core(prep, **kwargs)

        contract_params = [
            inspect.Parameter("logits", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Tensor),
            inspect.Parameter("target", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Tensor),
            inspect.Parameter("mode", inspect.Parameter.KEYWORD_ONLY, default=None),
            inspect.Parameter("from_logits", inspect.Parameter.KEYWORD_ONLY, default=True),
            inspect.Parameter("ignore_index", inspect.Parameter.KEYWORD_ONLY, default=None),
        ]
        functional.__signature__ = sig.replace(parameters=contract_params + params[1:])
        functional.core = core

        module = type(  # replaced by the generated class of seglosses.losses._classes when loaded
            info.class_name,
            (SegLoss,),
            {
                "__doc__": f"Module form of :func:`{core.__module__}.{core.__name__}` (registered as ``{name!r}``).\n\n{doc}",
                "__module__": "seglosses.losses",
                "info": None,
                "_core": staticmethod(core),
            },
        )
        info = _replace(info, functional=functional, module=module)
        module.info = info
        _REGISTRY[name] = info
        return functional

    return decorator


def _replace(info: LossInfo, **changes) -> LossInfo:
    from dataclasses import replace

    return replace(info, **changes)


def register_compound(
    name: str, spec: str, *, paper: str, formula: str, schedule_factory: Optional[Callable] = None
) -> None:
    """Register a named weighted sum of registered terms, e.g. ``register_compound("dice_ce", "dice+ce")``.

    ``schedule_factory``: a callable returning a weight schedule
    (:mod:`seglosses.losses.schedules`) that ``build_loss(name)`` attaches to the compound.
    """
    if name in _REGISTRY:
        raise ValueError(f"name: loss {name!r} is already registered")
    terms = _parse_spec(spec, load=False)  # its terms are registered before it
    modes = set(MODES)
    for _, term in terms:
        modes &= set(_get(term, load=False).modes)
    _REGISTRY[name] = LossInfo(
        name=name,
        category="compound",
        paper=paper,
        formula=formula,
        defaults={t: {} for _, t in terms},
        modes=tuple(m for m in MODES if m in modes),
        needs_distance_map=any(_get(t, load=False).needs_distance_map for _, t in terms),
        call_args=tuple(sorted({a for _, t in terms for a in _get(t, load=False).call_args})),
        spec=spec,
        schedule_factory=schedule_factory,
        summary=f"Weighted sum {spec}." + (" Scheduled weights (set_epoch)." if schedule_factory else ""),
    )


# ----------------------------------------------------------------------------- lookup

def _ensure_loaded() -> None:
    # Importing the functional modules runs their @register_loss decorators; the generated
    # module classes then bind themselves to the registry entries.
    if _STATE:  # loaded, or loading (a registration inside the import asks again)
        return
    _STATE["loading"] = True
    try:
        from . import functional  # noqa: F401
        from .losses import _classes  # noqa: F401
    except BaseException:
        _STATE.clear()
        raise
    _STATE["loaded"] = True


def _get(name: str, load: bool = True) -> LossInfo:
    if load:
        _ensure_loaded()
    if name not in _REGISTRY:
        raise ValueError(f"loss: unknown loss {name!r}; registered losses are {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def list_losses(pattern: str = "*", *, category: Optional[str] = None) -> List[str]:
    """Sorted registered names matching an fnmatch ``pattern`` (``"dice*"``), optionally one category."""
    _ensure_loaded()
    if category is not None:
        check_choice("category", category, CATEGORIES)
    return sorted(
        n for n, info in _REGISTRY.items() if fnmatch.fnmatchcase(n, pattern) and (category is None or info.category == category)
    )


def loss_info(name: str) -> LossInfo:
    """Metadata of a registered loss: category, paper, formula, defaults, modes, needs_distance_map."""
    return _get(name)


_TERM = re.compile(r"^\s*(?:(?P<w>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*\s*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*$")


def parse_spec(spec: str) -> List[Tuple[float, str]]:
    """Parse ``"0.5*dice+2*ce"`` into ``[(0.5, "dice"), (2.0, "ce")]``; named compounds expand."""
    return _parse_spec(spec)


def _parse_spec(spec: str, load: bool = True) -> List[Tuple[float, str]]:
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"spec: expected a loss name or a weighted sum such as '0.5*dice+ce', got {spec!r}")
    # split on '+' that is not part of an exponent (1e+3)
    parts = re.split(r"(?<![0-9][eE])\+", spec)
    out: List[Tuple[float, str]] = []
    for part in parts:
        m = _TERM.match(part)
        if not m:
            raise ValueError(f"spec: cannot parse term {part.strip()!r} of {spec!r}; expected 'name' or 'weight*name'")
        w = float(m.group("w")) if m.group("w") else 1.0
        info = _get(m.group("name"), load)
        if info.spec is not None:
            out.extend((w * w2, t) for w2, t in _parse_spec(info.spec, load))
        else:
            out.append((w, info.name))
    return out


def build_loss(spec: str, **kwargs) -> nn.Module:
    """Build a loss module from a registered name or a weighted sum of names.

    Parameters
    ----------
    spec : str
        ``"dice"``, ``"dice+topk"``, ``"0.5*dice+2*ce"``, or a named compound such as ``"dice_ce"``.
    **kwargs
        For a single (non-compound) name: that loss's options. For a sum: one dict per term,
        named after the term (``dice={"batch": True}, topk={"k": 10}``); the contract arguments
        ``mode``, ``from_logits``, ``ignore_index`` given at top level apply to every term, and so
        does any other top-level option accepted by every term (``include_background``...).

    Raises
    ------
    ValueError
        Unknown loss names or arguments (the message lists the valid ones).

    Examples
    --------
    >>> import torch, seglosses
    >>> loss = seglosses.build_loss("dice+ce", dice={"batch": True})
    >>> logits = torch.zeros(2, 3, 8, 8, requires_grad=True)
    >>> target = torch.zeros(2, 8, 8, dtype=torch.long)
    >>> value = loss(logits, target)
    >>> value.backward()
    """
    _ensure_loaded()
    name = spec.strip() if isinstance(spec, str) else spec
    if isinstance(name, str) and name in _REGISTRY and _REGISTRY[name].spec is None:
        return instantiate(_REGISTRY[name], kwargs)
    terms = parse_spec(spec)
    from .losses.compound import CompoundLoss

    return CompoundLoss.from_terms(terms, spec=spec, **kwargs)


# ----------------------------------------------------------------------------- CLI: seglosses losses

def configure_losses(parser) -> None:
    parser.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'dice*' (default: all)")
    parser.add_argument("--category", choices=CATEGORIES, help="only this category")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table (as in the README)")


def catalogue_rows(pattern: str = "*", category: Optional[str] = None) -> List[Dict[str, str]]:
    rows = []
    for n in list_losses(pattern, category=category):
        info = loss_info(n)
        defaults = info.spec if info.spec else ", ".join(f"{k}={v!r}" for k, v in info.defaults.items() if k != "reduction")
        modes = ", ".join(info.modes)
        rows.append(
            {"name": n, "category": info.category, "paper": info.paper, "formula": info.formula, "defaults": defaults, "modes": modes}
        )
    return rows


def run_losses(args) -> int:
    rows = catalogue_rows(args.pattern, args.category)
    if not rows:
        print(f"no loss matches {args.pattern!r}")
        return 1
    if args.markdown:
        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        print("| name | category | formula | defaults | modes | paper |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| `{r['name']}` | {r['category']} | {cell(r['formula'])} | {cell(r['defaults'])} | {r['modes']} | {cell(r['paper'])} |"
            )
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['category']:<12}  {r['formula']}")
        print(f"{'':<{width}}  {'':<12}  defaults: {r['defaults'] or '-'}")
        print(f"{'':<{width}}  {'':<12}  paper: {r['paper']}")
    print(f"\n{len(rows)} losses. Build one with seglosses.build_loss(name, **options).")
    return 0
