"""The loss an nnU-Net v2 trainer gets from a seglosses spec, with nnU-Net's conventions.

nnU-Net v2 (Isensee et al. 2021, doi:10.1038/s41592-020-01008-z) builds its loss in
``nnUNetTrainer._build_loss``: Dice + CE (Dice + BCE for region-based training), batch Dice when
the plans say so, the ignore label masked out, and a deep-supervision wrapper. This module builds
the same thing from any seglosses spec (:func:`build_nnunet_loss`):

* **spec**: a registered name, a weighted sum or a named compound, with options in parentheses
  as on ``seglosses bench --losses``: ``"dice+topk(k=10)"``, ``"dice_ce(dice.batch=true)"``,
  ``"0.5*dice+ce"``, ``"topk_k10"`` (:func:`resolve_spec`).
* **batch Dice**: every term with a ``batch`` option gets ``batch=<plans' batch_dice>`` unless
  the spec sets it. (Under DDP a term with a ``ddp`` option gets ``ddp=True`` the same way.)
* **ignore label**: ``ignore_index=<ignore label>`` on every term (label-map targets).
* **regions** (``has_regions``): ``mode="multilabel"`` (one sigmoid per region, multi-hot
  target); a loss without multilabel support is an error naming the losses that have it.
  Region-based training *with* an ignore label is not supported yet (an error says so): the
  ignore mask of a multi-hot target has no place in the seglosses contract.
* **deep supervision**: :class:`seglosses.DeepSupervision` with nnU-Net's weights (2^-l, lowest
  resolution 0, normalised; 1e-6 instead of 0 under DDP without ``torch.compile``, as nnU-Net).
* **targets**: nnU-Net hands over ``(B, 1, *spatial)`` label maps (any dtype) or boolean
  ``(B, R, *spatial)`` region masks, one per deep-supervision level; :class:`NNUNetTargets`
  turns them into the seglosses contract (int64 label map, float multi-hot).

The trainer that uses this is :class:`seglosses.integrations.nnunet_trainer.nnUNetTrainerSegLoss`
(it needs nnU-Net installed: ``pip install "seglosses[nnunet]"``); this module itself needs only
torch.
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..losses.deep_supervision import DeepSupervision
from ..registry import build_loss, list_losses, loss_info, parse_spec

__all__ = ["ENV_VAR", "DEFAULT_SPEC", "NNUNetTargets", "resolve_spec", "nnunet_options", "build_nnunet_loss", "nnunet_ds_weights"]

#: environment variable the trainer reads its loss spec from
ENV_VAR = "SEGLOSSES_LOSS"
#: spec used when neither the trainer variant nor the environment gives one (nnU-Net's own loss)
DEFAULT_SPEC = "dice_ce"

INSTALL_HINT = 'pip install "seglosses[nnunet]"'


def resolve_spec(spec: str, *, source: str = "spec") -> Tuple[str, dict]:
    """``"dice+topk(k=10)"`` -> ``("dice+topk", {"k": 10})``: registry spec and build options.

    Uses the grammar of ``seglosses bench --losses`` (one entry, no wildcard): registered names,
    weighted sums, named configurations of Ma et al. (``topk_k10``), options in parentheses
    (``dice_ce(dice.batch=true)``). ``source`` names where the spec came from in error messages.

    Examples
    --------
    >>> resolve_spec("dice+topk(k=10)")
    ('dice+topk', {'k': 10})
    >>> resolve_spec("dice_ce(dice.include_background=false)")
    ('dice_ce', {'dice': {'include_background': False}})
    """
    from ..bench.presets import parse_losses

    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{source}: expected a loss spec such as 'dice+ce' or 'dice+topk(k=10)', got {spec!r}")
    try:
        configs = parse_losses(spec)
    except ValueError as exc:
        raise ValueError(f"{source}: {str(exc).replace('--losses: ', '')}") from None
    if len(configs) != 1:
        raise ValueError(
            f"{source}: expected one loss (a name or a weighted sum), got {len(configs)}: {[c.name for c in configs]}"
        )
    return configs[0].spec, copy.deepcopy(dict(configs[0].options))


def _is_single(spec: str) -> bool:
    name = spec.strip()
    return name.isidentifier() and name in list_losses() and loss_info(name).spec is None


def nnunet_options(
    spec: str,
    options: dict,
    *,
    batch_dice: bool,
    ignore_label: Optional[int] = None,
    has_regions: bool = False,
    ddp: bool = False,
) -> dict:
    """The :func:`seglosses.build_loss` options for ``spec`` under nnU-Net's conventions.

    Options the user gave win; ``batch`` (and ``ddp``) are filled in per term; ``mode`` /
    ``ignore_index`` are set at top level (they configure every term's input contract).

    Examples
    --------
    >>> nnunet_options("dice+topk", {"k": 10}, batch_dice=True, ignore_label=3)
    {'k': 10, 'dice': {'batch': True}, 'ignore_index': 3}
    >>> nnunet_options("dice", {"batch": False}, batch_dice=True)
    {'batch': False}
    """
    opts = copy.deepcopy(dict(options))
    terms = [t for _, t in parse_spec(spec)]
    fill = {"batch": bool(batch_dice)}
    if ddp:
        fill["ddp"] = True
    if _is_single(spec):
        info = loss_info(spec.strip())
        for k, v in fill.items():
            if k in info.defaults:
                opts.setdefault(k, v)
    else:
        for t in dict.fromkeys(terms):
            info = loss_info(t)
            for k, v in fill.items():
                if k in info.defaults and k not in opts and k not in opts.get(t, {}):
                    opts.setdefault(t, {})[k] = v
    if has_regions:
        if ignore_label is not None:
            raise ValueError(
                f"ignore_label: region-based training with an ignore label (here {ignore_label}) is not supported by "
                "nnUNetTrainerSegLoss: seglosses' ignore_index applies to label maps; train without the ignore label "
                "or with nnU-Net's own trainer"
            )
        no_multilabel = [t for t in dict.fromkeys(terms) if "multilabel" not in loss_info(t).modes]
        if no_multilabel:
            ok = [n for n in list_losses() if "multilabel" in loss_info(n).modes]
            raise ValueError(
                f"spec: region-based training needs losses with multilabel support; {no_multilabel} of {spec!r} "
                f"have none. Losses with multilabel support: {ok}"
            )
        if opts.get("mode", "multilabel") != "multilabel":
            raise ValueError(f"mode: region-based training uses mode='multilabel', the spec sets {opts['mode']!r}")
        opts["mode"] = "multilabel"
    elif ignore_label is not None:
        if opts.get("ignore_index", ignore_label) != ignore_label:
            raise ValueError(
                f"ignore_index: the dataset's ignore label is {ignore_label}, the spec sets {opts['ignore_index']!r}"
            )
        opts["ignore_index"] = int(ignore_label)
    return opts


class NNUNetTargets(nn.Module):
    """Calls ``loss(logits, target)`` with nnU-Net's target turned into the seglosses contract.

    ``(B, 1, *spatial)`` label maps of any dtype become int64 ``(B, *spatial)`` label maps (the
    ignore label stays, ``ignore_index`` masks it); with ``has_regions`` the boolean
    ``(B, R, *spatial)`` region masks become float32 multi-hot targets.
    """

    def __init__(self, loss: nn.Module, has_regions: bool = False):
        super().__init__()
        self.loss = loss
        self.has_regions = bool(has_regions)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.has_regions:
            target = target.to(torch.float32)
        else:
            if target.ndim == logits.ndim:
                if target.shape[1] != 1:
                    raise ValueError(
                        f"target: expected nnU-Net's label map (B, 1, *spatial), got shape {tuple(target.shape)}; "
                        "region targets need has_regions=True"
                    )
                target = target[:, 0]
            target = target.long()
        return self.loss(logits, target)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.loss, "set_epoch"):
            self.loss.set_epoch(epoch)

    def extra_repr(self) -> str:
        return f"has_regions={self.has_regions}"


def nnunet_ds_weights(levels: int, *, ddp: bool = False, compiled: bool = False) -> list:
    """nnU-Net v2's deep-supervision weights for ``levels`` outputs (``nnUNetTrainer._build_loss``):
    ``2^-l``, the lowest resolution 0 (1e-6 under DDP without ``torch.compile``, to keep its
    parameters used), normalised to sum 1.

    Examples
    --------
    >>> nnunet_ds_weights(3)
    [0.6666666666666666, 0.3333333333333333, 0.0]
    """
    w = [0.5**i for i in range(levels)]
    if levels > 1:
        w[-1] = 1e-6 if (ddp and not compiled) else 0.0
    s = sum(w)
    return [x / s for x in w]


def build_nnunet_loss(
    spec: str,
    *,
    batch_dice: bool,
    ignore_label: Optional[int] = None,
    has_regions: bool = False,
    deep_supervision_levels: Optional[int] = None,
    ddp: bool = False,
    compiled: bool = False,
    source: str = "spec",
) -> nn.Module:
    """The loss module an nnU-Net trainer calls as ``loss(output, target)``.

    Parameters
    ----------
    spec : str
        seglosses spec with optional options (:func:`resolve_spec`).
    batch_dice, ignore_label, has_regions
        From nnU-Net's configuration and label manager.
    deep_supervision_levels : int or None
        Number of network outputs with deep supervision (``None``: no deep supervision); the
        loss is then :class:`seglosses.DeepSupervision` with :func:`nnunet_ds_weights`.

    Examples
    --------
    >>> loss = build_nnunet_loss("dice+ce", batch_dice=True, deep_supervision_levels=3)
    >>> loss.weights
    [0.6666666666666666, 0.3333333333333333, 0.0]
    >>> outputs = [torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 2, 2)]
    >>> targets = [torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 2, 2)]
    >>> bool(torch.isfinite(loss(outputs, targets)))
    True
    """
    base, options = resolve_spec(spec, source=source)
    opts = nnunet_options(base, options, batch_dice=batch_dice, ignore_label=ignore_label, has_regions=has_regions, ddp=ddp)
    loss: nn.Module = NNUNetTargets(build_loss(base, **opts), has_regions=has_regions)
    if deep_supervision_levels is not None:
        loss = DeepSupervision(loss, weights=nnunet_ds_weights(deep_supervision_levels, ddp=ddp, compiled=compiled))
    return loss

