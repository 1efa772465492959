"""Test helpers for comparisons with MONAI, segmentation_models_pytorch (smp) and kornia.

* :func:`smp_losses`: ``segmentation_models_pytorch.losses`` through :func:`conftest.require`.
  smp's package ``__init__`` imports its encoders (timm, torchvision); its ``losses`` package
  needs only torch. When the package import fails for another reason than a missing install
  (a torchvision build that does not match torch), the ``losses`` subpackage is loaded on its own.
* :func:`translate`: a peer constructor (class name + keyword arguments, as in the peer's own
  tests) -> the seglosses loss that gives the same number, or the reason it cannot. This is the
  migration guide (``docs/coming_from_monai_smp_kornia.md``) written as code, used by
  ``tests/test_peer_values.py`` on the peers' own expected values.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Callable, Tuple

import torch
from conftest import require

import seglosses


def smp_losses():
    try:
        return importlib.import_module("segmentation_models_pytorch.losses")
    except ImportError:
        return require("segmentation_models_pytorch.losses")
    except Exception:  # a broken optional dependency of smp's encoders (e.g. torchvision)
        for name in [m for m in sys.modules if m.startswith("segmentation_models_pytorch")]:
            del sys.modules[name]
        spec = importlib.util.find_spec("segmentation_models_pytorch")
        pkg = types.ModuleType("segmentation_models_pytorch")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["segmentation_models_pytorch"] = pkg
        return importlib.import_module("segmentation_models_pytorch.losses")


Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class NotExpressible(Exception):
    """The peer's configuration has no seglosses equivalent (the message says why)."""


def _monai_mode(args: dict, c: int) -> dict:
    if args.get("other_act") is not None:
        raise NotExpressible("other_act: seglosses takes logits (softmax/sigmoid) or probabilities, not a custom activation")
    if args.get("softmax") or args.get("use_softmax"):
        return {"mode": "multiclass"}
    if args.get("sigmoid", False) or args.get("use_softmax") is False:
        return {"mode": "binary" if c == 1 else "multilabel"}
    return {"from_logits": False, "mode": "binary" if c == 1 else "multilabel"}


def _smooth(args: dict, default: float = 1e-5) -> dict:
    return {"smooth_nr": float(args.get("smooth_nr", default)), "smooth_dr": float(args.get("smooth_dr", default))}


def _monai_region(args: dict, c: int) -> dict:
    kw = {**_monai_mode(args, c), **_smooth(args)}
    kw["include_background"] = args.get("include_background", True)
    if c == 1 and not kw["include_background"]:
        raise NotExpressible("include_background=False with one channel: MONAI warns and ignores it, seglosses raises")
    for k in ("batch", "reduction", "soft_label"):
        if k in args:
            kw[k] = args[k]
    if args.get("weight") is not None:
        raise NotExpressible("weight: MONAI multiplies per-class losses without normalising; seglosses class_weights is a weighted mean")
    return kw


def translate(project: str, peer: str, args: dict, c: int) -> Tuple[Loss, float]:
    """``(loss, scale)`` with ``loss(x, y) * scale`` equal to the peer's value, or :class:`NotExpressible`."""
    name = peer.rsplit(".", 1)[-1]
    args = {k: v for k, v in args.items() if v is not None or k == "ignore_index"}
    if project == "MONAI":
        if name in ("DiceLoss", "TverskyLoss", "GeneralizedDiceLoss"):
            kw = _monai_region(args, c)
            if name == "DiceLoss":
                if args.get("jaccard"):  # (2tp + s) / (2 union + s) == (tp + s/2) / (union + s/2)
                    kw["smooth_nr"] /= 2
                    kw["smooth_dr"] /= 2
                    return seglosses.build_loss("iou", **kw), 1.0
                if args.get("squared_pred"):
                    kw["squared"] = True
                return seglosses.build_loss("dice", **kw), 1.0
            if name == "TverskyLoss":
                kw.update(alpha=args.get("alpha", 0.5), beta=args.get("beta", 0.5))
                return seglosses.build_loss("tversky", **kw), 1.0
            if args.get("w_type", "square") != "square":
                raise NotExpressible("w_type: seglosses gdice uses Sudre's square weights only")
            return seglosses.build_loss("gdice", **kw), 1.0
        if name == "FocalLoss":
            kw = _monai_mode({**args, "use_softmax": args.get("use_softmax", False)}, c)
            kw["include_background"] = args.get("include_background", True)
            kw["gamma"] = args.get("gamma", 2.0)
            kw["reduction"] = args.get("reduction", "mean")
            if args.get("weight") is not None:
                if kw["reduction"] != "none":
                    raise NotExpressible("weight: MONAI scales the elements, seglosses class_weights is a weighted mean")
                w = args["weight"]
                kw["class_weights"] = w["tensor"] if isinstance(w, dict) else w
            scale = 1.0
            if kw["mode"] == "multiclass":
                scale = 1.0 / c  # MONAI's softmax focal averages over the classes as well
                if args.get("alpha") is not None:
                    kw.update(alpha=args["alpha"], alpha_foreground=True)
            elif args.get("alpha") is not None:
                kw["alpha"] = args["alpha"]
            return seglosses.build_loss("focal", **kw), scale
        if name == "DiceCELoss":
            # MONAI: Dice with the given activation; softmax CE on the logits (BCE with one channel)
            w = args.get("weight")
            w = None if w is None else (w["tensor"] if isinstance(w, dict) else w)
            dice_kw = {**_monai_mode(args, c), **_smooth(args), "include_background": args.get("include_background", True)}
            lam_d, lam_ce = args.get("lambda_dice", 1.0), args.get("lambda_ce", 1.0)
            if c == 1:  # BCEWithLogitsLoss(pos_weight=w) is weighted_bce(beta=w)
                bce = {"mode": "binary", "beta": 1.0 if w is None else float(w[0])}
                return seglosses.build_loss(f"{lam_d}*dice+{lam_ce}*weighted_bce", dice=dice_kw, weighted_bce=bce), 1.0
            if w is not None:
                dice_kw["class_weights"] = w
            ce_kw = {"mode": "multiclass", "class_weights": w}
            return seglosses.build_loss(f"{lam_d}*dice+{lam_ce}*ce", dice=dice_kw, ce=ce_kw), 1.0
        if name in ("HausdorffDTLoss", "LogHausdorffDTLoss"):
            kw = _monai_mode(args, c)
            kw["include_background"] = args.get("include_background", False)
            if c == 1 and not kw["include_background"]:
                raise NotExpressible("include_background=False with one channel: MONAI warns and ignores it, seglosses raises")
            kw["alpha"] = args.get("alpha", 2.0)
            kw["reduction"] = args.get("reduction", "mean")
            kw["spatial_mean"] = True
            if args.get("batch"):
                raise NotExpressible("batch: MONAI's HausdorffDTLoss batch flag only changes the reduction axes")
            return seglosses.build_loss("log_hausdorff" if name.startswith("Log") else "hausdorff", **kw), 1.0
    if project == "kornia":
        ii = args.get("ignore_index", -100)
        if name == "binary_focal_loss_with_logits":  # reduction "none" by default: the elements
            return seglosses.build_loss("focal", mode="binary", alpha=args.get("alpha"), gamma=args.get("gamma", 2.0), reduction="none"), 1.0
        w = args.get("weight")
        w = None if w is None else w["tensor"]
        if name == "DiceLoss":
            avg = args.get("average", "micro")
            if avg == "macro":
                raise NotExpressible("average='macro': kornia leaves out classes absent from the sample's target")
            return seglosses.build_loss(
                "dice", average="micro", smooth_nr=0.0, smooth_dr=args.get("eps", 1e-8), ignore_index=ii, class_weights=w
            ), 1.0
        if name == "TverskyLoss":
            raise NotExpressible("kornia's TverskyLoss leaves out classes absent from the sample's target")
    if project == "smp":
        mode = args.get("mode")
        kw = {"mode": mode, "from_logits": args.get("from_logits", True)}
        if name in ("DiceLoss", "JaccardLoss", "TverskyLoss"):
            kw.update(batch=True, smooth=args.get("smooth", 0.0), ignore_index=args.get("ignore_index"))
            if name == "TverskyLoss":
                kw.update(alpha=args.get("alpha", 0.5), beta=args.get("beta", 0.5))
            return seglosses.build_loss({"DiceLoss": "dice", "JaccardLoss": "iou", "TverskyLoss": "tversky"}[name], **kw), 1.0
        if name in ("SoftCrossEntropyLoss", "SoftBCEWithLogitsLoss"):
            # smp divides by every element, ignored ones included; seglosses by the counted ones
            return seglosses.build_loss(
                "ce", label_smoothing=args["smooth_factor"], ignore_index=args.get("ignore_index"),
                mode="multiclass" if name == "SoftCrossEntropyLoss" else "binary",
            ), None
    raise NotExpressible(f"{project} {name}: no mapping written")
