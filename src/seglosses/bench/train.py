"""Training one (task, loss, learning rate) configuration: the protocol of Ma et al. (2021), sec. 3.2.

* Adam (beta1 = 0.9, beta2 = 0.999) at the run's learning rate.
* An *epoch* is a fixed number of iterations (``epoch_length``; nnU-Net: 250). Once per epoch the
  loss's ``set_epoch(epoch)`` is called (schedules of boundary / Hausdorff compounds), the mean
  training loss is logged, the validation Dice is measured when there are validation cases, and
  the learning rate is multiplied by 0.2 when an exponential moving average of the epoch loss has
  not improved for ``plateau_patience`` epochs, down to ``min_lr`` = 1e-6 (nnU-Net v1).
* Batches come from :func:`seglosses.bench.data.sample_batch`: foreground oversampling (at least
  33 % of the samples contain foreground) and random mirroring along every axis.
* Loss-specific schedules (Ma et al. 3.2): when :func:`seglosses.losses.schedules.training_stages`
  exists it splits a run into stages, e.g. CE then Lovász, Dice then Dice+boundary; the model
  carries over from stage to stage, the optimizer and the plateau scheduler restart, and each
  stage's epochs count from 0 (so a schedule starts with its initial weights).
* Seeds are fixed (torch, numpy, Python) and deterministic algorithms requested, so a run on the
  same machine and device is reproducible.
* A loss that becomes NaN or infinite raises :class:`NonFiniteLoss`; the runner records the run
  as failed with that reason (Ma et al. Table 3 "-").
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .data import sample_batch
from .evaluate import predict_case, mean_foreground_dice
from .model import build_model
from .presets import LossConfig

__all__ = [
    "TrainConfig",
    "TrainResult",
    "NonFiniteLoss",
    "train_run",
    "loss_stages",
    "seed_everything",
    "resolve_device",
]


#: seeding the global torch generator and initialising a model happen under this lock, so that
#: runs executed concurrently in threads (``--workers``) get the same weights as run one by one
_INIT_LOCK = threading.Lock()


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (everything but the loss and the data)."""

    lr: float = 3e-3
    iterations: int = 200
    epoch_length: int = 25
    batch_size: int = 8
    patch_size: Tuple[int, ...] = (64, 64)
    plateau_patience: int = 3
    lr_factor: float = 0.2
    min_lr: float = 1e-6
    ema: float = 0.9
    fg_fraction: float = 0.33
    mirror: bool = True
    model_size: str = "tiny"
    arch: str = "dynunet"
    seed: int = 0
    device: str = "cpu"
    overlap: float = 0.25
    validate_every_epoch: bool = True
    deep_supervision: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["patch_size"] = list(self.patch_size)
        if not self.deep_supervision:  # stored run configs stay as before unless it is on
            d.pop("deep_supervision")
        return d


@dataclass
class TrainResult:
    model: torch.nn.Module
    curves: List[dict] = field(default_factory=list)
    val_dice: Optional[float] = None
    stages: List[dict] = field(default_factory=list)
    iterations_done: int = 0
    seconds: float = 0.0


def seed_everything(seed: int, device: str = "cpu") -> None:
    """Fix Python, numpy and torch seeds and ask torch for deterministic algorithms."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.cuda.manual_seed_all(seed)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; checks that CUDA exists when asked."""
    device = (device or "cpu").lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"--device: {device!r} requested but torch.cuda.is_available() is False (torch {torch.__version__})"
        )
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"--device: expected 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
    return device


def loss_stages(config: LossConfig) -> List[Tuple[LossConfig, float]]:
    """The training stages of a loss configuration: ``[(LossConfig, fraction of iterations)]``.

    From :func:`seglosses.losses.schedules.training_stages` (Lovász after CE, Dice+boundary /
    Dice+Hausdorff after Dice: Ma et al. 3.2); a loss without a schedule is one stage.
    A stage whose spec is the configuration's own spec gets the configuration's options.
    """
    from seglosses.losses.schedules import training_stages

    stages = list(training_stages(config.spec))
    if not stages:
        return [(config, 1.0)]
    total = sum(float(f) for _, f in stages)
    if total <= 0:
        raise ValueError(f"training_stages({config.spec!r}) returned fractions summing to {total}")
    out = []
    for spec, fraction in stages:
        spec = str(spec)
        if spec == config.spec:
            out.append((config, float(fraction) / total))
        else:
            out.append((LossConfig(spec, spec, {}), float(fraction) / total))
    return out


def output_channels(stages: Sequence[Tuple[LossConfig, float]], num_classes: int) -> int:
    """Network outputs for a run: ``num_classes`` (softmax), or 1 (a sigmoid head) for a 2-class
    task when a stage's loss has no multiclass mode (e.g. ``weighted_bce``)."""
    from seglosses.registry import loss_info, parse_spec

    binary_only = []
    for cfg, _ in stages:
        modes = None
        for _, term in parse_spec(cfg.spec):
            m = set(loss_info(term).modes)
            modes = m if modes is None else modes & m
        if modes is not None and "multiclass" not in modes:
            binary_only.append((cfg.spec, sorted(modes)))
    if not binary_only:
        return num_classes
    if num_classes == 2 and all("binary" in m for _, m in binary_only):
        return 1
    spec, modes = binary_only[0]
    raise ValueError(
        f"loss {spec!r} supports only {modes} mode(s); this task has {num_classes} classes (background included)"
    )


def _split_iterations(total: int, fractions: Sequence[float]) -> List[int]:
    counts = [int(round(total * f)) for f in fractions]
    counts[-1] = total - sum(counts[:-1])
    return [max(c, 0) for c in counts]


def train_run(
    train_cases: Sequence,
    val_cases: Sequence,
    loss_config: LossConfig,
    cfg: TrainConfig,
    *,
    num_classes: int,
    in_channels: int,
    train_dims: int,
    slice_axis_of: Optional[Callable] = None,
    progress: Optional[Callable[[int, dict], None]] = None,
) -> TrainResult:
    """Train a fresh model with one loss configuration; return the model and its curves.

    Parameters
    ----------
    train_cases : sequence of Case
        What batches are sampled from (2D slices when a 3D dataset is trained in 2D).
    val_cases : sequence of Case
        Whole cases (at the dataset's dims) for the validation Dice; may be empty.
    progress : callable, optional
        ``progress(iterations_done, info)`` after every iteration (for a progress bar).

    Raises
    ------
    NonFiniteLoss
        The loss became NaN/inf (the curves up to that point are in ``exc.curves``).
    """
    device = cfg.device
    stages = loss_stages(loss_config)
    out_channels = output_channels(stages, num_classes)
    with _INIT_LOCK:
        seed_everything(cfg.seed, device)
        model = build_model(
            in_channels, out_channels, train_dims, cfg.model_size, cfg.arch, deep_supervision=cfg.deep_supervision
        ).to(device)
    rng = np.random.default_rng([cfg.seed, 1])
    counts = _split_iterations(cfg.iterations, [f for _, f in stages])
    curves: List[dict] = []
    stage_info: List[dict] = []
    done = 0
    t0 = time.perf_counter()
    val_dice = None
    for stage_index, ((stage_cfg, _), n_iter) in enumerate(zip(stages, counts)):
        stage_info.append(
            {
                "stage": stage_index,
                "loss": stage_cfg.name,
                "spec": stage_cfg.spec,
                "options": stage_cfg.options,
                "iterations": n_iter,
            }
        )
        if n_iter <= 0:
            continue
        loss_fn = stage_cfg.build().to(device)
        if cfg.deep_supervision:  # nnU-Net's weights over DynUNet's outputs (full resolution first)
            from seglosses.losses.deep_supervision import DeepSupervision

            loss_fn = DeepSupervision(loss_fn, weights="nnunet")
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=cfg.lr_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr
        )
        ema = None
        n_epochs = math.ceil(n_iter / cfg.epoch_length)
        it_stage = 0
        for epoch in range(n_epochs):
            if hasattr(loss_fn, "set_epoch"):
                loss_fn.set_epoch(epoch)
            model.train()
            losses = []
            n_this = min(cfg.epoch_length, n_iter - it_stage)
            for _ in range(n_this):
                images, labels = sample_batch(
                    train_cases,
                    cfg.batch_size,
                    cfg.patch_size,
                    rng,
                    cfg.fg_fraction,
                    mirror=cfg.mirror,
                    as_torch=True,
                )
                images = images.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
                logits = model(images)
                # distance-based losses compute their maps from the target themselves
                if cfg.deep_supervision and logits.ndim == images.ndim + 1:  # (N, outputs, C, ...)
                    logits = list(logits.unbind(1))
                loss = loss_fn(logits, labels)
                value = float(loss.detach())
                if not math.isfinite(value):
                    exc = NonFiniteLoss(
                        f"loss became {value} at iteration {done + 1} (stage {stage_index}: {stage_cfg.spec}, epoch {epoch})"
                    )
                    exc.curves = curves  # type: ignore[attr-defined]
                    exc.iterations_done = done  # type: ignore[attr-defined]
                    raise exc
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(value)
                done += 1
                it_stage += 1
                if progress is not None:
                    progress(done, {"loss": value, "lr": optimizer.param_groups[0]["lr"]})
            epoch_loss = float(np.mean(losses))
            ema = epoch_loss if ema is None else cfg.ema * ema + (1 - cfg.ema) * epoch_loss
            last_epoch = epoch == n_epochs - 1 and stage_index == len(stages) - 1
            vd = None
            if val_cases and (cfg.validate_every_epoch or last_epoch):
                vd = validation_dice(model, val_cases, cfg, train_dims, num_classes, slice_axis_of)
            curves.append(
                {
                    "stage": stage_index,
                    "epoch": epoch,
                    "iteration": done,
                    "train_loss": epoch_loss,
                    "val_dice": vd,
                    "lr": optimizer.param_groups[0]["lr"],
                }
            )
            if last_epoch:
                val_dice = vd
            scheduler.step(ema)
    return TrainResult(
        model=model,
        curves=curves,
        val_dice=val_dice,
        stages=stage_info,
        iterations_done=done,
        seconds=time.perf_counter() - t0,
    )


@torch.no_grad()
def validation_dice(
    model, cases, cfg: TrainConfig, train_dims: int, num_classes: int, slice_axis_of=None
) -> float:
    """Mean over validation cases of the mean foreground Dice (classes absent from both maps skipped)."""
    values = []
    for case in cases:
        pred = predict_case(
            model,
            case,
            patch_size=cfg.patch_size,
            train_dims=train_dims,
            slice_axis=slice_axis_of(case) if slice_axis_of else 0,
            device=cfg.device,
            overlap=cfg.overlap,
        )
        d = mean_foreground_dice(pred, case.label, num_classes)
        if not math.isnan(d):
            values.append(d)
    return float(np.mean(values)) if values else float("nan")
