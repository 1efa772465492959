"""Deep supervision: one loss applied to every output of a deeply supervised network.

A deeply supervised network (nnU-Net's U-Net, MONAI's ``DynUNet(deep_supervision=True)``)
returns one output per decoder level, full resolution first. :class:`DeepSupervision` wraps any
seglosses loss (a module, or a spec such as ``"dice+ce"``) and computes

.. math::

    L = \\sum_{l=0}^{L-1} w_l \\, \\mathcal{L}(\\text{outputs}_l, \\; \\text{down}_l(\\text{target}))

where ``down_l`` resizes the target to the spatial size of output ``l``: nearest neighbour
(``nearest-exact``, the rule nnU-Net v2 and MONAI use) for a label map -- integer, or a float
``(N, 1, *spatial)`` / ``(N, *spatial)`` one with C > 1 outputs (MONAI's float label maps, read as
labels by the input contract), or a C == 1 float mask with values outside ``[0, 1]`` (smp's
masks with 255 = ignore) -- so label values and ``ignore_index`` voxels survive unchanged;
adaptive average pooling for a float (one-hot, soft or C == 1 binary) target, so a downsampled
soft target stays a distribution. A list of targets (one
per output, as nnU-Net's data loader makes) is used as given.

Weights (``weights=``)

``"nnunet"`` (default)
    nnU-Net v2's ``nnUNetTrainer._build_loss``: ``w_l = 2^-l``, the lowest resolution gets 0,
    then normalised to sum to 1 (Isensee et al. 2021, doi:10.1038/s41592-020-01008-z). With 2
    outputs this is ``[1, 0]``; with 1 output ``[1]``.
``"exp"``
    MONAI's ``DeepSupervisionLoss(weight_mode="exp")``: ``w_l = max(2^-l, 1/16)``, not normalised.
``"same"``
    ``w_l = 1`` for every output.
a sequence of numbers
    used as given; its length must equal the number of outputs.

Outputs whose weight is 0 are not evaluated (as in nnU-Net): the loss is not computed on them.
They stay in the autograd graph through an exact zero, ``0.0 * outputs[l].float().sum()``
(when they require grad), so they get a zero gradient and the value is unchanged. Under
``DistributedDataParallel`` every parameter must take part in the backward pass, and the head of
the lowest level (weight 0 with the default ``"nnunet"`` weights) would otherwise raise "Expected
to have finished reduction in the prior iteration" on the second iteration. nnU-Net v2 instead
sets that weight to ``1e-6`` under DDP, which changes the value; the exact zero keeps the value
bit-identical with and without DDP and needs no ``find_unused_parameters=True``. (A non-finite
logit in a weight-0 output makes the loss NaN.)
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DeepSupervision", "deep_supervision_weights", "downsample_target"]

WEIGHT_MODES = ("nnunet", "exp", "same")


def deep_supervision_weights(weights: Union[str, Sequence[float]], levels: int) -> List[float]:
    """The weight of each of ``levels`` outputs (full resolution first).

    Examples
    --------
    >>> deep_supervision_weights("nnunet", 4)
    [0.5714285714285714, 0.2857142857142857, 0.14285714285714285, 0.0]
    >>> deep_supervision_weights("exp", 6)
    [1.0, 0.5, 0.25, 0.125, 0.0625, 0.0625]
    >>> deep_supervision_weights([1, 0.5], 2)
    [1.0, 0.5]
    """
    if not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels: expected an int >= 1 (the number of outputs), got {levels!r}")
    if isinstance(weights, str):
        if weights not in WEIGHT_MODES:
            raise ValueError(f"weights: expected one of {list(WEIGHT_MODES)} or a list of numbers, got {weights!r}")
        if weights == "same":
            return [1.0] * levels
        if weights == "exp":
            return [max(0.5**l, 0.0625) for l in range(levels)]
        if levels == 1:
            return [1.0]
        w = [0.5**l for l in range(levels)]
        w[-1] = 0.0  # nnU-Net does not train the lowest resolution
        total = sum(w)
        return [x / total for x in w]
    try:
        w = [float(x) for x in weights]
    except (TypeError, ValueError):
        raise TypeError(f"weights: expected one of {list(WEIGHT_MODES)} or a sequence of numbers, got {weights!r}") from None
    if len(w) != levels:
        raise ValueError(f"weights: expected {levels} weights (one per output), got {len(w)}: {w}")
    if not all(math.isfinite(x) and x >= 0 for x in w) or not any(x > 0 for x in w):
        raise ValueError(f"weights: expected finite non-negative numbers, at least one > 0, got {w}")
    return w


def _nearest_exact(x: Tensor, size: Sequence[int]) -> Tensor:
    """``F.interpolate(x, size, mode="nearest-exact")`` on the trailing dims of any dtype, by
    indexing: source index ``floor((i + 0.5) * in / out)``. Exact for integer labels of any size
    (no float round trip)."""
    nd = len(size)
    for d, out in enumerate(size):
        dim = x.ndim - nd + d
        n_in = x.shape[dim]
        if n_in == out:
            continue
        idx = ((torch.arange(out, device=x.device, dtype=torch.float64) + 0.5) * (n_in / out)).floor().long()
        x = x.index_select(dim, idx.clamp_(max=n_in - 1))
    return x


def downsample_target(target: Tensor, size: Sequence[int], label_map: Optional[bool] = None) -> Tensor:
    """Resize ``target`` to spatial ``size``: nearest (``nearest-exact``) for label maps
    ``(N, *spatial)`` or ``(N, 1, *spatial)``, adaptive average pooling for a float target
    ``(N, C, *spatial)`` or a binary float mask ``(N, *spatial)``.

    ``label_map=None`` (default) reads integer / bool targets as label maps and float targets as
    soft; :class:`DeepSupervision` passes ``label_map=True`` for a float ``(N, 1, *spatial)`` or
    ``(N, *spatial)`` target of C > 1 logits, which the input contract reads as a label map
    (MONAI's float label maps): averaging it would make non-integral "labels".

    Examples
    --------
    >>> lab = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255], [2, 2, 255, 255]]])
    >>> downsample_target(lab, (2, 2)).tolist()
    [[[0, 1], [2, 255]]]
    >>> downsample_target(torch.tensor([[[1.0, 0.0, 1.0, 1.0]]]), (2,)).tolist()
    [[[0.5, 1.0]]]
    """
    size = tuple(int(s) for s in size)
    if tuple(target.shape[-len(size):]) == size:
        return target
    if label_map is None:
        label_map = not target.is_floating_point()
    if label_map:
        return _nearest_exact(target, size)
    pool = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[len(size)]
    n_lead = target.ndim - len(size)
    flat = target.reshape((-1, 1) + tuple(target.shape[n_lead:]))  # any leading dims -> batch
    return pool(flat, size).reshape(tuple(target.shape[:n_lead]) + size)


class DeepSupervision(nn.Module):
    """Weighted sum of a loss over the outputs of a deeply supervised network.

    Parameters
    ----------
    loss : nn.Module, callable or str
        The loss of one output, ``loss(logits, target)``; a string is a spec for
        :func:`seglosses.build_loss` (``"dice+ce"``, ``"0.5*dice+topk"``) built with ``**options``.
    weights : {"nnunet", "exp", "same"} or sequence of float
        Default ``"nnunet"``: ``2^-l`` normalised with the lowest resolution dropped, the weights
        nnU-Net v2 trains with -- the most widely used deeply supervised training recipe, and a
        total weight of 1, so the loss keeps the scale of the loss without deep supervision (see
        the module docstring for all modes).
    **options
        Options of :func:`seglosses.build_loss` when ``loss`` is a spec (``ignore_index=255``,
        ``dice={"batch": True}``).

    Forward
    -------
    ``forward(outputs, target, **call_kwargs)``. ``outputs``: a list or tuple of logits
    ``(N, C, *spatial_l)``, full resolution first (a single tensor is passed to ``loss`` as is).
    ``target``: one target at full resolution (downsampled here) or a list with one target per
    output. Per-call inputs of the loss (``distance_map=...``) must be lists, one per output.
    Every output must have the same ``N`` and ``C`` and as many spatial dimensions as the first;
    ``outputs[0]`` must have the target's spatial size.

    Empty ground truth: the wrapped loss's behaviour at every level (nearest downsampling of an
    empty label map is empty).

    References
    ----------
    Lee et al. 2015, Deeply-supervised nets, AISTATS (arXiv:1409.5185); Isensee et al. 2021,
    nnU-Net, doi:10.1038/s41592-020-01008-z (the ``"nnunet"`` weights); MONAI
    ``DeepSupervisionLoss`` (the ``"exp"`` weights).

    Examples
    --------
    >>> import torch, seglosses
    >>> ds = seglosses.DeepSupervision("ce", weights=[1.0, 0.5])
    >>> outputs = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 2)]
    >>> target = torch.zeros(1, 4, 4, dtype=torch.long)
    >>> round(float(ds(outputs, target)), 6)  # (1 + 0.5) * log 2
    1.039721
    >>> ds.weights_for(2)
    [1.0, 0.5]
    """

    def __init__(self, loss: Union[nn.Module, str], weights: Union[str, Sequence[float]] = "nnunet", **options):
        super().__init__()
        if "weight_mode" in options:  # MONAI's DeepSupervisionLoss(weight_mode=...)
            raise ValueError(
                f"weight_mode: MONAI's name; use weights={options['weight_mode']!r} "
                f"(one of {list(WEIGHT_MODES)} or a list of numbers)"
            )
        if isinstance(loss, str):
            from ..registry import build_loss

            loss = build_loss(loss, **options)
        elif options:
            raise ValueError(
                f"options: {sorted(options)} are build_loss options, only allowed when loss is a spec string; "
                f"got loss of type {type(loss).__name__}"
            )
        if not callable(loss):
            raise TypeError(f"loss: expected an nn.Module, a callable or a spec string, got {type(loss).__name__} {loss!r}")
        if isinstance(weights, str):
            deep_supervision_weights(weights, 1)  # validate the mode now
        else:
            if not list(weights):
                raise ValueError(f"weights: expected one weight per output (at least one), got {weights!r}")
            deep_supervision_weights(weights, len(list(weights)))
        self.loss = loss
        self.weights = weights if isinstance(weights, str) else [float(w) for w in weights]
        #: detached value of each evaluated level from the last forward call (``None`` for weight 0)
        self.last_levels: List[Optional[float]] = []

    def weights_for(self, levels: int) -> List[float]:
        """The weights used for ``levels`` outputs."""
        return deep_supervision_weights(self.weights, levels)

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped loss's schedules (if any)."""
        if hasattr(self.loss, "set_epoch"):
            self.loss.set_epoch(epoch)

    def forward(self, outputs, target, **call_kwargs) -> Tensor:
        if isinstance(outputs, Tensor):
            if isinstance(target, (list, tuple)):
                raise TypeError(
                    f"target: expected a tensor for a single output tensor, got a {type(target).__name__} of {len(target)}"
                )
            return self.loss(outputs, target, **call_kwargs)
        if not isinstance(outputs, (list, tuple)) or not outputs:
            raise TypeError(f"outputs: expected a non-empty list or tuple of logits tensors, got {outputs!r}"[:300])
        levels = len(outputs)
        for i, o in enumerate(outputs):
            if not isinstance(o, Tensor):
                raise TypeError(f"outputs[{i}]: expected a torch.Tensor, got {type(o).__name__}")
        first = outputs[0]
        for i, o in enumerate(outputs[1:], 1):
            if o.ndim != first.ndim or o.shape[:2] != first.shape[:2]:
                raise ValueError(
                    f"outputs[{i}]: expected shape (N, C, *spatial) = {tuple(first.shape[:2])} + {first.ndim - 2} spatial dims "
                    f"like outputs[0] {tuple(first.shape)}, got {tuple(o.shape)}"
                )
        weights = self.weights_for(levels)
        targets = self._targets(outputs, target)
        per_level_kwargs = []
        for k, v in call_kwargs.items():
            if not isinstance(v, (list, tuple)) or len(v) != levels:
                raise ValueError(
                    f"{k}: with deep supervision expected a list of {levels} values (one per output), got {type(v).__name__}"
                )
        for l in range(levels):
            per_level_kwargs.append({k: v[l] for k, v in call_kwargs.items()})
        total: Optional[Tensor] = None
        self.last_levels = []
        unused: Optional[Tensor] = None
        for l in range(levels):
            if weights[l] == 0:
                self.last_levels.append(None)
                if outputs[l].requires_grad and torch.is_grad_enabled():
                    # keep the head in the autograd graph with an exact 0 (DDP needs every
                    # parameter used; see "Outputs whose weight is 0" in the module docstring)
                    zero = outputs[l].float().sum() * 0.0
                    unused = zero if unused is None else unused + zero
                continue
            value = self.loss(outputs[l], targets[l], **per_level_kwargs[l])
            self.last_levels.append(float(value.detach().float().mean()))
            total = weights[l] * value if total is None else total + weights[l] * value
        if unused is not None:
            total = total + unused.to(total.dtype)
        return total

    @staticmethod
    def _targets(outputs, target) -> list:
        levels = len(outputs)
        first = outputs[0]
        if isinstance(target, (list, tuple)):
            if len(target) != levels:
                raise ValueError(f"target: expected one target per output ({levels}), got a list of {len(target)}")
            return list(target)
        if not isinstance(target, Tensor):
            raise TypeError(f"target: expected a torch.Tensor or a list of tensors, got {type(target).__name__}")
        nsp = first.ndim - 2
        spatial = tuple(first.shape[2:])
        if tuple(target.shape[-nsp:]) != spatial or target.ndim not in (first.ndim - 1, first.ndim):
            raise ValueError(
                f"target: expected spatial shape {spatial} of outputs[0] (full resolution first), "
                f"got target of shape {tuple(target.shape)}"
            )
        # a float (N, 1, *spatial) / (N, *spatial) target of C > 1 logits is a label map (the input
        # contract's reading of MONAI's float label maps): nearest, never averaged
        # (and so is a C == 1 float mask holding values outside [0, 1]: smp's 255 = ignore masks,
        # whose ignored voxels must stay exact for ignore_index)
        n, c = first.shape[:2]
        label_map = not target.is_floating_point()
        if not label_map and tuple(target.shape) in ((n,) + spatial, (n, 1) + spatial):
            label_map = c > 1 or bool(((target < 0) | (target > 1)).any())
        out = []
        for l, o in enumerate(outputs):
            size = tuple(o.shape[2:])
            if any(s > t for s, t in zip(size, spatial)):
                raise ValueError(
                    f"outputs[{l}]: spatial shape {size} is larger than the target's {spatial}; "
                    f"outputs must be ordered full resolution first"
                )
            out.append(downsample_target(target, size, label_map=label_map))
        return out

    def extra_repr(self) -> str:
        return f"weights={self.weights!r}"
