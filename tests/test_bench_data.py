"""Tests of the benchmark's data layer: synthetic tasks, real-data layouts, validation, split,
sampling and previews. Every file is written by the tests into ``tmp_path``; nothing is downloaded.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from seglosses.bench import io as bio
from seglosses.bench.data import (
    Case,
    Dataset,
    display_slice,
    iter_slices,
    load_split,
    normalize_intensity,
    remap_labels,
    sample_batch,
    save_split,
    split_cases,
    stack_slices,
)
from seglosses.bench.data_layouts import load_dataset
from seglosses.bench.synthetic import TASKS, list_tasks, make_task, preview_tasks

nib = pytest.importorskip("nibabel")
PIL_Image = pytest.importorskip("PIL.Image")
tifffile = pytest.importorskip("tifffile")

N_CASES = 20  # enough for stable pooled ratios, small enough for a fast test run


@pytest.fixture(scope="module")
def tasks2d():
    return {name: make_task(name, n_cases=N_CASES, seed=0) for name in TASKS}


# --------------------------------------------------------------------------------------------
# Synthetic tasks
# --------------------------------------------------------------------------------------------


def test_registry_and_list_tasks():
    assert set(TASKS) == {"liver", "tumor", "pancreas", "multiorgan", "brain", "aerial", "vessels"}
    rows = list_tasks()
    assert [r.name for r in rows] == list(TASKS)
    by_name = {r.name: r for r in rows}
    assert by_name["multiorgan"].classes[0] == "background" and len(by_name["multiorgan"].classes) == 9
    assert by_name["aerial"].classes == ("unlabelled", "building", "land", "road", "vegetation", "water")
    assert TASKS["aerial"].in_channels == 3 and TASKS["liver"].in_channels == 1
    assert by_name["tumor"].classes == ("background", "tumor")


def test_make_task_contract(tasks2d):
    for name, ds in tasks2d.items():
        spec = TASKS[name]
        assert len(ds) == N_CASES and ds.num_classes == spec.num_classes
        assert ds.in_channels == spec.in_channels and ds.spatial_dims == 2 and ds.train_dims == 2
        for case in ds.cases[:3]:
            assert case.image.dtype == np.float32 and case.image.shape == (spec.in_channels, 128, 128)
            assert case.label.dtype == np.int64 and case.label.shape == (128, 128)
            assert case.spacing == (1.0, 1.0)
            assert 0 <= case.label.min() and case.label.max() < ds.num_classes
            assert np.isfinite(case.image).all()
        if name in ("aerial", "vessels"):  # RGB / fundus: z-scored per case and channel
            assert ds.normalization[0].startswith("case")
            for case in ds.cases[:3]:
                np.testing.assert_allclose(case.image.mean(axis=(1, 2)), 0.0, atol=1e-4)
                np.testing.assert_allclose(case.image.std(axis=(1, 2)), 1.0, atol=1e-3)
        else:  # CT-like: nnU-Net CT scheme, foreground statistics of the dataset
            assert ds.normalization[0].startswith("ct")
            fg = np.concatenate([c.image[0][c.label > 0] for c in ds.cases])
            assert abs(fg.mean()) < 0.5 and 0.6 < fg.std() < 1.4, name  # statistics from the first 8 cases


def test_make_task_deterministic():
    a = make_task("multiorgan", n_cases=3, seed=7)
    b = make_task("multiorgan", n_cases=3, seed=7)
    c = make_task("multiorgan", n_cases=3, seed=8)
    first = make_task("multiorgan", n_cases=1, seed=7)  # case i does not depend on n_cases
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.label, y.label)
    assert not np.array_equal(a[0].image, c[0].image)
    np.testing.assert_array_equal(a[0].image, first[0].image)
    assert a.case_ids == ["multiorgan_000", "multiorgan_001", "multiorgan_002"]


def test_class_ratios_in_stated_ranges(tasks2d):
    r = {name: ds.class_ratios() for name, ds in tasks2d.items()}
    assert 20 <= r["liver"]["liver"] <= 80
    assert r["tumor"]["tumor"] >= 300
    assert 250 <= r["pancreas"]["pancreas"] <= 1000
    organs = r["multiorgan"]
    assert 15 <= min(organs.values()) <= 60 and max(organs.values()) >= 1000
    assert 1.5 <= r["brain"]["brain"] <= 10  # mild imbalance
    assert all(np.isfinite(v) and v < 200 for v in r["aerial"].values())
    assert 12 <= r["vessels"]["vessel"] <= 50
    # every organ occurs in every multi-organ case; every tumour case has a lesion
    for case in tasks2d["multiorgan"]:
        assert np.all(np.bincount(case.label.ravel(), minlength=9)[1:] > 0), case.case_id
    lesion_sizes = np.array([int(c.label.sum()) for c in tasks2d["tumor"]])
    assert lesion_sizes.min() > 0
    assert (lesion_sizes <= 15).sum() >= 2  # some cases with very small lesions only
    assert lesion_sizes.max() >= 5 * np.median(lesion_sizes) / 2  # sizes vary widely


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Overlap coefficient of two intensity histograms (1 = identical, 0 = separable)."""
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    ha, _ = np.histogram(a, bins=64, range=(lo, hi))
    hb, _ = np.histogram(b, bins=64, range=(lo, hi))
    return float(np.minimum(ha / ha.sum(), hb / hb.sum()).sum())


def test_every_task_has_noise_and_overlapping_intensities(tasks2d):
    from scipy import ndimage

    for name, ds in tasks2d.items():
        images = np.stack([c.image for c in ds.cases[:8]])
        labels = np.stack([c.label for c in ds.cases[:8]])
        # noise: a high-pass residual that is not negligible
        residual = images - ndimage.gaussian_filter(images, sigma=(0, 0, 1.5, 1.5))
        assert residual.std() > 0.03, name
        # overlapping intensities: every foreground class overlaps the rest of the image
        for k in range(1, ds.num_classes):
            inside = images[:, 0][labels == k]
            outside = images[:, 0][labels != k]
            assert _overlap(inside, outside) > 0.05, (name, ds.label_names[k])
        # partial-volume edges: intensities on label borders are intermediate (blurred), so a
        # single intensity threshold cannot reproduce the label
        fg = labels > 0 if name != "aerial" else labels == 1
        values = images[:, 0]
        best = max(
            2 * np.sum((values > t) & fg) / (np.sum(values > t) + fg.sum())
            for t in np.quantile(values, np.linspace(0.01, 0.99, 50))
        )
        assert best < 0.95, (name, best)


def test_make_task_3d_and_slices():
    ds = make_task("liver", n_cases=2, spatial_dims=3, size=32)
    assert ds.spatial_dims == 3 and ds.slice_axis == 0
    assert ds[0].image.shape == (1, 32, 32, 32) and ds[0].spacing == (1.0, 1.0, 1.0)
    assert 10 <= ds.class_ratios()["liver"] <= 120
    sl = ds.as_slices()
    assert len(sl) == 64 and sl.spatial_dims == 2 and sl[0].image.shape == (1, 32, 32)
    assert sl[5].meta == {"parent": ds[0].case_id, "axis": 0, "index": 5}
    assert np.shares_memory(sl[5].image, ds[0].image)  # views, no copy
    rebuilt = stack_slices([s.label for s in sl.cases[:32]], axis=0)
    np.testing.assert_array_equal(rebuilt, ds[0].label)
    with pytest.raises(ValueError, match="aerial"):
        make_task("aerial", n_cases=1, spatial_dims=3)
    with pytest.raises(ValueError, match="unknown task"):
        make_task("lung")


def test_preview_writes_pngs(tmp_path):
    paths = preview_tasks(tmp_path / "prev", tasks=["tumor", "aerial"], n_cases=2, size=48)
    assert [p.name for p in paths] == ["tumor.png", "aerial.png"]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    paths3d = preview_tasks(tmp_path / "prev3d", tasks=["pancreas"], n_cases=1, spatial_dims=3, size=24)
    assert paths3d[0].is_file()
    with pytest.raises(ValueError, match="unknown task"):
        preview_tasks(tmp_path, tasks=["nope"])


# --------------------------------------------------------------------------------------------
# Preprocessing, labels, split
# --------------------------------------------------------------------------------------------


def test_normalize_intensity_clips_percentiles_and_zscores():
    rng = np.random.default_rng(0)
    img = rng.normal(100.0, 10.0, size=(2, 50, 40))
    img[0, 0, 0] = 1e6  # outlier: clipped away by the 99.5th percentile
    img[1] = 7.0  # constant channel
    out = normalize_intensity(img)
    assert out.dtype == np.float32 and out.shape == img.shape
    assert abs(out[0].mean()) < 1e-5 and abs(out[0].std() - 1) < 1e-4
    assert out[0].max() < 4.0
    np.testing.assert_array_equal(out[1], 0.0)


def test_ct_normalization_uses_dataset_foreground_constants():
    from seglosses.bench.data import normalize_images, resolve_normalization

    assert resolve_normalization("auto", ("CT", "T2")) == ("ct", "case")
    assert resolve_normalization(True, ("ct",)) == ("ct",)
    assert resolve_normalization(False, ("CT",)) == ("none",)
    with pytest.raises(ValueError, match="normalize"):
        resolve_normalization("minmax", ("CT",))
    rng = np.random.default_rng(0)
    images = [rng.normal(0, 300, (1, 30, 30)) for _ in range(3)]
    labels = [np.zeros((30, 30), np.int64) for _ in range(3)]
    for img, lab in zip(images, labels):
        lab[10:20, 10:20] = 1
        img[0][lab > 0] = rng.normal(60, 10, 100)
        img[0, 0, 0] = 60.0  # the same HU value ...
    out, notes = normalize_images(images, labels, ("ct",))
    assert notes[0].startswith("ct: clip to foreground")
    assert out[0][0, 0, 0] == out[1][0, 0, 0] == out[2][0, 0, 0]  # ... maps to the same value in every case
    fg = np.concatenate([o[0][l > 0] for o, l in zip(out, labels)])
    assert abs(fg.mean()) < 0.05 and abs(fg.std() - 1) < 0.05
    assert np.concatenate(out).min() >= fg.min() - 1e-6  # background clipped to the foreground range


def test_remap_labels():
    lab = np.array([[0, 255], [255, 0]])
    np.testing.assert_array_equal(remap_labels(lab, [0, 255]), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(remap_labels(np.array([0, 2, 5]), [0, 2, 5]), [0, 1, 2])
    with pytest.raises(ValueError, match=r"mask\.png: label values \[3\] not in the declared labels"):
        remap_labels(np.array([0, 3]), [0, 1], where="mask.png")


def test_split_cases_deterministic_and_saved(tmp_path):
    ids = [f"case_{i:02d}" for i in range(23)]
    train, test = split_cases(ids, val_fraction=0.2, seed=3)
    assert len(test) == 5 and len(train) == 18 and not set(train) & set(test)
    assert sorted(train + test) == sorted(ids)
    assert (train, test) == split_cases(list(reversed(ids)), 0.2, seed=3)  # order-independent
    assert test != split_cases(ids, 0.2, seed=4)[1]
    path = save_split(tmp_path / "split.json", train, test, seed=3, val_fraction=0.2)
    assert load_split(path) == (train, test)
    assert json.loads(path.read_text())["seed"] == 3
    assert split_cases(["a", "b"], 0.2) in ((["a"], ["b"]), (["b"], ["a"]))
    with pytest.raises(ValueError, match="val_fraction"):
        split_cases(ids, 1.0)
    with pytest.raises(ValueError, match="duplicate"):
        split_cases(["a", "a", "b"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json"):
        load_split(tmp_path / "bad.json")


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


def test_sampler_foreground_fraction_and_determinism():
    ds = make_task("tumor", n_cases=6, size=64)
    cases = ds.training_cases()
    rng = np.random.default_rng(0)
    with_fg = total = 0
    for _ in range(60):
        images, labels = sample_batch(cases, 2, (32, 32), rng)
        assert images.shape == (2, 1, 32, 32) and images.dtype == np.float32
        assert labels.shape == (2, 32, 32) and labels.dtype == np.int64
        with_fg += int(sum(l.any() for l in labels))
        total += 2
    assert with_fg / total >= 0.33
    # without oversampling small lesions are rarely hit: the oversampling is what guarantees it
    rng = np.random.default_rng(0)
    plain = sum(int(l.any()) for _ in range(60) for l in sample_batch(cases, 2, 32, rng, fg_fraction=0.0)[1])
    assert plain < with_fg
    a = sample_batch(cases, 3, 24, np.random.default_rng(5))
    b = sample_batch(cases, 3, 24, np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    ti, tl = sample_batch(cases, 2, 16, 1, as_torch=True)
    assert tuple(ti.shape) == (2, 1, 16, 16) and str(tl.dtype) == "torch.int64"


def test_sampler_padding_and_mirroring_keep_alignment():
    rng = np.random.default_rng(0)
    label = (rng.random((10, 7, 5)) > 0.7).astype(np.int64)
    label[0, 0, 0] = 2
    image = np.stack([label.astype(np.float32) * 10 + 1, -label.astype(np.float32)])
    case = Case("c", image, label, (1.0, 1.0, 1.0))
    for seed in range(10):
        imgs, labs = sample_batch([case], 4, (12, 6, 8), np.random.default_rng(seed))
        assert imgs.shape == (4, 2, 12, 6, 8)
        inside = imgs[:, 0] != 0  # padded voxels are 0 in the image and background in the label
        np.testing.assert_array_equal(imgs[:, 0][inside], labs[inside] * 10 + 1)
        np.testing.assert_array_equal(imgs[:, 1][inside], -labs[inside])
        assert (labs[~inside] == 0).all()
        assert inside.sum(axis=(1, 2, 3)).tolist() == [10 * 6 * 5] * 4  # the whole image, padded
    with pytest.raises(ValueError, match="patch_size"):
        sample_batch([case], 1, (4, 4), 0)


# --------------------------------------------------------------------------------------------
# Real-data layouts
# --------------------------------------------------------------------------------------------

SPACING = (0.8, 0.7, 2.5)  # anisotropic, distinct per axis


def _volume(rng, shape=(20, 16, 6)):
    img = rng.normal(50, 20, size=shape).astype(np.float32)
    lab = np.zeros(shape, np.uint8)
    lab[4:12, 3:10, 1:5] = 1
    lab[6:8, 5:7, 2:4] = 2
    return img, lab


def _write_msd(root: Path, n=3, labels=None, four_d=False, rng=None):
    rng = rng or np.random.default_rng(0)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(n):
        img, lab = _volume(rng)
        if four_d:
            img = np.stack([img, img * 2 + 5], axis=-1)
        bio.write_nifti(root / "imagesTr" / f"case_{i}.nii.gz", img, SPACING)
        bio.write_nifti(root / "labelsTr" / f"case_{i}.nii.gz", lab, SPACING)
        training.append({"image": f"./imagesTr/case_{i}.nii.gz", "label": f"./labelsTr/case_{i}.nii.gz"})
    (root / "imagesTr" / "._case_0.nii.gz").write_bytes(b"macOS resource fork")  # MSD tars ship these
    meta = {
        "name": "TestTask",
        "modality": {"0": "T1", "1": "T2"} if four_d else {"0": "CT"},
        "labels": labels or {"0": "background", "1": "liver", "2": "tumour"},
        "numTraining": n,
        "training": training,
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_load_msd_layout_spacing_and_labels(tmp_path):
    root = _write_msd(tmp_path / "Task99_Test")
    ds = load_dataset(root)
    assert ds.name == "TestTask" and len(ds) == 3 and ds.case_ids == ["case_0", "case_1", "case_2"]
    assert ds.label_names == ("background", "liver", "tumour") and ds.num_classes == 3
    assert ds.in_channels == 1 and ds.channel_names == ("CT",) and ds.spatial_dims == 3
    case = ds["case_1"]
    assert case.image.shape == (1, 20, 16, 6) and case.label.shape == (20, 16, 6)
    np.testing.assert_allclose(case.spacing, SPACING, rtol=1e-6)  # numpy order == header order
    assert case.label[5, 4, 2] == 1 and case.label[6, 5, 2] == 2
    assert ds.normalization[0].startswith("ct")  # modality CT -> nnU-Net CT scheme
    fg = np.concatenate([c.image[0][c.label > 0] for c in ds])
    assert abs(fg.mean()) < 0.05 and abs(fg.std() - 1) < 0.1
    raw = load_dataset(root, normalize=False)["case_1"].image
    assert raw.dtype == np.float32 and abs(raw.mean() - 50) < 5  # raw intensities on request
    # 2D training on slices along the through-plane axis (largest spacing: axis 2)
    ds2 = load_dataset(root, spatial_dims=2)
    assert ds2.spatial_dims == 3 and ds2.train_dims == 2 and ds2.slice_axis_of(case) == 2
    slices = ds2.training_cases()
    assert len(slices) == 3 * 6 and slices[0].image.shape == (1, 20, 16)
    np.testing.assert_allclose(slices[0].spacing, SPACING[:2], rtol=1e-6)
    vol = stack_slices([s.label for s in slices if s.meta["parent"] == "case_1"], axis=2)
    np.testing.assert_array_equal(vol, case.label)
    assert len(list(iter_slices(case.image, 3))) == 6


def test_load_msd_label_remapping_and_multimodal(tmp_path):
    labels = {"0": "background", "3": "liver", "7": "tumour"}
    root = tmp_path / "Task98"
    rng = np.random.default_rng(1)
    _write_msd(root, n=2, four_d=True, rng=rng)
    for i in range(2):  # relabel files with values 0/3/7
        path = root / "labelsTr" / f"case_{i}.nii.gz"
        lab = np.asarray(nib.load(str(path)).dataobj)
        bio.write_nifti(path, np.choose(lab, [0, 3, 7]).astype(np.uint8), SPACING)
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = labels
    (root / "dataset.json").write_text(json.dumps(meta))
    ds = load_dataset(root)
    assert ds.label_names == ("background", "liver", "tumour") and ds.source_labels == (0, 3, 7)
    assert set(np.unique(ds[0].label)) == {0, 1, 2}
    assert ds.in_channels == 2 and ds.channel_names == ("T1", "T2")
    assert ds[0].image.shape == (2, 20, 16, 6)  # (i, j, k, c) -> (c, i, j, k)
    assert [n.split(":")[0] for n in ds.normalization] == ["case", "case"]  # MR: per case
    np.testing.assert_allclose(ds[0].image.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(ds[0].spacing, SPACING, rtol=1e-6)


def test_load_nnunet_raw_layout(tmp_path):
    root = tmp_path / "Dataset001_Test"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(2)
    for case in ("abc_001", "abc_002"):
        img, lab = _volume(rng)
        bio.write_nifti(root / "imagesTr" / f"{case}_0000.nii.gz", img, SPACING)
        bio.write_nifti(root / "imagesTr" / f"{case}_0001.nii.gz", -img, SPACING)
        bio.write_nifti(root / "labelsTr" / f"{case}.nii.gz", lab * 2, SPACING)  # values 0, 2, 4
    meta = {
        "channel_names": {"0": "T2", "1": "ADC"},
        "labels": {"background": 0, "peripheral zone": 2, "transition zone": 4},
        "numTraining": 2,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(meta))
    ds = load_dataset(root)
    assert ds.case_ids == ["abc_001", "abc_002"] and ds.in_channels == 2
    assert ds.channel_names == ("T2", "ADC")
    assert ds.label_names == ("background", "peripheral zone", "transition zone")
    assert ds.source_labels == (0, 2, 4) and ds[0].label.max() == 2
    np.testing.assert_allclose(ds[0].spacing, SPACING, rtol=1e-6)
    np.testing.assert_allclose(ds[0].image[0], -ds[0].image[1], atol=1e-4)


def _write_png(path, arr):
    PIL_Image.fromarray(arr).save(path)


def test_load_2d_folders_png_tiff_rgb(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "folders"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    mask = np.zeros((24, 30), np.uint8)
    mask[5:15, 8:20] = 255
    _write_png(root / "images" / "a.png", rng.integers(0, 256, (24, 30), dtype=np.uint8))  # 8-bit gray
    _write_png(root / "masks" / "a.png", mask)
    tifffile.imwrite(root / "images" / "b.tif", rng.integers(0, 65536, (24, 30), dtype=np.uint16))  # 16-bit
    tifffile.imwrite(root / "masks" / "b.tif", mask)
    (root / "images" / ".DS_Store").write_bytes(b"junk")
    ds = load_dataset(root)
    assert ds.case_ids == ["a", "b"] and ds.spatial_dims == 2 and ds.in_channels == 1
    assert ds.label_names == ("background", "label_255") and ds.source_labels == (0, 255)
    assert ds["b"].label.max() == 1 and ds["b"].label.sum() == 10 * 12
    assert ds["b"].spacing == (1.0, 1.0) and ds["b"].image.dtype == np.float32
    assert ds["b"].image.std() > 0.5  # 16-bit data kept its dynamic range
    with pytest.raises(ValueError, match="cannot use them as 3D"):
        load_dataset(root, spatial_dims=3)

    # RGB images -> 3 channels; colour-coded masks -> one class per colour
    rgb_root = tmp_path / "rgb"
    (rgb_root / "images").mkdir(parents=True)
    (rgb_root / "masks").mkdir()
    colours = np.array([[0, 0, 0], [60, 16, 152], [132, 41, 246], [254, 221, 58]], np.uint8)
    for name in ("t1", "t2"):
        _write_png(rgb_root / "images" / f"{name}.png", rng.integers(0, 256, (20, 22, 3), dtype=np.uint8))
        idx = rng.integers(0, 4, (20, 22))
        _write_png(rgb_root / "masks" / f"{name}.png", colours[idx])
    ds = load_dataset(rgb_root)
    assert ds.in_channels == 3 and ds.channel_names == ("R", "G", "B") and ds[0].image.shape == (3, 20, 22)
    assert ds.label_names == ("background", "#3c1098", "#8429f6", "#fedd3a")


def test_load_2d_folder_with_dataset_json_names(tmp_path):
    root = tmp_path / "named"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    _write_png(root / "images" / "x.png", np.arange(12 * 12, dtype=np.uint8).reshape(12, 12))
    _write_png(root / "masks" / "x.png", (np.arange(144).reshape(12, 12) % 3).astype(np.uint8))
    (root / "dataset.json").write_text(json.dumps({"labels": {"0": "bg", "1": "road", "2": "house"}}))
    ds = load_dataset(root)  # images/ + masks/ wins over dataset.json; its labels name the values
    assert ds.label_names == ("bg", "road", "house")
    os.remove(root / "dataset.json")
    assert load_dataset(root).label_names == ("background", "label_1", "label_2")


# --------------------------------------------------------------------------------------------
# Corrupt and mismatched cases: one ValueError naming the file and the problem
# --------------------------------------------------------------------------------------------


def test_error_shape_mismatch(tmp_path):
    root = _write_msd(tmp_path / "T")
    bio.write_nifti(root / "labelsTr" / "case_1.nii.gz", np.zeros((20, 16, 5), np.uint8), SPACING)
    with pytest.raises(
        ValueError,
        match=r"case_1\.nii\.gz: label shape \(20, 16, 5\) does not match image shape \(20, 16, 6\)",
    ):
        load_dataset(root)


def test_error_label_not_in_dataset_json(tmp_path):
    root = _write_msd(tmp_path / "T")
    lab = np.zeros((20, 16, 6), np.uint8)
    lab[0, 0, 0] = 9
    bio.write_nifti(root / "labelsTr" / "case_2.nii.gz", lab, SPACING)
    with pytest.raises(
        ValueError, match=r"case_2\.nii\.gz: label values \[9\] are not declared in .*dataset\.json"
    ):
        load_dataset(root)


def test_error_nan_intensities(tmp_path):
    root = _write_msd(tmp_path / "T")
    img = np.ones((20, 16, 6), np.float32)
    img[3, 3, 3] = np.nan
    bio.write_nifti(root / "imagesTr" / "case_0.nii.gz", img, SPACING)
    with pytest.raises(
        ValueError, match=r"imagesTr/case_0\.nii\.gz: image contains 1 NaN or infinite intensities"
    ):
        load_dataset(root)


def test_error_unreadable_file_and_all_problems_listed(tmp_path):
    root = _write_msd(tmp_path / "T")
    (root / "imagesTr" / "case_1.nii.gz").write_bytes(b"this is not a nifti file")
    (root / "labelsTr" / "case_2.nii.gz").write_bytes(gzip.compress(b"truncated"))
    with pytest.raises(ValueError) as info:
        load_dataset(root)
    msg = str(info.value)
    assert "2 problem(s)" in msg and "nothing was trained" in msg
    assert "imagesTr/case_1.nii.gz: unreadable NIfTI file" in msg
    assert "labelsTr/case_2.nii.gz: unreadable NIfTI file" in msg


def test_error_missing_label_and_image_without_label(tmp_path):
    root = _write_msd(tmp_path / "T")
    os.remove(root / "labelsTr" / "case_0.nii.gz")
    bio.write_nifti(root / "imagesTr" / "extra.nii.gz", np.zeros((4, 4, 4), np.float32), SPACING)
    with pytest.raises(ValueError) as info:
        load_dataset(root)
    msg = str(info.value)
    assert "labelsTr/case_0.nii.gz: label file not found" in msg
    assert "imagesTr/extra.nii.gz: image without a label" in msg


def test_error_missing_mask_in_2d_folder(tmp_path):
    root = tmp_path / "f"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name in ("a", "b"):
        _write_png(root / "images" / f"{name}.png", np.zeros((8, 8), np.uint8))
    _write_png(root / "masks" / "a.png", np.zeros((8, 8), np.uint8))
    _write_png(root / "masks" / "c.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError) as info:
        load_dataset(root)
    msg = str(info.value)
    assert "images/b.png: image without a mask" in msg
    assert "masks/c.png: mask without an image" in msg


def test_error_2d_shape_mismatch_and_channel_mismatch(tmp_path):
    root = tmp_path / "f"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    _write_png(root / "images" / "a.png", np.zeros((8, 8), np.uint8))
    _write_png(root / "masks" / "a.png", np.zeros((8, 9), np.uint8))
    _write_png(root / "images" / "b.png", np.zeros((8, 8, 3), np.uint8))
    _write_png(root / "masks" / "b.png", np.zeros((8, 8), np.uint8))
    _write_png(root / "images" / "c.png", np.zeros((8, 8), np.uint8))
    _write_png(root / "masks" / "c.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError) as info:
        load_dataset(root)
    msg = str(info.value)
    assert "masks/a.png: label shape (8, 9) does not match image shape (8, 8)" in msg
    assert "images/c.png: 1 image channel(s), case 'b' has 3" in msg


def test_error_non_integer_label_and_spacing_mismatch(tmp_path):
    root = _write_msd(tmp_path / "T")
    bio.write_nifti(root / "labelsTr" / "case_0.nii.gz", np.full((20, 16, 6), 0.5, np.float32), SPACING)
    bio.write_nifti(root / "labelsTr" / "case_1.nii.gz", np.zeros((20, 16, 6), np.uint8), (0.8, 0.7, 5.0))
    with pytest.raises(ValueError) as info:
        load_dataset(root)
    msg = str(info.value)
    assert "labelsTr/case_0.nii.gz: label volume contains non-integer values" in msg
    assert (
        "labelsTr/case_1.nii.gz: label spacing (0.8, 0.7, 5.0) does not match image spacing (0.8, 0.7, 2.5)"
        in msg
    )


def test_palette_mask(tmp_path):
    root = tmp_path / "p"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    _write_png(root / "images" / "a.png", np.zeros((6, 6, 3), np.uint8))
    mask = PIL_Image.fromarray(np.array([[0, 1, 2]] * 6, np.uint8).repeat(2, axis=1), mode="P")
    mask.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    mask.save(root / "masks" / "a.png")
    ds = load_dataset(root)
    assert ds.label_names == ("background", "label_1", "label_2")  # palette indices, not colours
    assert ds[0].label[0].tolist() == [0, 0, 1, 1, 2, 2]


def test_error_unknown_layout_and_unsupported_labels(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset layout"):
        load_dataset(tmp_path)
    with pytest.raises(ValueError, match="no such dataset folder"):
        load_dataset(tmp_path / "missing")
    root = _write_msd(tmp_path / "T")
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "tumour": [1, 2]}
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="dataset.json: nnU-Net region-based labels are not supported"):
        load_dataset(root)
    meta["labels"] = {"background": 0, "tumour": 1, "ignore": 2}
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="dataset.json: nnU-Net 'ignore' labels are not supported"):
        load_dataset(root)


# --------------------------------------------------------------------------------------------
# A Decathlon-layout fixture built from real images that installed packages ship
# --------------------------------------------------------------------------------------------


def _otsu(x: np.ndarray) -> float:
    hist, edges = np.histogram(x, bins=256)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centers) / np.maximum(w0, 1)
    m1 = (np.sum(hist * centers) - np.cumsum(hist * centers)) / np.maximum(w1, 1)
    return float(centers[np.argmax(w0 * w1 * (m0 - m1) ** 2)])


def _real_images():
    """Real scans shipped by installed packages: nibabel's test MR volume and matplotlib's MR slice."""
    from nibabel.testing import data_path

    anat = nib.load(os.path.join(data_path, "anatomical.nii"))  # real T1 MR, 33x41x25, 2 mm
    vol = np.asarray(anat.dataobj).astype(np.float32)
    spacing = tuple(float(z) for z in anat.header.get_zooms()[:3])
    from matplotlib import cbook

    with cbook.get_sample_data("s1045.ima.gz") as f:  # real MR slice, 256x256 uint16
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # some matplotlib versions return the gzip stream
        raw = gzip.decompress(raw)
    mr_slice = np.frombuffer(raw, ">u2").reshape(256, 256).astype(np.uint16)  # big-endian, values 0-215
    return vol, spacing, mr_slice


def test_decathlon_fixture_from_real_images(tmp_path):
    from scipy import ndimage

    vol, spacing, mr_slice = _real_images()
    root = tmp_path / "Task90_RealMR"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    volumes = {
        "anat_0": vol,
        "anat_1": vol[::-1, :, 2:].copy(),  # flipped, cropped variant of the same scan
        "slice_0": np.repeat(mr_slice[::4, ::4, None], 3, axis=2).astype(np.int16),  # 64x64x3 stack
    }
    spacings = {"anat_0": spacing, "anat_1": spacing, "slice_0": (3.6, 3.6, 5.0)}
    training = []
    for case, img in volumes.items():
        lab = ndimage.binary_opening(img > _otsu(img), iterations=1).astype(np.uint8)  # derived label: tissue
        bio.write_nifti(root / "imagesTr" / f"{case}.nii.gz", img, spacings[case])
        bio.write_nifti(root / "labelsTr" / f"{case}.nii.gz", lab, spacings[case])
        training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
    meta = {
        "name": "RealMR",
        "modality": {"0": "MRI"},
        "labels": {"0": "background", "1": "tissue"},
        "training": training,
    }
    (root / "dataset.json").write_text(json.dumps(meta))

    ds = load_dataset(root, spatial_dims=2)
    assert ds.case_ids == ["anat_0", "anat_1", "slice_0"] and ds.label_names == ("background", "tissue")
    assert ds["anat_0"].image.shape == (1, 33, 41, 25) and ds["anat_1"].image.shape == (1, 33, 41, 23)
    np.testing.assert_allclose(ds["anat_0"].spacing, (2.0, 2.0, 2.0))
    np.testing.assert_allclose(ds["slice_0"].spacing, (3.6, 3.6, 5.0))
    ratio = ds.class_ratios()["tissue"]
    assert 0.5 < ratio < 20
    for case in ds:
        assert abs(float(case.image.mean())) < 1e-3 and 0 < case.label.mean() < 1
    train, test = split_cases(ds.case_ids, 0.34, seed=0)
    assert len(test) == 1
    slices = ds.subset(train).training_cases()
    assert all(s.spatial_dims == 2 for s in slices)
    images, labels = sample_batch(slices, 6, (32, 32), np.random.default_rng(0))
    assert images.shape == (6, 1, 32, 32) and labels[:2].any(axis=(1, 2)).all()
    pic, lab = display_slice(ds["anat_0"])
    assert pic.shape == lab.shape == (33, 41) and 0 <= pic.min() and pic.max() <= 1

    # the real MR slice as a 16-bit PNG in a 2D folder
    folder = tmp_path / "mr2d"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    _write_png(folder / "images" / "s1045.png", mr_slice * 257)  # stretched to the 16-bit range
    _write_png(folder / "masks" / "s1045.png", ((mr_slice > _otsu(mr_slice)) * 255).astype(np.uint8))
    ds2 = load_dataset(folder)
    assert ds2[0].image.shape == (1, 256, 256) and ds2.label_names == ("background", "label_255")
    assert 0.5 < ds2.class_ratios()["label_255"] < 20
    raw2 = load_dataset(folder, normalize=False)[0].image
    assert raw2.max() == mr_slice.max() * 257 > 255  # 16 bits survived the PNG round trip


# --------------------------------------------------------------------------------------------
# Dataset object
# --------------------------------------------------------------------------------------------


def test_dataset_validation_and_views():
    img = np.zeros((1, 4, 5), np.float32)
    lab = np.zeros((4, 5), np.int64)
    lab[1, 1] = 1
    ds = Dataset("d", [Case("a", img, lab, (1.0, 1.0)), Case("b", img, lab, (1.0, 1.0))], ("bg", "fg"))
    assert ds.subset(["b"]).case_ids == ["b"] and ds["a"].case_id == "a"
    assert ds.class_voxel_counts().tolist() == [38, 2]
    with pytest.raises(ValueError, match="duplicate case id"):
        Dataset("d", [Case("a", img, lab, (1.0, 1.0))] * 2, ("bg", "fg"))
    with pytest.raises(
        ValueError, match=r"case 'x'.*image shape \(1, 4, 5\) does not match label shape \(4, 6\)"
    ):
        Dataset("d", [Case("x", img, np.zeros((4, 6), np.int64), (1.0, 1.0))], ("bg", "fg"))
    with pytest.raises(ValueError, match="as_slices needs 3D"):
        ds.as_slices()
    with pytest.raises(KeyError):
        ds.subset(["zzz"])


def test_vessels_are_thin_connected_trees():
    """The topology task: thin structures (most vessel pixels touch the background), few
    components per case, thinnest vessels one pixel wide."""
    from scipy import ndimage

    from seglosses.metrics import betti_numbers

    ds = make_task("vessels", n_cases=8, seed=0)
    for case in ds:
        v = case.label == 1
        assert v.any()
        inner = ndimage.binary_erosion(v, structure=ndimage.generate_binary_structure(2, 1))
        assert inner.sum() < 0.35 * v.sum(), case.case_id  # thin: mostly boundary pixels
        assert betti_numbers(v)[0] <= 4, case.case_id  # one tree per trunk bundle, not dust
        # somewhere a vessel is a single pixel wide (a pixel whose 4 neighbours are 2 or fewer vessels)
        nb = ndimage.convolve(v.astype(int), np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]]), mode="constant")
        assert (v & (nb <= 2)).sum() > 20, case.case_id
