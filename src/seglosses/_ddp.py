"""Batch statistics summed over the ranks of DistributedDataParallel: the one all-reduce.

With ``batch=True`` a loss pools its statistics (tp, sums, counts, class frequencies) over the
batch. Under :class:`torch.nn.parallel.DistributedDataParallel` each rank only sees its share of
the global batch; ``ddp=True`` makes the pooled statistics those of the **global** batch, by
summing them over the default process group with :func:`all_reduce_sum`.

The gradient, derived. Rank r holds local statistics ``s_r`` and computes ``S = sum_q s_q``
(the forward all-reduce) and from it a loss ``L_r = f(S)``, the same value on every rank. DDP
differentiates each rank's loss locally and then *averages* the parameter gradients over the W
ranks, so it optimises ``(1/W) sum_r L_r``. The gradient of ``sum_r L_r`` with respect to rank
r's own statistics is ``sum_q dL_q/dS`` (every rank's loss depends on ``s_r`` through ``S``):
the backward of the all-reduce is again an all-reduce of the incoming gradients. Rank r's
parameter gradient is then ``W * df/dS * ds_r/dtheta`` and DDP's average gives
``sum_r df/dS * ds_r/dtheta = df/dtheta`` -- exactly the single-process gradient of the loss on
the concatenated batch. So **the loss is not scaled by the world size**. A term that is not
pooled (the cross-entropy half of ``dice_ce``) keeps DDP's usual semantics (average of the
per-rank means) and mixes correctly with the pooled term, because both are "gradient of the
average over ranks". (The identity backward would need the loss multiplied by W instead, and
would be wrong for such mixtures.)

Every rank must call the loss and run backward (as under DDP anyway): the forward and backward
all-reduces are collectives. One all-reduce carries all the statistics of a call (they are
concatenated), in their own dtype (float32 sums; float64 stays float64).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["require_process_group", "all_reduce_sum"]


def require_process_group() -> None:
    """Raise a ``RuntimeError`` that explains what to do when no default process group exists."""
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("ddp: ddp=True needs torch.distributed, which this PyTorch build does not provide; pass ddp=False")
    if not dist.is_initialized():
        raise RuntimeError(
            "ddp: ddp=True sums the batch statistics over the default process group, but "
            "torch.distributed is not initialised; call torch.distributed.init_process_group() first "
            "(torchrun sets the environment for it) or pass ddp=False"
        )


def _all_reduce_(buf: Tensor) -> Tensor:
    import torch.distributed as dist

    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf


class _AllReduceSum(torch.autograd.Function):
    """``S = sum over ranks of x``; backward: ``dx = sum over ranks of dS`` (see module docstring)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return _all_reduce_(x.detach().clone())

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:
        # grads are materialised (zeros when unused), so every rank enters this collective
        return _all_reduce_(g.contiguous().clone())


def all_reduce_sum(tensors: Sequence[Tensor]) -> Tuple[Tensor, ...]:
    """Sum each tensor over the ranks of the default process group, with gradients.

    All tensors go through one collective (flattened and concatenated, per dtype). Values are
    identical on every rank; the backward all-reduces the incoming gradients, so that after
    DDP's averaging the parameter gradients equal those of the loss on the concatenated batch
    (derivation in the module docstring). Raises ``RuntimeError`` without a process group.
    """
    require_process_group()
    tensors = list(tensors)
    out: list = [None] * len(tensors)
    by_dtype: dict = {}
    for i, t in enumerate(tensors):
        by_dtype.setdefault((t.dtype, t.device), []).append(i)
    for idx in by_dtype.values():
        flat = torch.cat([tensors[i].reshape(-1) for i in idx])
        summed = _AllReduceSum.apply(flat) if flat.requires_grad else _all_reduce_(flat.detach().clone())
        for i, piece in zip(idx, summed.split([tensors[i].numel() for i in idx])):
            out[i] = piece.view(tensors[i].shape)
    return tuple(out)
