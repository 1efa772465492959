"""The data layer of the benchmark: cases, datasets, preprocessing, case splits and 2D slicing.

A :class:`Dataset` is a list of :class:`Case` objects held in memory plus the label names. It comes
from a built-in synthetic task (:func:`seglosses.bench.synthetic.make_task`) or from files on disk
(:func:`seglosses.bench.data_layouts.load_dataset`: Medical Segmentation Decathlon, nnU-Net raw,
or 2D ``images/`` + ``masks/`` folders). The trainer consumes it through three functions:

* :func:`split_cases` -- a seeded split by case (80/20 by default), saved as JSON with the results;
* :meth:`Dataset.training_cases` -- the cases, or their 2D slices when a 3D dataset is trained in
  2D (``train_dims == 2``), fed to :func:`sample_batch`;
* evaluation is always per case at the dataset's own ``spatial_dims``: a 2D network predicts a
  volume slice by slice (:func:`iter_slices` / :func:`stack_slices` along :meth:`Dataset.slice_axis_of`).

Conventions (the same for synthetic and real data)
--------------------------------------------------
* ``case.image``: float32 ``(C_in, *spatial)``, preprocessed as Ma et al. (2021), section 3.2,
  i.e. nnU-Net's defaults (:func:`normalize_images`): a CT channel is clipped to the [0.5, 99.5]
  percentiles of the dataset's foreground intensities and z-scored with the foreground mean and
  standard deviation (same constants for all cases); any other channel (MR, RGB) is clipped to
  its own [0.5, 99.5] percentiles and z-scored per case and channel.
* ``case.label``: int64 ``(*spatial)`` with values ``0 .. num_classes - 1``; index 0 is the
  background (for real data: the smallest label value present or declared, normally 0).
* ``case.spacing``: voxel size in mm, one value per spatial axis, in numpy axis order (the same
  order as ``image.shape[1:]``). No resampling is done; the spacing is kept for the
  spacing-aware metrics (NSD, HD95).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .data_sampling import sample_batch

PathLike = str | Path

__all__ = [
    "Case",
    "Dataset",
    "class_ratio_text",
    "ct_statistics",
    "display_slice",
    "fold_split",
    "iter_slices",
    "kfold_cases",
    "load_split",
    "normalize_images",
    "normalize_intensity",
    "remap_labels",
    "resolve_normalization",
    "sample_batch",
    "save_split",
    "split_cases",
    "stack_slices",
]

#: nnU-Net samples at most this many foreground locations per class and case for oversampling.
MAX_FOREGROUND_LOCATIONS = 10_000


# --------------------------------------------------------------------------------------------
# Case and Dataset
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Case:
    """One image with its label map, in memory.

    Attributes
    ----------
    case_id : str
        Unique identifier within the dataset (file stem for real data, ``"<task>_007"`` for
        synthetic data, ``"<parent>/slice_012"`` for a 2D slice of a volume).
    image : np.ndarray
        float32 ``(C_in, *spatial)``.
    label : np.ndarray
        int64 ``(*spatial)``, values in ``0 .. num_classes - 1``.
    spacing : tuple of float
        Voxel size in mm per spatial axis, numpy axis order.
    source : str
        Where the case came from (image file path(s), or ``"synthetic:<task>"``), for messages.
    meta : dict
        Free-form extras, e.g. ``{"parent": case_id, "axis": 2, "index": 12}`` for a slice.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray
    spacing: tuple
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def spatial_shape(self) -> tuple:
        return tuple(self.label.shape)

    @property
    def spatial_dims(self) -> int:
        return self.label.ndim

    @property
    def in_channels(self) -> int:
        return int(self.image.shape[0])

    def foreground_locations(self) -> dict:
        """``{class index: flat voxel indices}`` for every foreground class present (cached).

        At most :data:`MAX_FOREGROUND_LOCATIONS` locations per class are kept, drawn with a fixed
        seed (as nnU-Net does), so the sampler's cost does not grow with the volume size.
        """
        cached = self.__dict__.get("_fg_locations")
        if cached is None:
            flat = self.label.ravel()
            cached = {}
            if flat.size:
                present = np.flatnonzero(np.bincount(flat))
                rng = np.random.default_rng(1234)
                for c in present[present > 0]:
                    idx = np.flatnonzero(flat == c)
                    if idx.size > MAX_FOREGROUND_LOCATIONS:
                        idx = np.sort(rng.choice(idx, MAX_FOREGROUND_LOCATIONS, replace=False))
                    cached[int(c)] = idx
            self.__dict__["_fg_locations"] = cached
        return cached

    def __repr__(self) -> str:
        return (
            f"Case({self.case_id!r}, image={tuple(self.image.shape)}, label={tuple(self.label.shape)}, "
            f"spacing={tuple(round(s, 4) for s in self.spacing)})"
        )


@dataclass(eq=False)
class Dataset:
    """A named list of cases with the label names.

    Attributes
    ----------
    name : str
        Task or dataset name (``"liver"``, ``"Task03_Liver"``, folder name).
    cases : list of Case
    label_names : tuple of str
        ``label_names[i]`` is the name of label index ``i``; ``label_names[0]`` is the background.
    channel_names : tuple of str
        One name per input channel (``("CT",)``, ``("R", "G", "B")``, MSD modalities).
    train_dims : int
        Spatial dims of the training samples: equal to ``spatial_dims``, or 2 when a 3D dataset
        is trained on 2D slices (``load_dataset(path, spatial_dims=2)``).
    slice_axis : int or None
        Axis along which a 3D dataset is sliced; ``None``: per case, the axis with the largest
        spacing (the through-plane axis of anisotropic scans), the last one on ties.
    source_labels : tuple
        For real data, the original label value of each index (``(0, 255)`` for a 0/255 mask).
    normalization : tuple of str
        How each channel was normalised (see :func:`normalize_images`), for the report.
    description, source : str
        Free text and where the data came from.

    Derived: ``num_classes``, ``in_channels``, ``spatial_dims`` (dims of the stored cases, the
    dims of evaluation), ``case_ids``.
    """

    name: str
    cases: list
    label_names: tuple
    channel_names: tuple = ()
    train_dims: int | None = None
    slice_axis: int | None = None
    source_labels: tuple = ()
    description: str = ""
    source: str = ""
    normalization: tuple = ()

    def __post_init__(self) -> None:
        self.cases = list(self.cases)
        self.label_names = tuple(str(n) for n in self.label_names)
        if not self.cases:
            raise ValueError(f"dataset {self.name!r}: no cases")
        if len(self.label_names) < 2:
            raise ValueError(
                f"dataset {self.name!r}: at least 2 labels (background + 1) needed, got {self.label_names}"
            )
        ref = self.cases[0]
        seen = set()
        for case in self.cases:
            where = f"dataset {self.name!r}, case {case.case_id!r} ({case.source or 'in memory'})"
            if case.case_id in seen:
                raise ValueError(f"{where}: duplicate case id")
            seen.add(case.case_id)
            if case.image.ndim != case.label.ndim + 1 or case.image.shape[1:] != case.label.shape:
                raise ValueError(
                    f"{where}: image shape {case.image.shape} does not match label shape {case.label.shape} "
                    "(expected image (C, *spatial) and label (*spatial))"
                )
            if case.label.ndim != ref.label.ndim:
                raise ValueError(f"{where}: {case.label.ndim}-D case in a {ref.label.ndim}-D dataset")
            if case.in_channels != ref.in_channels:
                raise ValueError(
                    f"{where}: {case.in_channels} image channels, the first case has {ref.in_channels}"
                )
            if len(case.spacing) != case.label.ndim:
                raise ValueError(
                    f"{where}: spacing {case.spacing} has {len(case.spacing)} values for {case.label.ndim} axes"
                )
        if not self.channel_names:
            self.channel_names = tuple(f"channel_{i}" for i in range(ref.in_channels))
        if len(self.channel_names) != ref.in_channels:
            raise ValueError(
                f"dataset {self.name!r}: {len(self.channel_names)} channel names for {ref.in_channels} channels"
            )
        if self.train_dims is None:
            self.train_dims = self.spatial_dims
        if self.train_dims not in (2, self.spatial_dims):
            raise ValueError(
                f"dataset {self.name!r}: train_dims must be 2 or {self.spatial_dims} (the data's dims), got {self.train_dims}"
            )

    # ---- derived attributes -----------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def in_channels(self) -> int:
        return self.cases[0].in_channels

    @property
    def spatial_dims(self) -> int:
        return self.cases[0].spatial_dims

    @property
    def case_ids(self) -> list:
        return [c.case_id for c in self.cases]

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)

    def __getitem__(self, key: int | str) -> Case:
        if isinstance(key, str):
            for case in self.cases:
                if case.case_id == key:
                    return case
            raise KeyError(f"dataset {self.name!r} has no case {key!r}")
        return self.cases[key]

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, {len(self)} cases, {self.spatial_dims}D (train {self.train_dims}D), "
            f"in_channels={self.in_channels}, labels={list(self.label_names)})"
        )

    # ---- views ------------------------------------------------------------------------------
    def subset(self, case_ids: Iterable[str]) -> Dataset:
        """A dataset with the given cases, in the given order (``KeyError`` for an unknown id)."""
        by_id = {c.case_id: c for c in self.cases}
        missing = [i for i in case_ids if i not in by_id]
        if missing:
            raise KeyError(f"dataset {self.name!r} has no cases {missing[:5]}")
        return replace(self, cases=[by_id[i] for i in case_ids])

    def slice_axis_of(self, case: Case) -> int:
        """Axis along which ``case`` is sliced for 2D training / slice-by-slice inference."""
        if self.slice_axis is not None:
            return self.slice_axis
        return default_slice_axis(case.spacing)

    def as_slices(self, axis: int | None = None, skip_empty: bool = False) -> Dataset:
        """A 2D dataset of the slices of every case (views, no copy).

        Slice ids are ``"<case_id>/slice_<index>"`` and ``meta`` holds ``parent``, ``axis`` and
        ``index`` so predictions can be stacked back per case (:func:`stack_slices`).
        ``skip_empty`` drops slices without foreground. ``axis`` defaults to
        :meth:`slice_axis_of` of each case.
        """
        if self.spatial_dims != 3:
            raise ValueError(
                f"dataset {self.name!r}: as_slices needs 3D cases, these are {self.spatial_dims}D"
            )
        slices = []
        for case in self.cases:
            ax = self.slice_axis_of(case) if axis is None else axis
            if not -3 <= ax < 3:
                raise ValueError(f"axis: expected 0, 1 or 2, got {ax}")
            ax %= 3
            spacing = tuple(s for a, s in enumerate(case.spacing) if a != ax)
            for i, (img, lab) in enumerate(zip(iter_slices(case.image, ax + 1), iter_slices(case.label, ax))):
                if skip_empty and not lab.any():
                    continue
                slices.append(
                    Case(
                        f"{case.case_id}/slice_{i:03d}",
                        img,
                        lab,
                        spacing,
                        case.source,
                        {"parent": case.case_id, "axis": ax, "index": i},
                    )
                )
        if not slices:
            raise ValueError(f"dataset {self.name!r}: no slices left (skip_empty={skip_empty})")
        return replace(self, cases=slices, train_dims=2, slice_axis=None)

    def training_cases(self) -> list:
        """What the trainer samples patches from: the cases, or their 2D slices if ``train_dims == 2 < spatial_dims``."""
        if self.train_dims < self.spatial_dims:
            return self.as_slices().cases
        return list(self.cases)

    # ---- statistics -------------------------------------------------------------------------
    def class_voxel_counts(self) -> np.ndarray:
        """Voxel count per label index, summed over all cases (int64, length ``num_classes``)."""
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for case in self.cases:
            counts += np.bincount(case.label.ravel(), minlength=self.num_classes)[: self.num_classes]
        return counts

    def class_ratios(self) -> dict:
        """Pooled imbalance per foreground class: ``{name: (all voxels - class voxels) / class voxels}``.

        This is Ma et al.'s BG:FG ratio (Table 1) for a binary task; for a multi-class task each
        class is compared with everything else. ``inf`` for a class that never occurs.
        """
        counts = self.class_voxel_counts()
        total = counts.sum()
        return {
            self.label_names[c]: (float(total - counts[c]) / counts[c] if counts[c] else math.inf)
            for c in range(1, self.num_classes)
        }


def default_slice_axis(spacing: Sequence[float]) -> int:
    """The axis with the largest spacing; the last such axis on ties (``(1, 1, 1) -> 2``)."""
    return max(range(len(spacing)), key=lambda a: (round(float(spacing[a]), 6), a))


def class_ratio_text(ratios: dict) -> str:
    """``{"liver": 41.2}`` -> ``"41:1"``; several classes -> ``"30:1-1243:1"``."""
    finite = [r for r in ratios.values() if math.isfinite(r)]
    if not finite:
        return "-"
    lo, hi = min(finite), max(finite)
    if len(finite) == 1 or round(lo) == round(hi):
        return f"{lo:.0f}:1"
    return f"{lo:.0f}:1-{hi:.0f}:1"


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


def normalize_intensity(image: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """Per-case scheme: clip each channel to its own ``[lower, upper]`` percentiles, then z-score it.

    ``image`` is ``(C, *spatial)``; every channel of every case is normalised on its own. A
    constant channel becomes all zeros. Returns a new float32 array.
    """
    image = np.asarray(image)
    out = np.empty(image.shape, dtype=np.float32)
    for c in range(image.shape[0]):
        ch = image[c].astype(np.float64, copy=False)
        lo, hi = np.percentile(ch, [lower, upper])
        ch = np.clip(ch, lo, hi)
        mean, std = ch.mean(), ch.std()
        out[c] = (ch - mean) / std if std > 1e-8 * max(1.0, abs(mean)) else ch - mean
    return out


def ct_statistics(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    channel: int = 0,
    lower: float = 0.5,
    upper: float = 99.5,
    max_per_case: int = 100_000,
) -> dict:
    """Dataset-level foreground intensity statistics of one channel (nnU-Net's fingerprint).

    The foreground (label > 0) voxels of every case (at most ``max_per_case`` per case, drawn with
    a fixed seed) give ``lower``/``upper`` percentiles, mean and standard deviation. With no
    foreground anywhere, all voxels are used.
    """
    rng = np.random.default_rng(0)
    samples = []
    for img, lab in zip(images, labels):
        values = img[channel][lab > 0] if lab.any() else np.empty(0, img.dtype)
        if values.size > max_per_case:
            values = rng.choice(values, max_per_case, replace=False)
        samples.append(values.astype(np.float64))
    fg = np.concatenate(samples) if samples else np.empty(0)
    if fg.size == 0:
        fg = np.concatenate([img[channel].ravel().astype(np.float64) for img in images])
    lo, hi = np.percentile(fg, [lower, upper])
    return {"lower": float(lo), "upper": float(hi), "mean": float(fg.mean()), "std": float(fg.std())}


NORMALIZATIONS = ("auto", "case", "ct", "none")


def resolve_normalization(normalize, channel_names: Sequence[str]) -> tuple:
    """Per-channel scheme from a ``normalize`` argument.

    ``True`` / ``"auto"``: ``"ct"`` for channels named CT (MSD ``modality``, nnU-Net
    ``channel_names``, the synthetic CT-like tasks), ``"case"`` otherwise -- nnU-Net's defaults.
    ``False`` / ``"none"``: raw intensities. ``"case"`` / ``"ct"``: that scheme for every channel.
    """
    if normalize is True:
        normalize = "auto"
    elif normalize is False or normalize is None:
        normalize = "none"
    if normalize not in NORMALIZATIONS:
        raise ValueError(
            f"normalize: expected True, False or one of {list(NORMALIZATIONS)}, got {normalize!r}"
        )
    if normalize == "auto":
        return tuple("ct" if str(n).strip().lower() == "ct" else "case" for n in channel_names)
    return (normalize,) * len(channel_names)


def normalize_images(
    images: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    schemes: Sequence[str],
    ct_stats: dict | None = None,
) -> tuple:
    """Apply the per-channel ``schemes`` to a whole dataset; return ``(images, descriptions)``.

    * ``"case"``: :func:`normalize_intensity` channel by channel (per case).
    * ``"ct"``: nnU-Net's CT normalisation, which Ma et al. (section 3.2) used: clip to the
      [0.5, 99.5] percentiles of the *foreground* intensities of the whole dataset, then subtract
      the foreground mean and divide by the foreground standard deviation (same constants for
      every case, so absolute units such as HU keep their meaning). The statistics are computed
      on all the dataset's cases, before the split, as in the paper.
    * ``"none"``: unchanged (float32).

    ``ct_stats`` (``{channel: ct_statistics(...)}``) overrides the statistics of a CT channel.
    """
    out = [np.empty(img.shape, dtype=np.float32) for img in images]
    notes = []
    for c, scheme in enumerate(schemes):
        if scheme == "ct":
            st = (ct_stats or {}).get(c) or ct_statistics(images, labels, c)
            std = st["std"] if st["std"] > 1e-8 else 1.0
            for img, dst in zip(images, out):
                dst[c] = (np.clip(img[c], st["lower"], st["upper"]) - st["mean"]) / std
            notes.append(
                f"ct: clip to foreground [0.5, 99.5] percentiles [{st['lower']:.4g}, {st['upper']:.4g}], "
                f"z-score with foreground mean {st['mean']:.4g} and std {st['std']:.4g} (dataset level)"
            )
        elif scheme == "case":
            for img, dst in zip(images, out):
                dst[c] = normalize_intensity(img[c : c + 1])[0]
            notes.append("case: clip to the case's [0.5, 99.5] percentiles, z-score per case")
        elif scheme == "none":
            for img, dst in zip(images, out):
                dst[c] = img[c]
            notes.append("none")
        else:
            raise ValueError(f"normalize: unknown scheme {scheme!r} for channel {c}")
    return out, tuple(notes)


def remap_labels(label: np.ndarray, values: Sequence[int], where: str = "label") -> np.ndarray:
    """Map label ``values[i]`` -> ``i`` (int64); ``values`` sorted ascending.

    Raises a ``ValueError`` naming ``where`` and the unexpected values when the label holds a value
    that is not in ``values``.
    """
    values = np.asarray(values, dtype=np.int64)
    label = np.asarray(label)
    if values.size and np.array_equal(values, np.arange(values.size)):
        if label.size and (label.min() < 0 or label.max() >= values.size):
            bad = np.setdiff1d(np.unique(label), values)
            raise ValueError(
                f"{where}: label values {bad.tolist()[:10]} not in the declared labels {values.tolist()}"
            )
        return label.astype(np.int64, copy=False)
    idx = np.searchsorted(values, label)
    idx_c = np.minimum(idx, values.size - 1)
    bad_mask = values[idx_c] != label
    if bad_mask.any():
        bad = np.unique(label[bad_mask])
        raise ValueError(
            f"{where}: label values {bad.tolist()[:10]} not in the declared labels {values.tolist()}"
        )
    return idx_c.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Split by case
# --------------------------------------------------------------------------------------------


def split_cases(case_ids: Iterable[str], val_fraction: float = 0.2, seed: int = 0) -> tuple:
    """Split case ids into ``(train_ids, test_ids)`` at random, by case, reproducibly.

    The ids are sorted first, so the split depends only on the set of ids and ``seed``, not on
    the order they were listed in. ``round(n * val_fraction)`` cases are held out, at least one
    and at most ``n - 1`` when ``0 < val_fraction < 1``; ``val_fraction = 0`` holds out none.
    Both lists come back sorted. Call it again on ``train_ids`` for a validation split.
    """
    ids = [str(i) for i in case_ids]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"case_ids: duplicate ids {dup[:5]}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction: expected a number in [0, 1), got {val_fraction!r}")
    ids = sorted(ids)
    n = len(ids)
    n_test = 0
    if val_fraction > 0:
        if n < 2:
            raise ValueError(f"case_ids: at least 2 cases are needed to split, got {n}")
        n_test = min(max(int(round(n * val_fraction)), 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    test = sorted(ids[i] for i in perm[:n_test])
    test_set = set(test)
    train = [i for i in ids if i not in test_set]
    return train, test


def kfold_cases(case_ids: Iterable[str], folds: int, seed: int = 0) -> list:
    """K-fold cross-validation by case: ``[(train_ids, test_ids)]`` for folds ``0 .. folds - 1``.

    As nnU-Net v2 (``generate_crossval_split``: a seeded shuffle of the sorted case ids, then
    contiguous folds), the ids are sorted first, so the folds depend only on the set of ids and
    ``seed``, never on the order the files were listed in. The sorted ids are permuted with
    ``numpy.random.default_rng(seed)`` and cut into ``folds`` contiguous blocks whose sizes differ
    by at most one (the first ``n % folds`` folds get one case more). Every case is a test case of
    exactly one fold; the other folds train on it. Both lists of every fold come back sorted.

    ``folds`` must lie in ``2 .. n``; one fold is not cross-validation (use :func:`split_cases`).

    Examples
    --------
    >>> folds = kfold_cases(["c", "a", "e", "b", "d"], 2, seed=0)
    >>> sorted(c for _, test in folds for c in test)
    ['a', 'b', 'c', 'd', 'e']
    >>> [len(test) for _, test in folds]
    [3, 2]
    >>> kfold_cases(["e", "d", "c", "b", "a"], 2, seed=0) == folds
    True
    """
    ids = [str(i) for i in case_ids]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"case_ids: duplicate ids {dup[:5]}")
    n = len(ids)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or not 2 <= folds <= n:
        raise ValueError(f"folds: expected an integer in [2, {n}] (the number of cases), got {folds!r}")
    ids = sorted(ids)
    perm = np.random.default_rng(seed).permutation(n)
    sizes = [n // folds + (1 if f < n % folds else 0) for f in range(folds)]
    out, start = [], 0
    for size in sizes:
        test = sorted(ids[i] for i in perm[start : start + size])
        start += size
        test_set = set(test)
        out.append(([i for i in ids if i not in test_set], test))
    return out


def fold_split(
    case_ids: Iterable[str],
    folds: int = 1,
    fold: int = 0,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
) -> dict:
    """The ``{"train", "val", "test"}`` case ids of one fold of the benchmark's protocol.

    * ``folds == 1``: the single split of the quick preset -- :func:`split_cases` holds out
      ``test_fraction`` of the cases for testing (seed ``seed``); ``fold`` must be 0.
    * ``folds >= 2``: fold ``fold`` of :func:`kfold_cases` (seed ``seed``): its test cases are the
      fold's block, every case is tested in exactly one fold.

    In both cases a validation subset (``val_fraction`` of the training cases, seed ``seed + 1``,
    only when at least 3 training cases remain) is held out of training to pick the learning
    rate; the model trains on the rest. The split seed is the bench's ``--seed``; training seeds
    (``--seeds``) never change it, so every seed of a configuration sees the same cases.

    Examples
    --------
    >>> ids = [f"case_{i}" for i in range(10)]
    >>> tests = [fold_split(ids, 5, f, seed=0)["test"] for f in range(5)]
    >>> sorted(c for t in tests for c in t) == ids
    True
    >>> s = fold_split(ids, 5, 0, seed=0)
    >>> len(s["train"]), len(s["val"]), len(s["test"])
    (6, 2, 2)
    """
    ids = [str(i) for i in case_ids]
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or not 0 <= fold < max(int(folds), 1):
        raise ValueError(f"fold: expected an integer in [0, {max(int(folds), 1) - 1}], got {fold!r}")
    if len(ids) < 2:
        raise ValueError(f"case_ids: at least 2 cases are needed (train + test), got {len(ids)}")
    if folds == 1:
        train, test = split_cases(ids, test_fraction, seed=seed)
    else:
        train, test = kfold_cases(ids, folds, seed=seed)[fold]
    val: list = []
    if val_fraction > 0 and len(train) >= 3:
        train, val = split_cases(train, val_fraction, seed=seed + 1)
    return {"train": train, "val": val, "test": test}


def save_split(path: PathLike, train_ids: Sequence[str], test_ids: Sequence[str], **meta) -> Path:
    """Write a split as JSON ``{"train": [...], "test": [...], **meta}`` (e.g. ``seed=0``)."""
    overlap = set(train_ids) & set(test_ids)
    if overlap:
        raise ValueError(f"split: cases in both train and test: {sorted(overlap)[:5]}")
    path = Path(path)
    payload = dict(meta)
    payload.update(train=list(train_ids), test=list(test_ids))
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def load_split(path: PathLike) -> tuple:
    """Read a split written by :func:`save_split`; return ``(train_ids, test_ids)``."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
        train, test = payload["train"], payload["test"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: not a split file with 'train' and 'test' lists ({type(exc).__name__}: {exc})"
        ) from None
    if not (isinstance(train, list) and isinstance(test, list)):
        raise ValueError(f"{path}: 'train' and 'test' must be lists of case ids")
    return [str(i) for i in train], [str(i) for i in test]


# --------------------------------------------------------------------------------------------
# Slices
# --------------------------------------------------------------------------------------------


def iter_slices(array: np.ndarray, axis: int) -> Iterator[np.ndarray]:
    """Yield the slices of ``array`` along ``axis`` (views). For an image ``(C, *spatial)`` pass
    ``spatial_axis + 1``."""
    array = np.asarray(array)
    axis %= array.ndim
    index = [slice(None)] * array.ndim
    for i in range(array.shape[axis]):
        index[axis] = i
        yield array[tuple(index)]


def stack_slices(slices: Sequence[np.ndarray], axis: int) -> np.ndarray:
    """Inverse of :func:`iter_slices`: stack per-slice predictions back into a volume."""
    return np.stack([np.asarray(s) for s in slices], axis=axis)


def display_slice(case: Case, axis: int | None = None, index: int | None = None) -> tuple:
    """A 2D picture of a case for figures: ``(image, label)``.

    ``image`` is ``(H, W)`` (first channel; half linear 1st-99th percentile stretch, half rank
    transform, so that CT soft tissue is not flattened by air and bone) or ``(H, W, 3)``
    (3-channel data, each channel stretched to its 1st-99th percentiles), in [0, 1]; ``label`` is
    ``(H, W)``. For a 3D case the slice along ``axis``
    (default: the case's slice axis by spacing) at ``index`` (default: through the centre of
    mass of the foreground, the middle slice if there is none).
    """
    image, label = case.image, case.label
    if case.spatial_dims == 3:
        axis = default_slice_axis(case.spacing) if axis is None else axis % 3
        if index is None:
            fg = np.nonzero(label)
            index = int(round(fg[axis].mean())) if fg[axis].size else label.shape[axis] // 2
        image = np.take(image, index, axis=axis + 1)
        label = np.take(label, index, axis=axis)
    elif case.spatial_dims != 2:
        raise ValueError(f"display_slice: expected a 2D or 3D case, got {case.spatial_dims}D")
    if image.shape[0] == 3:  # colour: stretch each channel to its 1st-99th percentiles
        pic = np.stack([_stretch(ch) for ch in image], axis=-1)
    else:  # gray: blend a linear stretch with a rank transform, so CT soft tissue stays visible
        flat = image[0].ravel()
        ranks = np.searchsorted(np.sort(flat), flat, side="left").reshape(image[0].shape)  # ties share a rank
        pic = 0.5 * _stretch(image[0]) + 0.5 * ranks / max(ranks.size - 1, 1)
    return pic.astype(np.float32), label


def _stretch(x: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(x, [1, 99])
    return np.clip((x - lo) / (hi - lo if hi > lo else 1.0), 0, 1)


# --------------------------------------------------------------------------------------------
# Entry points implemented in sibling modules (lazy imports avoid an import cycle)
# --------------------------------------------------------------------------------------------
