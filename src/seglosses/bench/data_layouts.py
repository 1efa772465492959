"""Loading real data from disk: the layout is detected, every case is read and validated first.

Supported layouts
-----------------
1. **Medical Segmentation Decathlon** (Simpson et al. 2019, arXiv:1902.09063)::

       Task03_Liver/dataset.json       {"labels": {"0": "background", "1": "liver"},
                                        "modality": {"0": "CT"},
                                        "training": [{"image": "./imagesTr/liver_0.nii.gz",
                                                      "label": "./labelsTr/liver_0.nii.gz"}, ...]}
       Task03_Liver/imagesTr/liver_0.nii.gz      3-D (i, j, k), or 4-D (i, j, k, modality)
       Task03_Liver/labelsTr/liver_0.nii.gz

2. **nnU-Net raw** (v2 ``dataset.json`` with ``channel_names``, ``labels`` as name -> value and
   ``file_ending``; v1 = MSD json with ``_0000`` files)::

       Dataset003_Liver/dataset.json   {"channel_names": {"0": "CT"},
                                        "labels": {"background": 0, "liver": 1},
                                        "numTraining": 131, "file_ending": ".nii.gz"}
       Dataset003_Liver/imagesTr/liver_0_0000.nii.gz    one file per channel
       Dataset003_Liver/labelsTr/liver_0.nii.gz

   ``file_ending`` may also be ``.png`` or ``.tif`` (nnU-Net's 2D datasets).

3. **2D folders**: ``images/`` and ``masks/`` with matching file stems (``a.png`` <-> ``a.png``
   or ``a.tif``); PNG or TIFF, 8- or 16-bit, gray or RGB(A) images (RGB -> 3 channels, alpha
   dropped); gray, palette or colour-coded masks. An optional ``dataset.json`` with ``labels``
   names the gray mask values.

Labels
------
The label values are those declared in ``dataset.json`` (MSD ``{"1": "liver"}`` or nnU-Net
``{"liver": 1}``), else every value found in the label files; they are sorted and remapped to
``0 .. C-1`` (``(0, 255)`` -> ``(0, 1)``), with the declared names, else ``"background"`` for the
value 0 and ``"label_<value>"`` for the others (``"#rrggbb"`` for colour-coded masks).
``Dataset.source_labels`` keeps the original values.

Validation (before any training)
--------------------------------
All cases are read; every problem found is collected and one ``ValueError`` lists them, each line
naming the file: unreadable or missing file, image without a label (or label without an image),
image/label shape mismatch, image/label spacing mismatch, channel files of different shapes, a
different number of channels than the other cases, NaN or infinite intensities, label values not
declared in ``dataset.json``, non-integer label values, nnU-Net region or ``ignore`` labels (not
supported).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from . import io
from .data import Case, Dataset, normalize_images, remap_labels, resolve_normalization

__all__ = ["detect_layout", "load_dataset"]

MAX_PROBLEMS_SHOWN = 25
_CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


class _Problems:
    """Collects ``path: problem`` lines; raises them all at once."""

    def __init__(self, root: Path):
        self.root = root
        self.lines: list = []

    def add(self, path, problem: str) -> None:
        self.lines.append(f"{path}: {problem}")

    def add_error(self, exc: ValueError) -> None:
        self.lines.append(str(exc))

    def raise_if_any(self) -> None:
        if not self.lines:
            return
        shown = self.lines[:MAX_PROBLEMS_SHOWN]
        more = len(self.lines) - len(shown)
        text = "\n  - ".join(shown)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise ValueError(
            f"dataset {self.root}: {len(self.lines)} problem(s) found while validating the cases "
            f"(nothing was trained):\n  - {text}{tail}"
        )


def _visible(files) -> list:
    """Drop hidden files (``.DS_Store``, macOS ``._liver_0.nii.gz`` forks shipped in MSD tars)."""
    return sorted(f for f in files if f.is_file() and not f.name.startswith("."))


def detect_layout(path) -> str:
    """``"decathlon"`` (MSD or nnU-Net raw) or ``"folders"``; ``ValueError`` if neither."""
    root = Path(path)
    if root.is_file() and root.name == "dataset.json":
        root = root.parent
    if not root.is_dir():
        raise ValueError(f"{root}: no such dataset folder")
    if (root / "imagesTr").is_dir() or (root / "labelsTr").is_dir():
        return "decathlon"
    if (root / "images").is_dir() and ((root / "masks").is_dir() or (root / "labels").is_dir()):
        return "folders"
    if (root / "dataset.json").is_file():
        return "decathlon"  # reports the missing imagesTr/ labelsTr/
    raise ValueError(
        f"{root}: unknown dataset layout; expected dataset.json + imagesTr/ + labelsTr/ (Medical Segmentation "
        "Decathlon or nnU-Net raw) or images/ + masks/ (2D folders)"
    )


def load_dataset(path, spatial_dims: int | None = None, normalize="auto", name: str | None = None) -> Dataset:
    """Load a dataset from disk, detecting its layout; every case is read and validated first.

    Layouts: Medical Segmentation Decathlon (``dataset.json`` + ``imagesTr/`` + ``labelsTr/``),
    nnU-Net raw (the same with ``channel_names``/``labels`` in ``dataset.json`` and
    ``CASE_0000.nii.gz`` channel files), and 2D folders (``images/`` + ``masks/``). See
    this module's docstring for details and the errors raised.

    ``spatial_dims``: ``None`` keeps the data's dims; ``2`` on volumes keeps 3D cases (evaluation
    per volume) and sets ``train_dims = 2`` (training on slices); ``3`` on 2D data is an error.
    ``normalize``: see :func:`seglosses.bench.data.resolve_normalization` (default: CT scheme for
    channels named CT in ``dataset.json``, per-case z-score otherwise).
    """
    root = Path(path)
    if root.is_file() and root.name == "dataset.json":
        root = root.parent
    layout = detect_layout(root)
    if spatial_dims not in (None, 2, 3):
        raise ValueError(f"spatial_dims: expected None, 2 or 3, got {spatial_dims!r}")
    if layout == "decathlon":
        ds = _load_decathlon(root, normalize, name)
    else:
        ds = _load_folders(root, normalize, name)
    if spatial_dims is not None and spatial_dims != ds.spatial_dims:
        if spatial_dims == 2 and ds.spatial_dims == 3:
            ds.train_dims = 2
        else:
            raise ValueError(
                f"spatial_dims: {root} holds {ds.spatial_dims}D images, cannot use them as {spatial_dims}D"
            )
    return ds


# --------------------------------------------------------------------------------------------
# dataset.json
# --------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable dataset.json ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: dataset.json must hold a JSON object")
    return meta


def _parse_labels(spec, where: Path) -> tuple:
    """``(values, names)`` sorted by value from an MSD or nnU-Net v2 ``labels`` entry."""
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"{where}: 'labels' must be a non-empty object")
    pairs = []
    for key, val in spec.items():
        if isinstance(val, str) and re.fullmatch(r"-?\d+", str(key).strip()):  # MSD: {"1": "liver"}
            pairs.append((int(key), val))
        elif isinstance(val, bool):
            raise ValueError(f"{where}: label {key!r} has a non-integer value {val!r}")
        elif isinstance(val, int):  # nnU-Net v2: {"liver": 1}
            if str(key) == "ignore":
                raise ValueError(
                    f"{where}: nnU-Net 'ignore' labels are not supported (label {key!r} = {val})"
                )
            pairs.append((val, str(key)))
        elif isinstance(val, (list, tuple)):
            raise ValueError(
                f"{where}: nnU-Net region-based labels are not supported (label {key!r} = {val})"
            )
        else:
            raise ValueError(f"{where}: cannot read label entry {key!r}: {val!r}")
    values = [v for v, _ in pairs]
    if len(set(values)) != len(values):
        raise ValueError(f"{where}: label values declared twice: {sorted(values)}")
    pairs.sort()
    return [v for v, _ in pairs], [n for _, n in pairs]


def _strip_dot(rel: str) -> str:
    return rel.removeprefix("./")


# --------------------------------------------------------------------------------------------
# Medical Segmentation Decathlon / nnU-Net raw
# --------------------------------------------------------------------------------------------


def _decathlon_cases(root: Path, meta: dict, problems: _Problems) -> list:
    """``[(case_id, [image files], label file)]`` for MSD and nnU-Net raw layouts."""
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    if not images_dir.is_dir():
        raise ValueError(f"{images_dir}: folder not found")
    if not labels_dir.is_dir():
        raise ValueError(f"{labels_dir}: folder not found")
    channel_spec = meta.get("channel_names") or meta.get("modality") or {}
    n_channels = len(channel_spec) if isinstance(channel_spec, dict) else 0
    ending = meta.get("file_ending")
    image_files = _visible(images_dir.iterdir())
    if ending is None:  # MSD: guess from the files
        endings = {io.file_ending(f) for f in image_files} - {""}
        ending = ".nii.gz" if not endings or ".nii.gz" in endings else min(endings)

    def channel_files(case_id: str) -> list:
        plain = images_dir / f"{case_id}{ending}"
        if plain.is_file():
            return [plain]
        if n_channels:
            return [images_dir / f"{case_id}_{c:04d}{ending}" for c in range(n_channels)]
        return sorted(images_dir.glob(f"{case_id}_[0-9][0-9][0-9][0-9]{ending}"))

    cases = []
    training = meta.get("training")
    if (
        isinstance(training, list)
        and training
        and all(isinstance(e, dict) and "label" in e for e in training)
    ):
        for entry in training:  # MSD: explicit list
            label = root / _strip_dot(str(entry["label"]))
            case_id = io.strip_ending(label.name)
            image = root / _strip_dot(str(entry.get("image", f"imagesTr/{label.name}")))
            files = [image] if image.is_file() else channel_files(io.strip_ending(image.name))
            cases.append((case_id, files or [image], label))
    else:  # nnU-Net v2: one label file per case
        for label in _visible(labels_dir.iterdir()):
            if io.file_ending(label) != ending:
                problems.add(label, f"unexpected file in labelsTr (file_ending is {ending!r})")
                continue
            case_id = io.strip_ending(label.name)
            cases.append((case_id, channel_files(case_id) or [images_dir / f"{case_id}_0000{ending}"], label))

    # every image file must belong to a case with a label
    listed = {f.resolve() for _, files, _ in cases for f in files}
    for f in image_files:
        if f.resolve() in listed or io.file_ending(f) == "":
            continue
        stem = io.strip_ending(f.name)
        m = _CHANNEL_SUFFIX.match(stem)
        problems.add(
            f,
            "image without a label: no "
            + (
                f"labelsTr/{stem}{ending}"
                if not m
                else f"labelsTr/{stem}{ending} or labelsTr/{m.group('case')}{ending}"
            ),
        )
    return cases


def _read_case_files(case_id: str, image_files: list, label_file: Path, problems: _Problems):
    """Read one case; return ``(image, label, spacing)`` or ``None`` after recording problems."""
    n_before = len(problems.lines)
    channels, spacing = [], None
    for f in image_files:
        if not f.is_file():
            problems.add(f, f"image file not found (case {case_id!r})")
            continue
        try:
            img, sp = io.read_image(f)
        except ValueError as exc:
            problems.add_error(exc)
            continue
        if channels and img.shape[1:] != channels[0].shape[1:]:
            problems.add(
                f,
                f"channel file of shape {img.shape[1:]} differs from {image_files[0].name} {channels[0].shape[1:]}",
            )
            continue
        if spacing is None:
            spacing = sp
        channels.append(img)
    label = None
    if not label_file.is_file():
        problems.add(
            label_file,
            f"label file not found (case {case_id!r}, image {image_files[0] if image_files else '?'})",
        )
    else:
        try:
            label, label_spacing = io.read_label(label_file)
        except ValueError as exc:
            problems.add_error(exc)
    if len(problems.lines) > n_before or label is None or not channels:
        return None
    image = np.concatenate(channels, axis=0) if len(channels) > 1 else channels[0]
    bad = ~np.isfinite(image)
    if bad.any():
        problems.add(image_files[0], f"image contains {int(bad.sum())} NaN or infinite intensities")
        return None
    colour_mask = image.ndim == 3 and label.ndim == 3 and label.shape[-1] == 3  # 2D image, (H, W, 3) mask
    if (label.shape[:2] if colour_mask else label.shape) != image.shape[1:]:
        problems.add(
            label_file,
            f"label shape {label.shape} does not match image shape {image.shape[1:]} ({image_files[0].name})",
        )
        return None
    if len(label_spacing) == len(spacing) and not np.allclose(label_spacing, spacing, rtol=1e-3, atol=1e-5):
        problems.add(
            label_file,
            f"label spacing {tuple(round(s, 5) for s in label_spacing)} does not match image spacing "
            f"{tuple(round(s, 5) for s in spacing)} ({image_files[0].name})",
        )
        return None
    return image, label, tuple(float(s) for s in spacing)


def _load_decathlon(root: Path, normalize, name: str | None) -> Dataset:
    json_path = root / "dataset.json"
    meta = _read_json(json_path) if json_path.is_file() else {}
    declared = _parse_labels(meta["labels"], json_path) if "labels" in meta else None
    channel_spec = meta.get("channel_names") or meta.get("modality") or {}
    problems = _Problems(root)
    entries = _decathlon_cases(root, meta, problems)
    if not entries and not problems.lines:
        raise ValueError(f"{root / 'labelsTr'}: no training cases found")
    raw = []
    for case_id, files, label_file in entries:
        got = _read_case_files(case_id, files, label_file, problems)
        if got is not None:
            raw.append((case_id, files, label_file) + got)
    _check_consistency(raw, problems, len(channel_spec) if isinstance(channel_spec, dict) else 0)
    values, names = _label_table(raw, declared, problems, json_path)
    problems.raise_if_any()
    channel_names = (
        tuple(str(channel_spec[k]) for k in sorted(channel_spec, key=lambda k: int(k)))
        if channel_spec
        else ()
    )
    if len(channel_names) != raw[0][3].shape[0]:
        channel_names = ()
    cases, notes = _finish_cases(
        raw, values, resolve_normalization(normalize, channel_names or ("",) * raw[0][3].shape[0])
    )
    return Dataset(
        normalization=notes,
        name=name or str(meta.get("name") or root.name),
        cases=cases,
        label_names=tuple(names),
        channel_names=channel_names,
        source_labels=tuple(values),
        description=str(meta.get("description", "")),
        source=str(root),
    )


def _check_consistency(raw: list, problems: _Problems, n_channels_declared: int) -> None:
    if not raw:
        return
    first_id, _, _, first_img, first_lab, _ = raw[0]
    for case_id, files, _, img, lab, _ in raw:
        if n_channels_declared and img.shape[0] != n_channels_declared:
            problems.add(
                files[0], f"{img.shape[0]} image channel(s), dataset.json declares {n_channels_declared}"
            )
        elif img.shape[0] != first_img.shape[0]:
            problems.add(
                files[0], f"{img.shape[0]} image channel(s), case {first_id!r} has {first_img.shape[0]}"
            )
        if lab.ndim != first_lab.ndim:
            problems.add(files[0], f"{lab.ndim}-D image, case {first_id!r} is {first_lab.ndim}-D")


def _label_table(raw: list, declared, problems: _Problems, where) -> tuple:
    """Sorted label values and names; records undeclared values as problems."""
    found = {}
    for case_id, files, label_file, _, lab, _ in raw:
        found[label_file] = np.unique(lab)
    if declared is not None:
        values, names = declared
        allowed = set(values)
        for label_file, present in found.items():
            extra = [int(v) for v in present if int(v) not in allowed]
            if extra:
                problems.add(
                    label_file, f"label values {extra[:10]} are not declared in {where} (declared: {values})"
                )
        return values, names
    values = sorted({int(v) for present in found.values() for v in present})
    if len(values) == 1:  # only background everywhere: keep a foreground class so the task is defined
        values = values + [values[0] + 1]
    names = ["background" if v == 0 else f"label_{v}" for v in values]
    return values, names


def _finish_cases(raw: list, values: list, schemes: tuple) -> tuple:
    labels = [remap_labels(lab, values, where=str(label_file)) for _, _, label_file, _, lab, _ in raw]
    images, notes = normalize_images([r[3] for r in raw], labels, schemes)
    cases = []
    for (case_id, files, label_file, _, _, spacing), img, lab in zip(raw, images, labels):
        source = ", ".join(str(f) for f in files)
        cases.append(Case(case_id, img, lab, spacing, source, {"label_file": str(label_file)}))
    return cases, notes


# --------------------------------------------------------------------------------------------
# 2D folders
# --------------------------------------------------------------------------------------------


def _by_stem(folder: Path, problems: _Problems) -> dict:
    out = {}
    for f in _visible(folder.iterdir()):
        if io.file_ending(f) not in io.IMAGE_2D_ENDINGS + io.NIFTI_ENDINGS:
            continue
        stem = io.strip_ending(f.name)
        if stem in out:
            problems.add(f, f"two files with the stem {stem!r} ({out[stem].name} and {f.name})")
            continue
        out[stem] = f
    return out


def _load_folders(root: Path, normalize, name: str | None) -> Dataset:
    images_dir = root / "images"
    masks_dir = root / "masks" if (root / "masks").is_dir() else root / "labels"
    problems = _Problems(root)
    images = _by_stem(images_dir, problems)
    masks = _by_stem(masks_dir, problems)
    for stem, f in images.items():
        if stem not in masks:
            problems.add(f, f"image without a mask: no {masks_dir.name}/{stem}.png/.tif")
    for stem, f in masks.items():
        if stem not in images:
            problems.add(f, f"mask without an image: no {images_dir.name}/{stem}.png/.tif")
    if not images and not problems.lines:
        raise ValueError(f"{images_dir}: no PNG or TIFF images found")
    json_path = root / "dataset.json"
    declared = _parse_labels(_read_json(json_path)["labels"], json_path) if json_path.is_file() else None

    raw = []
    for stem in sorted(set(images) & set(masks)):
        got = _read_case_files(stem, [images[stem]], masks[stem], problems)
        if got is not None:
            raw.append((stem, [images[stem]], masks[stem]) + got)

    colour = any(lab.ndim == 3 and lab.shape[-1] == 3 and img.ndim == 3 for _, _, _, img, lab, _ in raw)
    if colour:  # colour-coded masks: encode each colour as one integer 0xRRGGBB
        coded = []
        for stem, files, mask_file, img, lab, spacing in raw:
            lab = lab.astype(np.int64)
            if lab.ndim == 2:
                lab = lab[..., None].repeat(3, axis=-1)
            code = (lab[..., 0] << 16) | (lab[..., 1] << 8) | lab[..., 2]
            coded.append((stem, files, mask_file, img, code, spacing))
        raw = coded
    _check_consistency(raw, problems, 0)
    values, names = _label_table(raw, declared, problems, json_path)
    if colour and declared is None:
        names = ["background" if v == 0 else f"#{v:06x}" for v in values]
    problems.raise_if_any()
    n_channels = raw[0][3].shape[0]
    channel_names = ("R", "G", "B") if n_channels == 3 else ()
    cases, notes = _finish_cases(
        raw, values, resolve_normalization(normalize, channel_names or ("",) * n_channels)
    )
    return Dataset(
        normalization=notes,
        name=name or root.name,
        cases=cases,
        label_names=tuple(names),
        channel_names=channel_names,
        source_labels=tuple(values),
        source=str(root),
    )
