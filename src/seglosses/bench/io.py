"""Reading and writing the image files of the benchmark: NIfTI volumes and 2D images / masks.

Every reader raises a ``ValueError`` whose message starts with the file path and says what is
wrong, so that :func:`seglosses.bench.data_layouts.load_dataset` can report a corrupt case before any
training starts.

Axis order
----------
NIfTI arrays are kept in the file's voxel order ``(i, j, k)`` as nibabel returns them (no
reorientation, no transposition), and the spacing is the header's ``pixdim`` (``get_zooms()``) in
the same order, so ``array.shape[a]`` and ``spacing[a]`` always describe the same axis. A 4-D
image ``(i, j, k, c)`` (multi-modal Medical Segmentation Decathlon tasks) is returned channels
first, ``(c, i, j, k)``. 2D images are ``(H, W)`` in numpy order with a spacing of 1.0 per axis
(pixel units): PNG and TIFF carry no reliable physical pixel size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PathLike = str | Path

NIFTI_ENDINGS = (".nii.gz", ".nii")
IMAGE_2D_ENDINGS = (".png", ".tif", ".tiff")
ENDINGS = NIFTI_ENDINGS + IMAGE_2D_ENDINGS

__all__ = [
    "ENDINGS",
    "IMAGE_2D_ENDINGS",
    "NIFTI_ENDINGS",
    "file_ending",
    "read_image",
    "read_image_2d",
    "read_label",
    "read_mask_2d",
    "read_nifti",
    "strip_ending",
    "write_nifti",
]


def file_ending(path: PathLike) -> str:
    """The supported ending of ``path`` (``".nii.gz"``, ``".png"``, ...), or ``""``."""
    name = Path(path).name.lower()
    for ending in ENDINGS:
        if name.endswith(ending):
            return ending
    return ""


def strip_ending(name: str) -> str:
    """``"case_01.nii.gz"`` -> ``"case_01"``; unknown endings lose their last suffix only."""
    ending = file_ending(name)
    if ending:
        return name[: -len(ending)]
    return Path(name).stem


def _fail(path: PathLike, problem: str) -> ValueError:
    return ValueError(f"{path}: {problem}")


# --------------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------------


def read_nifti(path: PathLike) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read a NIfTI file; return ``(array, spacing)`` in the file's voxel order.

    ``spacing`` has one entry per spatial axis (the first three zooms at most): the fourth
    dimension of a 4-D file is treated as channels / modalities, not as space.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise _fail(path, "file not found")
    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
        zooms = tuple(float(z) for z in img.header.get_zooms())
    except Exception as exc:  # noqa: BLE001  (nibabel raises ImageFileError, EOFError, zlib.error, ...)
        raise _fail(path, f"unreadable NIfTI file ({type(exc).__name__}: {exc})") from None
    data = np.asarray(data)
    n_spatial = min(data.ndim, 3)
    spacing = tuple(zooms[:n_spatial])
    if any(not np.isfinite(s) or s <= 0 for s in spacing):
        raise _fail(path, f"invalid voxel spacing {spacing} in the header (pixdim must be > 0)")
    return data, spacing


def write_nifti(path: PathLike, array: np.ndarray, spacing=None) -> Path:
    """Write ``array`` to ``path`` as NIfTI with a diagonal affine of ``spacing`` (mm).

    ``array`` is in voxel order ``(i, j, k[, c])``; ``spacing`` has one value per spatial axis
    (default 1 mm). Used by the tests and by code that saves predictions.
    """
    import nibabel as nib

    array = np.asarray(array)
    n_spatial = min(array.ndim, 3)
    spacing = tuple(float(s) for s in (spacing if spacing is not None else (1.0,) * n_spatial))
    affine = np.eye(4)
    for a, s in enumerate(spacing[:3]):
        affine[a, a] = s
    img = nib.Nifti1Image(array, affine)
    zooms = list(spacing) + [1.0] * (array.ndim - len(spacing))
    img.header.set_zooms(zooms[: array.ndim])
    path = Path(path)
    nib.save(img, str(path))
    return path


# --------------------------------------------------------------------------------------------
# 2D images (PNG, TIFF)
# --------------------------------------------------------------------------------------------


def _read_2d_raw(path: Path) -> np.ndarray:
    """Pixel array of a PNG / TIFF file: ``(H, W)`` or ``(H, W, C)``; palette PNGs give indices."""
    if not path.is_file():
        raise _fail(path, "file not found")
    ending = file_ending(path)
    try:
        if ending in (".tif", ".tiff"):
            import tifffile

            arr = np.asarray(tifffile.imread(str(path)))
        else:
            from PIL import Image

            with Image.open(str(path)) as im:
                im.load()
                if im.mode in ("RGBA", "LA"):
                    im = im.convert(im.mode[:-1])  # drop alpha
                elif im.mode == "CMYK":
                    im = im.convert("RGB")
                arr = np.array(im)
    except Exception as exc:  # noqa: BLE001  (PIL / tifffile raise many types for corrupt files)
        raise _fail(path, f"unreadable image file ({type(exc).__name__}: {exc})") from None
    arr = np.squeeze(arr)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # (C, H, W) TIFF -> (H, W, C)
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]  # RGBA TIFF: drop alpha
    if arr.ndim not in (2, 3):
        raise _fail(path, f"expected a 2D image (H, W) or (H, W, C), got an array of shape {arr.shape}")
    return arr


def read_image_2d(path: PathLike) -> tuple[np.ndarray, tuple[float, float]]:
    """Read a PNG/TIFF image (8- or 16-bit, gray or RGB); return ``((C, H, W) float32, (1.0, 1.0))``."""
    path = Path(path)
    arr = _read_2d_raw(path)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = np.moveaxis(arr, -1, 0)
    return np.ascontiguousarray(arr, dtype=np.float32), (1.0, 1.0)


def read_mask_2d(path: PathLike) -> np.ndarray:
    """Read a PNG/TIFF mask; return ``(H, W)`` values, or ``(H, W, 3)`` for a colour-coded mask.

    A colour mask whose three channels are equal is returned as gray. Palette PNGs return palette
    indices (the usual way of storing class masks).
    """
    path = Path(path)
    arr = _read_2d_raw(path)
    if arr.ndim == 3 and (
        arr.shape[-1] == 1
        or (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]))
    ):
        arr = arr[..., 0]  # gray stored as RGB
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise _fail(path, "mask contains NaN or infinite values")
        rounded = np.rint(arr)
        if np.abs(arr - rounded).max() > 1e-3:
            raise _fail(path, "mask contains non-integer values")
        arr = rounded.astype(np.int64)
    elif arr.dtype == bool:
        arr = arr.astype(np.int64)
    return arr


# --------------------------------------------------------------------------------------------
# Dispatch by file ending
# --------------------------------------------------------------------------------------------


def read_image(path: PathLike) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read an image file of any supported ending; return ``((C, *spatial) float32, spacing)``.

    NIfTI: 3-D ``(i, j, k)`` -> ``(1, i, j, k)``; 4-D ``(i, j, k, c)`` -> ``(c, i, j, k)``; 2-D
    ``(i, j)`` -> ``(1, i, j)``. PNG/TIFF: see :func:`read_image_2d`.
    """
    path = Path(path)
    if file_ending(path) in NIFTI_ENDINGS:
        data, spacing = read_nifti(path)
        if data.ndim == 4:
            data = np.moveaxis(data, -1, 0)
        elif data.ndim in (2, 3):
            data = data[None]
        else:
            raise _fail(path, f"expected a 2-D, 3-D or 4-D (multi-modal) image, got shape {data.shape}")
        if data.dtype.kind not in "biuf":
            raise _fail(path, f"unsupported voxel type {data.dtype}")
        return np.ascontiguousarray(data, dtype=np.float32), spacing
    if file_ending(path) in IMAGE_2D_ENDINGS:
        return read_image_2d(path)
    raise _fail(path, f"unsupported file type (supported: {', '.join(ENDINGS)})")


def read_label(path: PathLike) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read a label file; return ``(integer array (*spatial) or (H, W, 3) colour mask, spacing)``.

    Float label volumes are accepted when every value is an integer (within 1e-3); anything else
    raises a ``ValueError`` naming the file.
    """
    path = Path(path)
    ending = file_ending(path)
    if ending in NIFTI_ENDINGS:
        data, spacing = read_nifti(path)
        while data.ndim > 3 and data.shape[-1] == 1:
            data = data[..., 0]
        if data.ndim > 3:
            raise _fail(path, f"expected a 3-D label volume, got shape {data.shape}")
        if data.dtype.kind == "f":
            if not np.isfinite(data).all():
                raise _fail(path, "label volume contains NaN or infinite values")
            rounded = np.rint(data)
            if np.abs(data - rounded).max() > 1e-3:
                raise _fail(path, "label volume contains non-integer values")
            data = rounded
        elif data.dtype.kind not in "biu":
            raise _fail(path, f"unsupported label voxel type {data.dtype}")
        return data.astype(np.int64), spacing
    if ending in IMAGE_2D_ENDINGS:
        return read_mask_2d(path), (1.0, 1.0)
    raise _fail(path, f"unsupported file type (supported: {', '.join(ENDINGS)})")
