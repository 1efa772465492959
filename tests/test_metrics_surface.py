"""Surface metrics (NSD, HD, HD95, ASSD) and evaluate_case.

References (they really run in CI, see conftest.require): DeepMind ``surface-distance`` for the
default ``method="surface"``; MONAI for ``method="voxel"``; medpy's ``hd`` for ``method="voxel"``
(medpy's ``hd95`` pools both directions before taking the percentile and its ``assd`` averages the
two directed means, different conventions from MONAI's, so only ``hd`` is compared).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from seglosses.metrics import (
    METRIC_KEYS,
    SurfaceDistances,
    average_surface_distance,
    evaluate_case,
    hausdorff_distance,
    normalized_surface_dice,
    surface_distances,
)
from seglosses.metrics._tables import contour_length_table, surface_area_table
from seglosses.metrics.surface import _neighbour_codes, _padded

# surface-distance calls deprecated scipy.ndimage namespaces; not our concern here
pytestmark = pytest.mark.filterwarnings("ignore:Please import:DeprecationWarning")

NSD_ATOL = 1e-6
MM_ATOL = 1e-4
TOLERANCES = (0.0, 0.5, 0.8, 1.0, 1.5, 1.6, 2.0, 2.5, 3.0, 5.0)
PERCENTILES = (50, 90, 95, 99, 100)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def blob(shape, rng, sigma=1.5, level=0.2):
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > level * field.std()


def perturbed(gt, rng, n_stray=4):
    """gt dilated or eroded, with a few flipped boundary voxels and stray voxels in the corners."""
    pred = ndimage.binary_dilation(gt) if rng.random() < 0.5 else ndimage.binary_erosion(gt)
    pred = pred ^ (rng.random(gt.shape) < 0.02)
    corners = np.array(
        [[0 if c else s - 1 for c, s in zip(bits, gt.shape)] for bits in np.ndindex((2,) * gt.ndim)]
    )
    for idx in rng.permutation(len(corners))[:n_stray]:
        pred[tuple(corners[idx])] = True
    return pred


def random_case(seed):
    rng = np.random.default_rng(seed)
    ndim = 2 + seed % 2
    shape = tuple(int(v) for v in rng.integers(6, 22 if ndim == 3 else 40, ndim))
    gt = blob(shape, rng)
    pred = blob(shape, rng) if seed % 3 == 0 else perturbed(gt, rng)
    spacing = tuple(float(v) for v in rng.choice([0.5, 0.7, 0.8, 1.0, 1.5, 2.5], ndim))
    return gt, pred, spacing


def assert_matches_deepmind(gt, pred, spacing, tolerances=TOLERANCES):
    sd = require("surface_distance")
    ref = sd.compute_surface_distances(gt.astype(bool), pred.astype(bool), spacing)
    ours = surface_distances(gt, pred, spacing)
    for tol in tolerances:
        assert ours.normalized_surface_dice(tol) == pytest.approx(
            sd.compute_surface_dice_at_tolerance(ref, tol), abs=NSD_ATOL
        ), f"NSD at {tol}"
    for q in PERCENTILES:
        assert ours.hausdorff(q) == pytest.approx(sd.compute_robust_hausdorff(ref, q), abs=MM_ATOL), f"HD{q}"
    assert ours.hausdorff() == pytest.approx(sd.compute_robust_hausdorff(ref, 100), abs=MM_ATOL)
    pooled = (
        np.sum(ref["distances_gt_to_pred"] * ref["surfel_areas_gt"])
        + np.sum(ref["distances_pred_to_gt"] * ref["surfel_areas_pred"])
    ) / (np.sum(ref["surfel_areas_gt"]) + np.sum(ref["surfel_areas_pred"]))
    assert ours.average_symmetric() == pytest.approx(pooled, abs=MM_ATOL)
    # the raw arrays too (the reference returns them sorted)
    np.testing.assert_allclose(np.sort(ours.distances_gt_to_pred), ref["distances_gt_to_pred"], atol=1e-12)
    np.testing.assert_allclose(np.sort(ours.distances_pred_to_gt), ref["distances_pred_to_gt"], atol=1e-12)
    assert np.sum(ours.areas_gt) == pytest.approx(np.sum(ref["surfel_areas_gt"]), rel=1e-12)
    assert np.sum(ours.areas_pred) == pytest.approx(np.sum(ref["surfel_areas_pred"]), rel=1e-12)
    return ours, ref


def monai_metrics(gt, pred, spacing, tolerances):
    require("monai")
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    yp = torch.from_numpy(np.asarray(pred, bool))[None, None].float()
    yt = torch.from_numpy(np.asarray(gt, bool))[None, None].float()
    kw = {"include_background": True, "spacing": spacing}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nsd = [compute_surface_dice(yp, yt, [t], **kw).item() for t in tolerances]
        hd = compute_hausdorff_distance(yp, yt, **kw).item()
        hd95 = compute_hausdorff_distance(yp, yt, percentile=95, **kw).item()
        assd = compute_average_surface_distance(yp, yt, symmetric=True, **kw).item()
    return nsd, hd, hd95, assd


# --------------------------------------------------------------------------------------------
# lookup tables and neighbour codes equal the reference's
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 0.8, 2.5), (0.3, 1.7, 0.91), (3.0, 0.5, 0.5)])
def test_surface_area_table_bit_identical(spacing):
    lt = require("surface_distance.lookup_tables")
    ref = lt.create_table_neighbour_code_to_surface_area(spacing)
    assert np.array_equal(surface_area_table(spacing), ref)
    assert np.array_equal(
        contour_length_table(spacing[:2]), lt.create_table_neighbour_code_to_contour_length(spacing[:2])
    )


@pytest.mark.parametrize("ndim", [2, 3])
def test_neighbour_codes_equal_reference_correlation(ndim):
    lt = require("surface_distance.lookup_tables")
    rng = np.random.default_rng(ndim)
    mask = rng.random((7, 9, 6)[:ndim]) < 0.5
    kernel = lt.ENCODE_NEIGHBOURHOOD_3D_KERNEL if ndim == 3 else lt.ENCODE_NEIGHBOURHOOD_2D_KERNEL
    crop = np.zeros(tuple(s + 1 for s in mask.shape), np.uint8)  # the reference's crop + padding
    crop[(slice(0, -1),) * ndim] = mask
    ref = ndimage.correlate(crop, kernel, mode="constant", cval=0)
    assert np.array_equal(_neighbour_codes(_padded(mask, np.uint8)), ref)


# --------------------------------------------------------------------------------------------
# against DeepMind surface-distance (method="surface")
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(16))
def test_random_blobs_match_deepmind(seed):
    gt, pred, spacing = random_case(seed)
    assert_matches_deepmind(gt, pred, spacing)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    ndim=st.sampled_from([2, 3]),
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(2, 9),
    density=st.floats(0.05, 0.95),
    spacing_choice=st.sampled_from([None, (0.8,), (0.5, 1.25, 2.0), (3.0, 0.7, 0.7)]),
)
def test_hypothesis_small_masks_match_deepmind(ndim, seed, size, density, spacing_choice):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(2, size + 1, ndim))
    gt = rng.random(shape) < density
    pred = rng.random(shape) < density
    if not gt.any() or not pred.any():
        return  # the reference's empty-mask values are covered by test_empty_masks
    spacing = (1.0,) * ndim if spacing_choice is None else tuple((spacing_choice * 3)[:ndim])
    assert_matches_deepmind(gt, pred, spacing)


def test_stray_voxels_and_anisotropic_spacing_3d():
    rng = np.random.default_rng(11)
    gt = blob((24, 26, 20), rng, sigma=2.5)
    pred = perturbed(gt, rng, n_stray=8)
    assert_matches_deepmind(gt, pred, (2.5, 0.8, 0.8), tolerances=(0.8, 1.6, 2.0, 2.4, 2.5, 4.0))


def test_single_voxels():
    gt = np.zeros((5, 6, 7), bool)
    pred = np.zeros((5, 6, 7), bool)
    gt[1, 2, 3] = True
    pred[3, 2, 5] = True
    assert_matches_deepmind(gt, pred, (1.5, 1.0, 0.8))
    assert_matches_deepmind(gt, gt, (1.5, 1.0, 0.8))
    g2 = np.zeros((4, 5), bool)
    g2[0, 0] = True
    assert_matches_deepmind(g2, np.eye(4, 5, dtype=bool), (0.7, 1.3))


def test_masks_touching_the_image_border():
    rng = np.random.default_rng(5)
    gt = np.zeros((10, 12, 9), bool)
    gt[:6, 3:, :] = True  # touches five faces
    pred = np.ones_like(gt)  # the whole image
    assert_matches_deepmind(gt, pred, (1.0, 0.8, 2.0))
    g2 = rng.random((9, 7)) < 0.7
    g2[0, :] = True
    g2[:, -1] = True
    assert_matches_deepmind(g2, np.ones_like(g2), (0.8, 0.8))
    assert_matches_deepmind(g2, np.roll(g2, 1, axis=0), (0.8, 0.8))


# --------------------------------------------------------------------------------------------
# lattice tolerances and floating point
# --------------------------------------------------------------------------------------------


def _boxes_offset(k, axis, shape=(10, 12, 14), spacing=(0.8, 0.8, 0.8)):
    gt = np.zeros(shape, bool)
    gt[2:5, 3:6, 4:7] = True
    return gt, np.roll(gt, k, axis=axis), spacing


def test_lattice_tolerance_inclusive_and_equal_to_deepmind():
    """1.6 mm at 0.8 mm spacing is two voxels: those distances must count as within."""
    gt, pred, spacing = _boxes_offset(2, axis=2)
    ours, _ = assert_matches_deepmind(gt, pred, spacing, tolerances=(0.8, 1.6))
    assert 2 * 0.8 == 1.6
    # the farthest elements are exactly two voxels away: with d <= 1.6 inclusive the NSD is 1
    assert ours.hausdorff() == 1.6
    assert ours.normalized_surface_dice(1.6) == 1.0
    assert ours.normalized_surface_dice(np.nextafter(1.6, 0)) < 1.0
    # float32 distances would get it wrong: float32(1.6) > 1.6
    assert float(np.float32(1.6)) > 1.6
    assert ours.distances_gt_to_pred.dtype == np.float64


def test_lattice_tolerance_binary64_rounding_documented():
    """3 * 0.8 = 2.4000000000000004 > 2.4 in binary64: excluded, exactly as DeepMind (documented)."""
    gt, pred, spacing = _boxes_offset(3, axis=0)
    ours, _ = assert_matches_deepmind(gt, pred, spacing, tolerances=(2.4, 2.4 + 1e-9))
    assert ours.hausdorff() == 3 * 0.8 == 2.4000000000000004
    assert ours.normalized_surface_dice(2.4) < 1.0
    assert ours.normalized_surface_dice(2.4 + 1e-9) == 1.0


def test_deepmind_distances_are_float64():
    sd = require("surface_distance")
    gt, pred, spacing = _boxes_offset(2, axis=1)
    ref = sd.compute_surface_distances(gt, pred, spacing)
    assert ref["distances_gt_to_pred"].dtype == np.float64
    assert ref["distances_gt_to_pred"].max() == 1.6


# --------------------------------------------------------------------------------------------
# hand-computed
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["surface", "voxel"])
@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_boxes_offset_by_k_voxels(method, k, axis):
    spacing = (2.0, 0.7, 1.1)
    gt, pred, _ = _boxes_offset(k, axis=axis)
    assert hausdorff_distance(gt, pred, spacing, method=method) == pytest.approx(k * spacing[axis], abs=1e-12)


@pytest.mark.parametrize("k", [1, 3])
def test_squares_offset_2d(k):
    gt = np.zeros((12, 12), bool)
    gt[3:7, 2:6] = True
    pred = np.roll(gt, k, axis=1)
    assert hausdorff_distance(gt, pred, (1.5, 0.5)) == pytest.approx(0.5 * k)
    assert hausdorff_distance(gt, pred, (1.5, 0.5), percentile=95) == pytest.approx(0.5 * k)


@pytest.mark.parametrize("method", ["surface", "voxel"])
def test_identical_masks(method):
    rng = np.random.default_rng(1)
    gt = blob((10, 11, 12), rng)
    s = surface_distances(gt, gt, (1.0, 2.0, 0.5), method=method)
    assert s.normalized_surface_dice(0.0) == 1.0
    assert s.hausdorff() == 0.0 and s.hausdorff(95) == 0.0
    assert s.average_symmetric() == 0.0


# --------------------------------------------------------------------------------------------
# empty masks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["surface", "voxel"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_empty_masks(method, ndim):
    empty = np.zeros((5, 6, 7)[:ndim], bool)
    some = empty.copy()
    some[(slice(1, 3),) * ndim] = True
    both = surface_distances(empty, empty, method=method)
    assert both.gt_empty and both.pred_empty
    assert both.normalized_surface_dice(1.0) == 1.0
    assert both.hausdorff() == 0.0 and both.hausdorff(95) == 0.0 and both.average_symmetric() == 0.0
    for gt, pred in ((empty, some), (some, empty)):
        one = surface_distances(gt, pred, method=method)
        assert one.normalized_surface_dice(1.0) == 0.0
        assert one.normalized_surface_dice(float("inf")) == 0.0
        assert one.hausdorff() == np.inf and one.hausdorff(95) == np.inf and one.average_symmetric() == np.inf
    assert normalized_surface_dice(empty, empty, 1.0) == 1.0
    assert hausdorff_distance(empty, some) == np.inf
    assert average_surface_distance(empty, empty) == 0.0


def test_one_empty_arrays_follow_the_reference_convention():
    """The reference (read from its source) returns no elements for the empty mask and ``inf`` for
    the other direction; it cannot be called here: with numpy >= 2 it raises AttributeError
    (``np.Inf``) as soon as one mask is empty."""
    empty = np.zeros((6, 7), bool)
    some = empty.copy()
    some[2:4, 1:5] = True
    ours = surface_distances(some, empty)
    assert np.all(np.isinf(ours.distances_gt_to_pred)) and ours.distances_pred_to_gt.size == 0
    assert ours.areas_pred.size == 0 and ours.pred_empty and not ours.gt_empty
    assert ours.normalized_surface_dice(1.0) == 0.0 and ours.hausdorff(95) == np.inf


# --------------------------------------------------------------------------------------------
# method="voxel" against MONAI (and medpy's hd)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_voxel_method_matches_monai(seed):
    gt, pred, spacing = random_case(100 + seed)
    tolerances = (0.0, 0.8, 1.0, 1.6, 2.0, 2.4, 3.0)
    nsd, hd, hd95, assd = monai_metrics(gt, pred, spacing, tolerances)
    ours = surface_distances(gt, pred, spacing, method="voxel")
    for t, ref in zip(tolerances, nsd):
        assert ours.normalized_surface_dice(t) == pytest.approx(ref, abs=NSD_ATOL), f"NSD at {t}"
    # MONAI returns float32
    assert ours.hausdorff() == pytest.approx(hd, abs=MM_ATOL)
    assert ours.hausdorff(95) == pytest.approx(hd95, abs=MM_ATOL)
    assert ours.average_symmetric() == pytest.approx(assd, abs=MM_ATOL)


def test_voxel_method_lattice_tolerance_matches_monai():
    gt, pred, spacing = _boxes_offset(3, axis=0)
    (nsd24,), *_ = monai_metrics(gt, pred, spacing, (2.4,))
    # MONAI compares float32 distances with a float32 tolerance: three voxels count at 2.4 mm
    assert nsd24 == 1.0
    assert normalized_surface_dice(gt, pred, 2.4, spacing, method="voxel") == 1.0


@pytest.mark.parametrize("seed", range(4))
def test_voxel_method_hd_matches_medpy(seed):
    mb = require("medpy.metric.binary")
    gt, pred, spacing = random_case(200 + seed)
    assert hausdorff_distance(gt, pred, spacing, method="voxel") == pytest.approx(
        mb.hd(pred, gt, voxelspacing=spacing), abs=MM_ATOL
    )


# --------------------------------------------------------------------------------------------
# the worked example of the docs (voxel vs surface definitions)
# --------------------------------------------------------------------------------------------


def _hole():
    gt = np.zeros((7, 7), bool)
    gt[1:6, 1:6] = True
    pred = gt.copy()
    pred[3, 3] = False  # one missed pixel in the middle
    return gt, pred


def _diagonal():
    gt = np.zeros((6, 6), bool)
    gt[1:4, 1:4] = True
    pred = np.zeros((6, 6), bool)
    pred[2:5, 2:5] = True
    return gt, pred


@pytest.mark.parametrize(
    "make, surface, voxel",
    [
        # (NSD at 1 mm, HD, HD95, ASSD), spacing 1 mm
        (_hole, (0.9301369, 2.0, 2.0, 0.1397262), (1.0, 1.0, 1.0, 0.1111111)),
        (_diagonal, (0.9346990, 1.4142136, 1.4142136, 0.8423495), (0.875, 1.4142136, 1.2692388, 0.8017767)),
    ],
)
def test_worked_example_numbers(make, surface, voxel):
    gt, pred = make()
    for method, expected in (("surface", surface), ("voxel", voxel)):
        s = surface_distances(gt, pred, method=method)
        got = (s.normalized_surface_dice(1.0), s.hausdorff(), s.hausdorff(95), s.average_symmetric())
        assert got == pytest.approx(expected, abs=1e-6), method
    assert_matches_deepmind(gt, pred, (1.0, 1.0))
    nsd, hd, hd95, assd = monai_metrics(gt, pred, (1.0, 1.0), (1.0,))
    assert (nsd[0], hd, hd95, assd) == pytest.approx(voxel, abs=1e-6)


# --------------------------------------------------------------------------------------------
# input types, object behaviour
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["surface", "voxel"])
def test_torch_input_matches_numpy(method):
    gt, pred, spacing = random_case(3)
    a = surface_distances(gt, pred, spacing, method=method)
    b = surface_distances(
        torch.from_numpy(gt).float(),
        torch.from_numpy(pred).to(torch.uint8),
        torch.tensor(spacing, dtype=torch.float64),
        method=method,
    )
    for s in (a, b):
        assert isinstance(s, SurfaceDistances)
    assert a.normalized_surface_dice(1.0) == b.normalized_surface_dice(1.0)
    assert a.hausdorff(95) == b.hausdorff(95)
    assert a.average_symmetric() == b.average_symmetric()
    assert normalized_surface_dice(
        torch.from_numpy(gt), torch.from_numpy(pred), 1.0, spacing, method=method
    ) == (a.normalized_surface_dice(1.0))


def test_scalar_spacing_is_isotropic_and_none_is_one_mm():
    gt, pred, _ = random_case(4)
    ndim = gt.ndim
    assert hausdorff_distance(gt, pred, 0.8) == hausdorff_distance(gt, pred, (0.8,) * ndim)
    assert hausdorff_distance(gt, pred) == hausdorff_distance(gt, pred, (1.0,) * ndim)


def test_object_answers_many_queries_consistently():
    gt, pred, spacing = random_case(7)
    s = surface_distances(gt, pred, spacing)
    nsd = [s.normalized_surface_dice(t) for t in np.linspace(0, 10, 21)]
    assert all(np.diff(nsd) >= 0)
    hd = [s.hausdorff(q) for q in (0, 25, 50, 75, 95, 100)]
    assert all(np.diff(hd) >= 0)
    assert s.hausdorff(100) == s.hausdorff()
    assert s.hausdorff(95) == s.hausdorff(95)  # cached sort gives the same answer
    assert "SurfaceDistances(method='surface'" in repr(s)


def test_convenience_functions_equal_object():
    gt, pred, spacing = random_case(9)
    s = surface_distances(gt, pred, spacing)
    assert normalized_surface_dice(gt, pred, 1.5, spacing) == s.normalized_surface_dice(1.5)
    assert hausdorff_distance(gt, pred, spacing, percentile=95) == s.hausdorff(95)
    assert average_surface_distance(gt, pred, spacing) == s.average_symmetric()


# --------------------------------------------------------------------------------------------
# evaluate_case
# --------------------------------------------------------------------------------------------


def _label_maps(seed=0, shape=(14, 16, 12)):
    rng = np.random.default_rng(seed)
    gt = np.zeros(shape, np.int64)
    gt[blob(shape, rng, sigma=2.0, level=0.8)] = 1
    gt[(slice(2, 7), slice(3, 9), slice(0, 5))[: len(shape)]] = 2  # touches the border
    gt[(slice(9, 12), slice(10, 14), slice(6, 10))[: len(shape)]] = 4
    pred = gt.copy()
    pred[gt == 1] = np.where(rng.random(int((gt == 1).sum())) < 0.1, 0, 1)
    pred[(slice(3, 8), slice(3, 9), slice(0, 5))[: len(shape)]] = 2
    pred[(0,) * len(shape)] = 4  # stray voxel of label 4
    pred[tuple(s - 1 for s in shape)] = 5  # label only in the prediction
    return gt, pred


@pytest.mark.parametrize("method", ["surface", "voxel"])
def test_evaluate_case_equals_per_label_binary_metrics(method):
    from seglosses.metrics import dice_score, iou_score, precision, sensitivity, specificity

    gt, pred = _label_maps()
    spacing = (1.5, 0.8, 0.8)
    res = evaluate_case(pred, gt, spacing=spacing, tolerance=1.6, method=method)
    assert list(res) == [1, 2, 4, 5]
    for label, row in res.items():
        assert tuple(row) == METRIC_KEYS
        g, p = gt == label, pred == label
        s = surface_distances(g, p, spacing, method=method)
        expected = {
            "dsc": dice_score(g, p),
            "iou": iou_score(g, p),
            "sensitivity": sensitivity(g, p),
            "specificity": specificity(g, p),
            "precision": precision(g, p),
            "nsd": s.normalized_surface_dice(1.6),
            "hd": s.hausdorff(),
            "hd95": s.hausdorff(95),
            "assd": s.average_symmetric(),
        }
        assert row == pytest.approx(expected, abs=1e-12), label
        assert all(isinstance(v, float) for v in row.values())
    assert res[5]["dsc"] == 0.0 and res[5]["hd"] == np.inf and res[5]["nsd"] == 0.0


def test_evaluate_case_labels_argument_and_absent_labels():
    gt, pred = _label_maps()
    res = evaluate_case(pred, gt, labels=[2, 7])
    assert list(res) == [2, 7]
    assert res[7] == {
        "dsc": 1.0, "iou": 1.0, "sensitivity": 1.0, "specificity": 1.0, "precision": 1.0,
        "nsd": 1.0, "hd": 0.0, "hd95": 0.0, "assd": 0.0,
    }  # fmt: skip
    assert evaluate_case(pred, gt, labels=2) == {2: res[2]}
    # label 0 (background) can be asked for explicitly
    assert 0 in evaluate_case(pred, gt, labels=[0])


def test_evaluate_case_inputs():
    gt, pred = _label_maps(shape=(12, 13))
    ref = evaluate_case(pred, gt, spacing=(0.8, 1.2))
    assert evaluate_case(torch.from_numpy(pred), torch.from_numpy(gt), spacing=(0.8, 1.2)) == ref
    assert evaluate_case(pred.astype(np.float64), gt.astype(np.uint8), spacing=(0.8, 1.2)) == ref
    # negative labels take the slow path and give the same answer for the other labels
    neg = gt.copy()
    neg[0, 0] = -3
    res = evaluate_case(pred, neg, spacing=(0.8, 1.2))
    assert -3 in res and res[4] == evaluate_case(pred, np.where(neg == -3, 0, neg), spacing=(0.8, 1.2))[4]


# --------------------------------------------------------------------------------------------
# errors name the argument, the expected and the actual value
# --------------------------------------------------------------------------------------------


def test_error_messages():
    a2, b2 = np.zeros((4, 5), bool), np.zeros((4, 5), bool)
    with pytest.raises(
        ValueError,
        match=r"gt and pred must have the same shape; got gt.shape=\(4, 5\) and pred.shape=\(5, 4\)",
    ):
        surface_distances(a2, b2.T)
    with pytest.raises(ValueError, match=r"gt must be a 2D or 3D mask .*got ndim=1"):
        surface_distances(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match=r"gt must be a 2D or 3D mask .*got ndim=4 \(shape \(1, 2, 3, 4\)\)"):
        hausdorff_distance(np.zeros((1, 2, 3, 4)), np.zeros((1, 2, 3, 4)))
    with pytest.raises(
        ValueError, match=r"spacing: expected 2 values \(one per spatial axis\), got 3"
    ):
        surface_distances(a2, b2, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=r"spacing: expected finite positive values.*\[1.0, 0.0\]"):
        surface_distances(a2, b2, spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match=r"spacing: expected finite positive values.*-1.0"):
        surface_distances(a2, b2, spacing=-1.0)
    with pytest.raises(TypeError, match=r"spacing: expected None, a number or a sequence of 2 numbers"):
        surface_distances(a2, b2, spacing="1mm")
    with pytest.raises(ValueError, match=r"tolerance must be a non-negative number of mm; got -0.5"):
        normalized_surface_dice(a2, b2, -0.5)
    with pytest.raises(ValueError, match=r"tolerance must be a non-negative number of mm; got nan"):
        surface_distances(a2, b2).normalized_surface_dice(float("nan"))
    with pytest.raises(ValueError, match=r"percentile must be None or in \[0, 100\]; got 101"):
        hausdorff_distance(a2, b2, percentile=101)
    with pytest.raises(ValueError, match=r"method must be one of \('surface', 'voxel'\); got 'edges'"):
        surface_distances(a2, b2, method="edges")
    with pytest.raises(
        ValueError, match=r"pred must be a binary mask with values in \{0, 1\}; got values \[3\]"
    ):
        surface_distances(a2, np.full((4, 5), 3))
    with pytest.raises(ValueError, match=r"gt_labels and pred_labels must have the same shape"):
        evaluate_case(np.zeros((4, 5), int), np.zeros((4, 6), int))
    with pytest.raises(
        ValueError,
        match=r"pred_labels must be a label map with integer values; got non-integer values \[0.5\]",
    ):
        evaluate_case(np.full((4, 5), 0.5), np.zeros((4, 5)))
    with pytest.raises(TypeError, match=r"labels must contain integers; got 1.5"):
        evaluate_case(np.zeros((4, 5), int), np.zeros((4, 5), int), labels=[1.5])
    with pytest.raises(ValueError, match=r"tolerance must be a non-negative"):
        evaluate_case(np.zeros((4, 5), int), np.zeros((4, 5), int), tolerance=-1)


def test_workers_argument():
    gt, pred, spacing = random_case(1)
    assert surface_distances(gt, pred, spacing, workers=1).hausdorff(95) == surface_distances(
        gt, pred, spacing
    ).hausdorff(95)
    with pytest.raises(ValueError, match=r"workers must be a positive int or -1 \(all cores\); got 0"):
        surface_distances(gt, pred, spacing, workers=0)


@pytest.mark.parametrize("module", ["overlap", "surface", "case"])
def test_docstring_examples(module):
    """The Examples sections are exact and deterministic: run them (CI does not collect doctests)."""
    import doctest
    import importlib

    mod = importlib.import_module(f"seglosses.metrics.{module}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
