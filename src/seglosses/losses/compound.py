"""The compound combinator: a weighted sum of registered terms.

There is one combinator, :class:`CompoundLoss`; ``dice_ce`` and friends are *names* for weighted
sums (Ma et al. 2021 eqs. 22, 24, 25), not new classes: they are registered with the other
compound formulas in :mod:`seglosses.functional.compound`. Terms that share an input contract
(``mode``, ``from_logits``, ``ignore_index``) share one :class:`~seglosses._contract.Prepared`
input, so ``dice+ce`` computes one log-softmax, not two.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .._checks import check_reduction
from .._contract import Prepared
from ..registry import CONTRACT_ARGS, LossInfo, foreign_hint, instantiate, loss_info

__all__ = ["CompoundLoss"]

_NAMED = object()  # from_terms: "use the named compound's schedule"


def _is_name(spec: str) -> bool:
    return spec.strip().isidentifier()


class CompoundLoss(nn.Module):
    """``sum_k w_k * loss_k(logits, target)`` over registered terms.

    Build it with :func:`seglosses.build_loss` (``"0.5*dice+2*ce"``) or from modules directly:
    ``CompoundLoss([(0.5, DiceLoss()), (2.0, CELoss())])``.

    ``weights`` is a list of floats that a schedule (``set_epoch``) may change during training;
    ``last_terms`` holds the detached value of each term from the last forward call (used for
    logging and by value-balancing schedules).

    ``reduction="none"`` (``build_loss("dice+ce", reduction="none")``) returns one loss per sample,
    shape ``(N,)``: entry n is the compound loss of sample n on its own (each term with its own
    ``"mean"``; a term with ``batch=True`` then pools that sample only; per-call inputs such as
    ``distance_map`` are sliced with it). ``"mean"`` and ``"sum"`` are passed to every term.
    ``reduction="none"`` with a ``batch=True, ddp=True`` term raises a ``ValueError`` when the
    compound is built: a per-sample loss of a statistic pooled over the global batch is not defined
    (and one all-reduce per local sample would mix ranks and hang on uneven shards).
    """

    def __init__(
        self,
        terms: Sequence[Tuple[float, nn.Module]],
        spec: Optional[str] = None,
        schedule=None,
        reduction: str = "mean",
    ):
        super().__init__()
        check_reduction(reduction)
        self.reduction = reduction
        if not terms:
            raise ValueError("terms: expected at least one (weight, loss) pair, got none")
        self.names: List[str] = [getattr(getattr(m, "info", None), "name", type(m).__name__) for _, m in terms]
        self.weights: List[float] = [float(w) for w, _ in terms]
        self.terms = nn.ModuleList([m for _, m in terms])
        if reduction == "none":
            for name, m in zip(self.names, self.terms):
                info = getattr(m, "info", None)
                opts = {**getattr(info, "defaults", {}), **getattr(m, "options", {})}
                if opts.get("ddp") is True and opts.get("batch") is True:
                    raise ValueError(
                        f"reduction: 'none' (one loss per sample) is not defined for term {name!r} with "
                        f"batch=True and ddp=True: its statistics are pooled over the global batch, so no "
                        f"sample has a loss of its own; use reduction='mean' or 'sum', or ddp=False"
                    )
        self.spec = spec or "+".join(f"{w:g}*{n}" for w, n in zip(self.weights, self.names))
        self.schedule = schedule
        if schedule is not None:  # a scheduled compound starts in the schedule's epoch-0 state
            self.weights = [float(w) for w in schedule.weights(0, self)]
        self.last_terms: Dict[str, float] = {}
        call_args = set()
        for m in self.terms:
            call_args |= set(getattr(getattr(m, "info", None), "call_args", ()))
        self.call_args = tuple(sorted(call_args))

    # ------------------------------------------------------------------ building
    @classmethod
    def from_terms(cls, terms: Sequence[Tuple[float, str]], spec: Optional[str] = None, **kwargs) -> "CompoundLoss":
        # schedule: given explicitly (None disables it), else the named compound's own
        schedule = kwargs.pop("schedule", _NAMED)
        if schedule is _NAMED:
            named = loss_info(spec.strip()) if isinstance(spec, str) and _is_name(spec) else None
            factory = getattr(named, "schedule_factory", None)
            schedule = factory() if factory is not None else None
        names = [t for _, t in terms]
        infos: Dict[str, LossInfo] = {t: loss_info(t) for t in names}
        per_term = {k: kwargs.pop(k) for k in list(kwargs) if k in infos}
        for t, opts in per_term.items():
            if not isinstance(opts, dict):
                raise TypeError(f"{t}: per-term options must be a dict, got {type(opts).__name__} {opts!r}")
        shared = kwargs
        reduction = shared.get("reduction", "mean")
        if reduction == "none":  # per sample: the terms keep their "mean" (see CompoundLoss)
            shared = {k: v for k, v in shared.items() if k != "reduction"}
        for k in shared:
            if not any(k in infos[t].options for t in infos):
                valid = sorted(set(CONTRACT_ARGS) | {o for i in infos.values() for o in i.options} | set(infos))
                raise ValueError(
                    f"{spec}: unknown argument {k!r}{foreign_hint([k])}; valid arguments are {valid}"
                )
        modules = []
        for w, t in terms:
            opts = {k: v for k, v in shared.items() if k in infos[t].options}
            opts.update(per_term.get(t, {}))
            modules.append((w, instantiate(infos[t], opts)))
        return cls(modules, spec=spec, schedule=schedule, reduction="none" if reduction == "none" else "mean")

    # ------------------------------------------------------------------ schedules
    def set_epoch(self, epoch: int) -> None:
        """Advance schedules: the compound's own (weights) and every term's."""
        if self.schedule is not None:
            self.weights = [float(w) for w in self.schedule.weights(epoch, self)]
        for m in self.terms:
            if hasattr(m, "set_epoch"):
                m.set_epoch(epoch)

    # ------------------------------------------------------------------ forward
    def forward(self, logits: Tensor, target: Tensor, **call_kwargs) -> Tensor:
        unknown = sorted(set(call_kwargs) - set(self.call_args))
        if unknown:
            raise ValueError(
                f"{self.spec}: forward() got unknown keyword(s) {unknown}; per-call inputs are {list(self.call_args) or 'none'}"
            )
        if self.reduction == "none":
            return self._per_sample(logits, target, call_kwargs)
        total, values = self._total(logits, target, call_kwargs)
        self.last_terms = {k: float(v.detach().float().mean()) for k, v in values.items()}
        if self.schedule is not None and hasattr(self.schedule, "observe"):
            self.schedule.observe(values, self)
        return total

    def _per_sample(self, logits: Tensor, target: Tensor, call_kwargs: dict) -> Tensor:
        """``(N,)``: the compound loss of each sample on its own (``reduction="none"``)."""
        totals, per_term = [], {}
        for n in range(logits.shape[0]):
            kw = {k: (v[n : n + 1] if isinstance(v, Tensor) else v) for k, v in call_kwargs.items()}
            total, values = self._total(logits[n : n + 1], target[n : n + 1], kw)
            totals.append(total.reshape(()))
            for k, v in values.items():
                per_term.setdefault(k, []).append(v.reshape(()))
        values = {k: torch.stack(v).mean() for k, v in per_term.items()}
        self.last_terms = {k: float(v.detach().float()) for k, v in values.items()}
        if self.schedule is not None and hasattr(self.schedule, "observe"):
            self.schedule.observe(values, self)
        return torch.stack(totals)

    def _total(self, logits: Tensor, target: Tensor, call_kwargs: dict):
        cache: Dict[tuple, Prepared] = {}
        total: Optional[Tensor] = None
        values = {}
        for w, name, m in zip(self.weights, self.names, self.terms):
            kw = {k: v for k, v in call_kwargs.items() if k in getattr(getattr(m, "info", None), "call_args", ())}
            if hasattr(m, "forward_prepared"):
                key = tuple(sorted(m.contract.items()))
                if key not in cache:
                    cache[key] = m.prepare(logits, target)
                    if len(self.terms) > 1:  # region statistics also give the CE of the other terms
                        cache[key].shared.want_nll = True  # the compound handshake (SharedPass)
                value = m.forward_prepared(cache[key], **kw)
            else:
                value = m(logits, target, **kw)
            values[name] = value
            if total is not None and total.shape != value.shape:
                raise ValueError(
                    f"reduction: terms of {self.spec!r} return different shapes {tuple(total.shape)} and "
                    f"{tuple(value.shape)} ({name}); use reduction='mean' or 'sum' for compound losses"
                )
            total = w * value if total is None else total + w * value
        return total, values

    def extra_repr(self) -> str:
        extra = ", reduction='none'" if self.reduction == "none" else ""
        return f"spec={self.spec!r}, weights={self.weights}{extra}"
