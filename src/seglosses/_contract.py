"""The input contract shared by every loss: one place that normalises and validates.

Every loss in :mod:`seglosses` accepts ``(logits, target)`` as described in the README and in
``design.md``:

* ``logits``: float tensor ``(N, C, *spatial)`` with 1 to 3 spatial dimensions. With
  ``from_logits=False`` the tensor already holds probabilities.
* ``target``: an integer label map ``(N, *spatial)`` or ``(N, 1, *spatial)``, or a float one-hot /
  soft / multi-hot target ``(N, C, *spatial)``. In binary mode a float ``(N, *spatial)`` mask is
  accepted too. With C > 1 channels, an integer or bool ``(N, C, *spatial)`` tensor holding 0/1
  (``F.one_hot(...)``, ``uint8`` masks) is a one-hot / multi-hot target, and a float
  ``(N, 1, *spatial)`` or ``(N, *spatial)`` tensor of integral values (MONAI's label maps) is a
  label map; anything else of those shapes is ambiguous and raises an error that says which
  ``.long()`` or ``.float()`` makes it unambiguous.
* ``mode``: ``"multiclass"`` (softmax over C, one label per voxel), ``"binary"`` (C == 1, sigmoid,
  the single channel is the foreground) or ``"multilabel"`` (independent sigmoid per channel).
  Default: multiclass when C > 1, binary when C == 1.
* ``ignore_index``: label value whose voxels are excluded from every sum and mean: label-map
  targets, and binary float masks ``(N, *spatial)`` / ``(N, 1, *spatial)`` (smp's float masks with
  255 = ignore; the ignored voxels are set to 0 and excluded). A one-hot / soft / multi-hot
  ``(N, C, *spatial)`` target has no label to ignore: ``ignore_index`` with it raises an error.
  A binary float mask must hold values in ``[0, 1]`` (outside ignored voxels).

:func:`prepare` returns a :class:`Prepared` object. Probabilities and log-probabilities are
computed lazily in float32 (AMP-safe; float64 input stays float64, so ``gradcheck`` works) and
cached, so a compound loss computes its softmax once.
A label-map target stays a label map: region statistics gather and scatter on it
(:mod:`seglosses._stats`) instead of materialising a float one-hot. Which statistics the terms
of one call compute together is the typed :class:`SharedPass` request on ``Prepared.shared``;
the compiled kernels are dispatched by :func:`seglosses._stats.native_stats`.

Argument checks live in :mod:`seglosses._checks` (re-exported here for older imports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import REDUCTIONS, check_choice, check_positive, check_reduction, describe as _describe
from ._stats import native_stats

MODES = ("multiclass", "binary", "multilabel")

__all__ = [
    "MODES",
    "REDUCTIONS",
    "Prepared",
    "SharedPass",
    "prepare",
    "compute_dtype",
    "check_reduction",
    "check_choice",
    "check_positive",
]


@dataclass
class SharedPass:
    """The compound handshake: what the terms of one loss call compute together, on one input.

    A compound loss (:class:`~seglosses.losses.compound.CompoundLoss`, or one formula with
    several terms such as ``ell``) evaluates several terms on the same :class:`Prepared` input.
    With a multiclass label-map target, the region statistics (:func:`seglosses._stats.soft_stats`)
    can produce the per-voxel cross entropy ``-log p_true`` in the same pass and the same autograd
    node, so a later cross-entropy term costs no second pass and its backward is fused with the
    Dice backward. The fields, in the order they are used:

    ``want_nll`` (request, bool)
        Set to True by the compound *before* its first term runs ("a later term will need the
        cross entropy"). The first pass that computes label-map statistics then also computes
        ``-log p_true``: the compiled kernels (:func:`seglosses._stats.native_stats`) or the fused
        PyTorch node (:class:`seglosses._stats._LabelMapStats`).
    ``native`` (result, :class:`seglosses._native.NativeStats` or None) and ``native_decided``
        The outputs of the compiled kernels' one pass (softmax, every statistic, ``nll`` when
        requested), computed at most once per input; ``native_decided`` says whether the
        dispatch already ran (``native`` is None when the kernels do not apply).
    ``nll`` (result, Tensor or None)
        ``-log p_true`` ``(N, S)`` made by the fused PyTorch statistics; taken (once) by
        :func:`seglosses._stats.neg_log_true_class`, i.e. by the cross-entropy term.

    A single loss never sets ``want_nll``; then nothing extra is computed.
    """

    want_nll: bool = False
    native: Any = None
    native_decided: bool = False
    nll: Optional[Tensor] = None


@dataclass
class Prepared:
    """Validated logits and target of one loss call.

    Attributes
    ----------
    logits : Tensor
        ``(N, C, *spatial)`` as given (probabilities when ``from_logits=False``).
    mode : str
        ``"multiclass"``, ``"binary"`` or ``"multilabel"``.
    labels : Tensor or None
        ``(N, *spatial)`` int64 label map (multiclass with a label-map target); ignored voxels are
        set to 0 and excluded through :attr:`valid`.
    dense : Tensor or None
        ``(N, C, *spatial)`` float32 (float64 for float64 logits) target: soft / one-hot target in multiclass mode, the
        foreground / multi-hot target in binary and multilabel mode.
    valid : Tensor or None
        ``(N, *spatial)`` float32 (float64 for float64 logits) mask of voxels that count (``None``: all count).
    """

    logits: Tensor
    mode: str
    from_logits: bool
    labels: Optional[Tensor]
    dense: Optional[Tensor]
    valid: Optional[Tensor]
    ignore_index: Optional[int] = None
    #: the compound handshake (see :class:`SharedPass`)
    shared: SharedPass = field(default_factory=SharedPass, repr=False)
    # lazily computed, cached values (see the properties below)
    _probs: Optional[Tensor] = field(default=None, repr=False)
    _log_probs: Optional[Tensor] = field(default=None, repr=False)
    _log_probs_neg: Optional[Tensor] = field(default=None, repr=False)
    _onehot: Optional[Tensor] = field(default=None, repr=False)

    # ------------------------------------------------------------------ shapes
    @property
    def num_classes(self) -> int:
        return self.logits.shape[1]

    @property
    def batch_size(self) -> int:
        return self.logits.shape[0]

    @property
    def spatial_shape(self) -> tuple:
        return tuple(self.logits.shape[2:])

    @property
    def is_sigmoid(self) -> bool:
        return self.mode != "multiclass"

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype: float32 for half / bfloat16 / float32 input, float64 for float64 input."""
        return compute_dtype(self.logits.dtype)

    # ------------------------------------------------------- probabilities (fp32)
    @property
    def log_probs(self) -> Tensor:
        """log p in float32; multiclass: log_softmax over C; otherwise log sigmoid."""
        if self._log_probs is None:
            x = self.logits.to(self.dtype)
            if not self.from_logits:
                lp = torch.log(x.clamp_min(1e-12))
            elif self.mode == "multiclass":
                lp = F.log_softmax(x, dim=1)
            else:
                lp = F.logsigmoid(x)
            self._log_probs = lp
        return self._log_probs

    @property
    def log_probs_neg(self) -> Tensor:
        """log(1 - p) in float32 (sigmoid modes), computed stably from the logits."""
        if self._log_probs_neg is None:
            x = self.logits.to(self.dtype)
            if self.from_logits:
                lq = F.logsigmoid(-x)
            else:
                lq = torch.log((1.0 - x).clamp_min(1e-12))
            self._log_probs_neg = lq
        return self._log_probs_neg

    @property
    def has_probs(self) -> bool:
        """Whether :attr:`probs` was already computed (then the compiled kernels no longer apply)."""
        return self._probs is not None

    @property
    def probs(self) -> Tensor:
        """p in float32: softmax over C (multiclass) or sigmoid (binary / multilabel).

        Multiclass logits with a label map on the CPU take the softmax from the compiled kernels'
        shared pass (:func:`seglosses._stats.native_stats`) when they apply.
        """
        if self._probs is None:
            x = self.logits.to(self.dtype)
            nat = native_stats(self) if self.mode == "multiclass" else None
            if nat is not None:
                p = nat.p
            elif not self.from_logits:
                p = x
            elif self._log_probs is not None and self.mode == "multiclass":
                p = self._log_probs.exp()
            elif self.mode == "multiclass":
                p = torch.softmax(x, dim=1)
            else:
                p = torch.sigmoid(x)
            self._probs = p
        return self._probs

    # ---------------------------------------------------------------- targets
    def onehot(self) -> Tensor:
        """Float32 ``(N, C, *spatial)`` target. Materialises a one-hot for label maps: only for
        losses that need a dense field (distance maps, local statistics), never for sums."""
        if self.dense is not None:
            return self.dense
        if self._onehot is None:
            self._onehot = F.one_hot(self.labels, self.num_classes).movedim(-1, 1).to(self.dtype)
        return self._onehot

    def valid_or_ones(self) -> Tensor:
        if self.valid is not None:
            return self.valid
        return torch.ones((self.batch_size,) + self.spatial_shape, device=self.logits.device, dtype=self.dtype)

    def n_valid(self, batch: bool = True) -> Tensor:
        """Number of counted voxels, over the batch (scalar) or per sample ``(N,)``."""
        n = self.batch_size
        numel = float(torch.Size(self.spatial_shape).numel())
        if self.valid is None:
            v = torch.full((n,), numel, device=self.logits.device, dtype=self.dtype)
        else:
            v = self.valid.flatten(1).sum(1)
        return v.sum() if batch else v

    def one_vs_rest(self) -> "Prepared":
        """The same input in multilabel mode: a multiclass label map or one-hot target becomes one
        sigmoid channel per class (one class against the rest), the logits are unchanged. Used by
        the one-vs-rest losses (``sigmoid_focal``); a binary or multilabel input is returned as is."""
        if self.mode != "multiclass":
            return self
        return Prepared(
            logits=self.logits, mode="multilabel", from_logits=self.from_logits, labels=None,
            dense=self.onehot(), valid=self.valid, ignore_index=self.ignore_index,
        )

    def hard_target(self) -> Tensor:
        """Target as an integer label map ``(N, *spatial)`` (argmax of a soft target)."""
        if self.labels is not None:
            return self.labels
        if self.mode == "multiclass":
            return self.dense.argmax(1)
        return (self.dense > 0.5).long()


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype sums run in: ``promote_types(dtype, float32)`` (fp16/bf16 -> fp32, fp64 stays)."""
    return torch.promote_types(dtype, torch.float32)


def _as_label_map(target: Tensor, logits: Tensor) -> Tensor | None:
    """Return a ``(N, *spatial)`` label map if ``target`` is one, else ``None``."""
    spatial = tuple(logits.shape[2:])
    n = logits.shape[0]
    if tuple(target.shape) == (n,) + spatial:
        return target
    if tuple(target.shape) == (n, 1) + spatial:
        return target[:, 0]
    return None


def _integer_one_hot(target: Tensor, validate: bool) -> Tensor:
    """An integer / bool ``(N, C, *spatial)`` target is one-hot or multi-hot: values must be 0 or 1."""
    if validate and target.numel():
        lo, hi = (int(v) for v in torch.aminmax(target))
        if lo < 0 or hi > 1:
            raise ValueError(
                f"target: an integer target of the logits' shape {tuple(target.shape)} is read as one-hot / "
                f"multi-hot and must hold 0 or 1, got value {lo if lo < 0 else hi}; for a soft or weighted "
                f"target use target.float(), for a label map pass shape (N, *spatial) or (N, 1, *spatial) "
                f"(target.argmax(1).long())"
            )
    return target


def _float_label_map(target: Tensor, logits: Tensor, validate: bool) -> Tensor:
    """A float ``(N, 1, *spatial)`` or ``(N, *spatial)`` target with C > 1 logits is a label map if its
    values are integral (MONAI's habit with ``to_onehot_y=True``); anything else is ambiguous."""
    if validate and target.numel() and not bool((target == target.round()).all()):
        raise ValueError(
            f"target: a float target of shape {tuple(target.shape)} for logits of shape "
            f"{tuple(logits.shape)} is read as a label map and must hold integral class indices, got non-integral values; for a "
            f"label map use target.long(), for a soft or one-hot target pass a float tensor of the logits' "
            f"shape {tuple(logits.shape)} (target.float())"
        )
    return target.long()


def prepare(
    logits: Tensor,
    target: Tensor,
    *,
    mode: Optional[str] = None,
    from_logits: bool = True,
    ignore_index: Optional[int] = None,
    validate: bool = True,
) -> Prepared:
    """Validate ``(logits, target)`` against the contract and normalise them.

    Raises
    ------
    TypeError
        ``logits`` not a floating tensor; ``target`` not a tensor; a float target given where a
        label map is expected.
    ValueError
        Wrong number of dimensions, shape mismatch, label values outside ``[0, C)`` other than
        ``ignore_index``, ``C == 1`` with ``mode="multiclass"``, unknown ``mode``.
    """
    if not isinstance(logits, Tensor):
        raise TypeError(f"logits: expected a torch.Tensor, got {_describe(logits)}")
    if not isinstance(target, Tensor):
        raise TypeError(f"target: expected a torch.Tensor, got {_describe(target)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits: expected a floating-point tensor, got dtype {logits.dtype}")
    if not 3 <= logits.ndim <= 5:
        raise ValueError(
            f"logits: expected shape (N, C, *spatial) with 1 to 3 spatial dims, got shape {tuple(logits.shape)}"
        )
    n, c = logits.shape[:2]
    spatial = tuple(logits.shape[2:])
    if mode is None:
        mode = "multiclass" if c > 1 else "binary"
    check_choice("mode", mode, MODES)
    if mode == "multiclass" and c == 1:
        raise ValueError(
            "mode: 'multiclass' needs at least 2 channels, got logits with C == 1; "
            "use mode='binary' for a single sigmoid channel"
        )
    if mode == "binary" and c != 1:
        raise ValueError(f"logits: mode 'binary' expects C == 1 channel, got C == {c} (shape {tuple(logits.shape)})")
    if ignore_index is not None and not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index: expected an int or None, got {ignore_index!r}")

    labels = dense = valid = None
    cdtype = compute_dtype(logits.dtype)
    is_int = not target.is_floating_point() and target.dtype != torch.bool
    if target.dtype == torch.bool:
        target = target.to(torch.uint8)
        is_int = True
    if is_int and c > 1 and tuple(target.shape) == tuple(logits.shape):
        # F.one_hot(...), uint8 / bool masks: a one-hot / multi-hot target
        target = _integer_one_hot(target, validate).to(cdtype)
        is_int = False
    elif not is_int and target.is_floating_point() and c > 1 and _as_label_map(target, logits) is not None:
        target = _float_label_map(target, logits, validate)  # MONAI's float (N, 1, *spatial) label maps
        is_int = True
    lm = _as_label_map(target, logits) if (is_int or mode == "binary") else None
    if is_int:
        if lm is None:
            raise ValueError(
                f"target: expected an integer label map of shape {(n,) + spatial} or {(n, 1) + spatial}, "
                f"or a one-hot / multi-hot target of shape {tuple(logits.shape)}, for logits of shape "
                f"{tuple(logits.shape)}, got shape {tuple(target.shape)}"
            )
        lm = lm.long()
        n_labels = 2 if mode == "binary" else c
        if ignore_index is not None:
            keep = lm != ignore_index
            valid = keep.to(cdtype)
            lm = torch.where(keep, lm, torch.zeros((), dtype=lm.dtype, device=lm.device))
        if validate and lm.numel():
            lo, hi = (int(v) for v in torch.aminmax(lm))  # one pass over the labels
            if lo < 0 or hi >= n_labels:
                bad = lo if lo < 0 else hi
                extra = "" if ignore_index is None else f" (other than ignore_index={ignore_index})"
                raise ValueError(
                    f"target: expected label values in [0, {n_labels}){extra} for {mode} mode with "
                    f"C == {c}, got value {bad}"
                )
        if mode == "multiclass":
            labels = lm
        elif mode == "binary":
            dense = lm.unsqueeze(1).to(cdtype)
        else:  # multilabel from a label map: mutually exclusive labels, one-hot per channel
            dense = F.one_hot(lm, c).movedim(-1, 1).to(cdtype)
    else:
        if not target.is_floating_point():
            raise TypeError(f"target: expected an integer or floating tensor, got dtype {target.dtype}")
        binary_mask = mode == "binary" and tuple(target.shape) in ((n,) + spatial, (n, 1) + spatial)
        if mode == "binary" and tuple(target.shape) == (n,) + spatial:
            target = target.unsqueeze(1)
        if ignore_index is not None and not binary_mask:
            raise ValueError(
                f"ignore_index: needs a label-map target (or a binary float mask), got ignore_index={ignore_index} "
                f"with a dense {mode} target {_describe(target)}; pass the label map (N, *spatial) instead "
                f"of the one-hot / soft target, or ignore_index=None"
            )
        if binary_mask and ignore_index is not None:  # smp-style float masks with e.g. 255 = ignore
            keep = target[:, 0] != ignore_index
            valid = keep.to(cdtype)
            target = torch.where(keep.unsqueeze(1), target, torch.zeros((), dtype=target.dtype, device=target.device))
        if binary_mask and validate and target.numel():
            lo, hi = (float(v) for v in torch.aminmax(target))
            if not (lo >= 0.0 and hi <= 1.0):
                bad = lo if not lo >= 0.0 else hi
                extra = "" if ignore_index is None else f" (other than ignore_index={ignore_index})"
                raise ValueError(
                    f"target: expected a binary float mask with values in [0, 1]{extra}, got value {bad}; "
                    f"pass ignore_index for a label that marks ignored voxels (255)"
                )
        if tuple(target.shape) != tuple(logits.shape):
            hint = ""
            if lm is not None or tuple(target.shape) in ((n,) + spatial, (n, 1) + spatial):
                hint = "; a label map must have an integer dtype (use target.long())"
            raise ValueError(
                f"target: expected a float target of the same shape as logits {tuple(logits.shape)}, "
                f"got {_describe(target)}{hint}"
            )
        dense = target.to(cdtype)
    return Prepared(
        logits=logits,
        mode=mode,
        from_logits=from_logits,
        labels=labels,
        dense=dense,
        valid=valid,
        ignore_index=ignore_index,
    )
