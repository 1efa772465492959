"""Inference and per-case evaluation of a trained model (Ma et al. 2021, sec. 3.3; Jadon 2020, sec. III).

* Inference runs on whole cases with MONAI's :func:`monai.inferers.sliding_window_inference`
  (windows of the training patch size, Gaussian blending, ``overlap`` 0.25 by default): an image
  no larger than the patch is one padded window, a large volume is tiled. A 3D dataset trained on
  2D slices is predicted slice by slice along its slice axis and stacked back, so evaluation is
  always per 3D case.
* Metrics per case and per foreground class come from :func:`seglosses.metrics.evaluate_case`:
  DSC, IoU, sensitivity, specificity, precision, NSD at ``tolerance`` mm (default 1 mm, the
  Decathlon's), HD, HD95 and ASSD, with the voxel spacing of the case. Every foreground class of
  the dataset is evaluated, also when absent from both maps (then DSC = NSD = 1, distances 0:
  the documented both-empty values).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from seglosses.metrics import METRIC_KEYS, TOPOLOGY_KEYS, dice_score, evaluate_case, evaluate_topology

__all__ = ["predict_case", "evaluate_model", "mean_foreground_dice"]


def _predict_batch(
    model, images: torch.Tensor, patch_size: Sequence[int], device: str, overlap: float
) -> np.ndarray:
    """Labels of a batch ``(N, C, *spatial)`` through sliding-window inference (argmax over the
    classes; a 1-channel binary head: logit > 0)."""
    from monai.inferers import sliding_window_inference

    images = images.to(device)
    spatial = tuple(images.shape[2:])
    roi = tuple(int(p) for p in patch_size)
    mode = "constant" if all(s <= r for s, r in zip(spatial, roi)) else "gaussian"
    logits = sliding_window_inference(
        images,
        roi,
        sw_batch_size=max(1, min(8, images.shape[0] * 2)),
        predictor=model,
        overlap=overlap,
        mode=mode,
    )
    if logits.shape[1] == 1:  # a binary (sigmoid) head: foreground where the logit is positive
        return (logits[:, 0] > 0).to(torch.int64).cpu().numpy()
    return logits.argmax(dim=1).to(torch.int64).cpu().numpy()


@torch.no_grad()
def predict_case(
    model,
    case,
    *,
    patch_size: Sequence[int],
    train_dims: int,
    slice_axis: int = 0,
    device: str = "cpu",
    overlap: float = 0.25,
    slice_batch: int = 16,
) -> np.ndarray:
    """Label map ``(*spatial)`` (int64) predicted for ``case``.

    ``train_dims < case.spatial_dims`` (a 3D case with a 2D network): slice by slice along
    ``slice_axis``, ``slice_batch`` slices at a time.
    """
    was_training = model.training
    model.eval()
    try:
        image = np.ascontiguousarray(case.image, dtype=np.float32)
        if train_dims == case.spatial_dims:
            return _predict_batch(model, torch.from_numpy(image)[None], patch_size, device, overlap)[0]
        if train_dims != 2 or case.spatial_dims != 3:
            raise ValueError(f"train_dims {train_dims} cannot predict a {case.spatial_dims}D case")
        axis = int(slice_axis) % 3
        stack = np.moveaxis(image, axis + 1, 0)  # (S, C, ...2D)
        outs = []
        for start in range(0, stack.shape[0], slice_batch):
            chunk = torch.from_numpy(np.ascontiguousarray(stack[start : start + slice_batch]))
            outs.append(_predict_batch(model, chunk, patch_size, device, overlap))
        pred = np.concatenate(outs, axis=0)  # (S, H, W)
        return np.moveaxis(pred, 0, axis)
    finally:
        model.train(was_training)


def mean_foreground_dice(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> float:
    """Mean hard Dice (:func:`seglosses.metrics.dice_score`) over the foreground classes present
    in ``gt`` or ``pred``; NaN when none is (a class absent from both is skipped, not counted as 1).

    >>> mean_foreground_dice(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), num_classes=3)
    0.6666666666666666
    >>> mean_foreground_dice(np.zeros(4, int), np.zeros(4, int), num_classes=2)
    nan
    """
    pred = np.asarray(pred).ravel()
    gt = np.asarray(gt).ravel()
    values = []
    for c in range(1, num_classes):
        g, p = gt == c, pred == c
        if g.any() or p.any():
            values.append(dice_score(gt=g, pred=p))
    return float(np.mean(values)) if values else float("nan")


def evaluate_model(
    model,
    cases: Sequence,
    *,
    num_classes: int,
    label_names: Sequence[str],
    patch_size: Sequence[int],
    train_dims: int,
    slice_axis_of=None,
    device: str = "cpu",
    tolerance: float = 1.0,
    overlap: float = 0.25,
    keep_predictions: bool = True,
    topology: bool = False,
) -> Tuple[List[dict], Dict[str, np.ndarray]]:
    """Predict and evaluate every case (with ``topology``: also the
    :data:`seglosses.metrics.TOPOLOGY_KEYS`, clDice and Betti-number errors, in the same rows).

    Returns
    -------
    rows : list of dict
        One per case x foreground class: ``case_id``, ``label``, ``label_name`` and the
        :data:`seglosses.metrics.METRIC_KEYS` (floats; distances in mm, ``inf`` when one mask is
        empty).
    predictions : dict
        ``case_id -> predicted label map`` (empty when ``keep_predictions`` is False).
    """
    rows: List[dict] = []
    predictions: Dict[str, np.ndarray] = {}
    labels = list(range(1, num_classes))
    for case in cases:
        axis = slice_axis_of(case) if slice_axis_of is not None else 0
        pred = predict_case(
            model,
            case,
            patch_size=patch_size,
            train_dims=train_dims,
            slice_axis=axis,
            device=device,
            overlap=overlap,
        )
        result = evaluate_case(
            pred_labels=pred, gt_labels=case.label, labels=labels, spacing=case.spacing, tolerance=tolerance
        )
        topo = evaluate_topology(pred, case.label, labels) if topology else {}
        for lab in labels:
            metrics = {**result[lab], **topo.get(lab, {})}
            row = {"case_id": case.case_id, "label": lab, "label_name": label_names[lab]}
            for key in METRIC_KEYS + (TOPOLOGY_KEYS if topology else ()):
                v = metrics.get(key, float("nan"))
                row[key] = float(v) if v is not None else float("nan")
            rows.append(row)
        if keep_predictions:
            predictions[case.case_id] = pred.astype(np.uint8 if num_classes <= 255 else np.int32)
    return rows, predictions
