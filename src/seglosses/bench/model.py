"""The benchmark's network: MONAI's ``DynUNet`` (the nnU-Net architecture Ma et al. 2021 used)
or ``BasicUNet``, 2D or 3D, in a few size presets. No hand-written U-Net.

Size presets (filters per resolution level, from the top):

=========  ===============================  ====================================================
``tiny``   8, 16, 32, 64 (3 down-samplings)  the CPU quick run (about 0.1 M parameters in 2D)
``small``  16, 32, 64, 128, 256              a laptop GPU
``nnunet`` 32, 64, 128, 256, 320, 320        nnU-Net's default (Isensee et al. 2021), paper runs
=========  ===============================  ====================================================

Deep supervision (``deep_supervision=True``, DynUNet only): DynUNet's own heads on every decoder
level below full resolution (``levels - 2`` heads; nnU-Net's outputs: every resolution but the
bottleneck's). In training mode the network then returns ``(N, 1 + heads, C, *spatial)`` -- every
head upsampled to the full size by DynUNet, full resolution first; in eval mode only the
full-resolution logits. The training loop weights them as nnU-Net does
(``seglosses.DeepSupervision(weights="nnunet")``: 1, 1/2, 1/4, ..., the lowest output 0).

Every level uses 3x3(x3) kernels and stride 2 (nnU-Net's plans use anisotropic kernels for
anisotropic data; here the data are resampled-free and the kernels isotropic). Instance norm and
leaky ReLU as in nnU-Net. Input sizes must be divisible by :func:`size_divisor`; the sliding-window
inference pads whole images to the patch size.
"""

from __future__ import annotations

from typing import Tuple

from torch import nn

__all__ = ["MODEL_SIZES", "ARCHITECTURES", "build_model", "size_divisor", "count_parameters", "deep_supervision_heads"]

MODEL_SIZES = {
    "tiny": (8, 16, 32, 64),
    "small": (16, 32, 64, 128, 256),
    "nnunet": (32, 64, 128, 256, 320, 320),
}
ARCHITECTURES = ("dynunet", "basicunet")

#: BasicUNet has a fixed depth (4 down-samplings): features (f0..f4, f_up) per size preset
_BASIC_FEATURES = {
    "tiny": (8, 8, 16, 32, 64, 8),
    "small": (16, 16, 32, 64, 128, 16),
    "nnunet": (32, 32, 64, 128, 256, 32),
}


def _check(size: str, arch: str, spatial_dims: int) -> None:
    if size not in MODEL_SIZES:
        raise ValueError(f"model size: expected one of {sorted(MODEL_SIZES)}, got {size!r}")
    if arch not in ARCHITECTURES:
        raise ValueError(f"model architecture: expected one of {list(ARCHITECTURES)}, got {arch!r}")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims: expected 2 or 3, got {spatial_dims!r}")


def size_divisor(size: str = "tiny", arch: str = "dynunet") -> int:
    """Input sizes must be multiples of this (2 ** number of down-samplings)."""
    _check(size, arch, 2)
    if arch == "basicunet":
        return 16
    return 2 ** (len(MODEL_SIZES[size]) - 1)


def deep_supervision_heads(size: str = "tiny") -> int:
    """Number of deep-supervision heads of the DynUNet of ``size``: every decoder level below full
    resolution (``levels - 2``: 2 for ``tiny``, 4 for ``nnunet``)."""
    _check(size, "dynunet", 2)
    return len(MODEL_SIZES[size]) - 2


def build_model(
    in_channels: int,
    num_classes: int,
    spatial_dims: int,
    size: str = "tiny",
    arch: str = "dynunet",
    deep_supervision: bool = False,
) -> nn.Module:
    """A U-Net mapping ``(N, in_channels, *spatial)`` to logits ``(N, num_classes, *spatial)``.

    Binary tasks use two output channels and softmax (``num_classes == 2``), as nnU-Net does.
    ``deep_supervision``: DynUNet's deep-supervision heads (see the module docstring); without
    it the network and its initialisation are exactly those of earlier versions.
    """
    _check(size, arch, spatial_dims)
    if deep_supervision and arch != "dynunet":
        raise ValueError(f"deep_supervision: needs arch 'dynunet' (its deep-supervision heads), got arch {arch!r}")
    if arch == "basicunet":
        from monai.networks.nets import BasicUNet

        return BasicUNet(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=num_classes,
            features=_BASIC_FEATURES[size],
        )
    from monai.networks.nets import DynUNet

    filters = MODEL_SIZES[size]
    levels = len(filters)
    return DynUNet(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=num_classes,
        kernel_size=[3] * levels,
        strides=[1] + [2] * (levels - 1),
        upsample_kernel_size=[2] * (levels - 1),
        filters=list(filters),
        norm_name=("INSTANCE", {"affine": True}),
        act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
        deep_supervision=bool(deep_supervision),
        deep_supr_num=deep_supervision_heads(size) if deep_supervision else 1,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def round_patch(patch: Tuple[int, ...], divisor: int) -> Tuple[int, ...]:
    """Round each patch size up to a multiple of ``divisor``."""
    return tuple(((int(p) + divisor - 1) // divisor) * divisor for p in patch)
