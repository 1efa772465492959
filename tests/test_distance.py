"""The distance engine and the distance maps: scipy as the reference, edge cases, both backends,
the dataset-side precompute transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import require
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from _inputs import blob_masks

from seglosses import distance
from seglosses.distance import (
    boundary_distance_map,
    distance_transform,
    penalty_map,
    resolve_backend,
    signed_distance_map,
    unsigned_distance_map,
)
from seglosses.transforms import PrecomputeDistanceMaps

BACKENDS = ["edt", "scipy"]


@pytest.fixture(autouse=True)
def _no_backend_env(monkeypatch):
    monkeypatch.delenv(distance.BACKEND_ENV, raising=False)


def _scipy_edt(mask, spacing=None):
    ndi = require("scipy.ndimage")
    return ndi.distance_transform_edt(mask, sampling=spacing)


# ----------------------------------------------------------------------------- engine vs scipy

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "shape, spacing",
    [((23,), (0.7,)), ((19, 25), (1.0, 2.5)), ((17, 13), None), ((11, 14, 9), (0.8, 1.0, 3.0)), ((12, 10, 8), (2.0, 0.5, 1.0))],
)
def test_distance_transform_equals_scipy_anisotropic(backend, shape, spacing):
    for seed in range(3):
        mask = blob_masks(shape, seed)
        ours = distance_transform(mask, spacing=spacing, backend=backend)
        assert ours.dtype == np.float32 and ours.shape == mask.shape
        np.testing.assert_allclose(ours, _scipy_edt(mask, spacing), rtol=1e-6, atol=1e-5)
        inverse = distance_transform(~mask, spacing=spacing, backend=backend)
        np.testing.assert_allclose(inverse, _scipy_edt(~mask, spacing), rtol=1e-6, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(
    mask=hnp.arrays(np.bool_, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=7)),
    data=st.data(),
)
def test_backends_agree_property(mask, data):
    spacing = tuple(data.draw(st.floats(0.25, 4.0)) for _ in range(mask.ndim))
    a = distance_transform(mask, spacing, backend="edt")
    b = distance_transform(mask, spacing, backend="scipy")
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-5)
    if mask.any() and not mask.all():
        np.testing.assert_allclose(a, _scipy_edt(mask, spacing), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_edge_cases(backend):
    shape, spacing = (6, 7, 5), (1.0, 2.0, 0.5)
    empty = np.zeros(shape, bool)
    np.testing.assert_array_equal(distance_transform(empty, spacing, backend), np.zeros(shape, np.float32))
    full = np.ones(shape, bool)  # no background: the distance to an empty set is +inf
    assert np.isposinf(distance_transform(full, spacing, backend)).all()
    single = np.zeros(shape, bool)
    single[2, 3, 1] = True  # one foreground voxel: its nearest background is 0.5 away (last axis)
    out = distance_transform(single, spacing, backend)
    assert out[2, 3, 1] == pytest.approx(0.5) and out.sum() == pytest.approx(0.5)
    hole = ~single  # one background voxel: distance to it
    out = distance_transform(hole, spacing, backend)
    idx = np.indices(shape).astype(float)
    expected = np.sqrt(sum(((idx[a] - c) * s) ** 2 for a, (c, s) in enumerate(zip((2, 3, 1), spacing))))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    border = np.zeros((5, 9), bool)
    border[:, :4] = True  # touches three image borders: the border is not a boundary
    out = distance_transform(border, None, backend)
    np.testing.assert_allclose(out, _scipy_edt(border), atol=1e-6)
    np.testing.assert_allclose(out[0], [4, 3, 2, 1, 0, 0, 0, 0, 0])


def test_torch_in_torch_out_and_numpy_in_numpy_out():
    mask = torch.from_numpy(blob_masks((9, 8), 1))
    out = distance_transform(mask)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.device == mask.device
    np.testing.assert_allclose(out.numpy(), _scipy_edt(mask.numpy()), rtol=1e-6, atol=1e-5)
    out_f = distance_transform(mask.float().requires_grad_(True))  # float masks: nonzero is foreground
    torch.testing.assert_close(out_f, out)
    assert isinstance(distance_transform(mask.numpy()), np.ndarray)


def test_backend_selection_argument_and_environment(monkeypatch):
    assert resolve_backend("scipy") == "scipy"
    assert resolve_backend() == "edt"  # installed
    monkeypatch.setenv(distance.BACKEND_ENV, "scipy")
    assert resolve_backend() == "scipy"
    assert resolve_backend("edt") == "edt"  # the argument wins
    monkeypatch.setenv(distance.BACKEND_ENV, "fast")
    with pytest.raises(ValueError, match=r"SEGLOSSES_DISTANCE_BACKEND: expected one of \['edt', 'scipy'\], got 'fast'"):
        resolve_backend()
    with pytest.raises(ValueError, match="backend: expected one of"):
        distance_transform(np.ones(3), backend="gpu")


def test_environment_backend_is_used_and_agrees(monkeypatch):
    target = np.stack([np.argmax(np.stack([blob_masks((10, 12), s) for s in range(3)]), 0) for _ in range(2)])
    ref = signed_distance_map(target, 3, (1.0, 1.5))
    calls = []
    real = distance._edt_fg

    def spy(mask, spacing, backend):
        calls.append(backend)
        return real(mask, spacing, backend)

    monkeypatch.setattr(distance, "_edt_fg", spy)
    monkeypatch.setenv(distance.BACKEND_ENV, "scipy")
    out = signed_distance_map(target, 3, (1.0, 1.5))
    assert calls and set(calls) == {"scipy"}
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-5)


def test_input_errors():
    with pytest.raises(ValueError, match=r"spacing: expected 2 values \(one per spatial axis\), got 3"):
        distance_transform(np.ones((3, 3)), spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="spacing: expected finite positive values"):
        distance_transform(np.ones((3, 3)), spacing=(1, 0))
    with pytest.raises(ValueError, match=r"mask: expected 1 to 3 dimensions, got shape \(2, 2, 2, 2\)"):
        distance_transform(np.ones((2, 2, 2, 2)))
    with pytest.raises(TypeError, match="mask: expected a numpy array or a torch tensor"):
        distance_transform([0, 1])
    with pytest.raises(ValueError, match=r"target: expected label values in \[0, 3\).*got value 5"):
        signed_distance_map(np.array([[0, 5, 1]]), num_classes=3)
    with pytest.raises(ValueError, match=r"target: expected 3 channels \(num_classes\)"):
        signed_distance_map(np.zeros((1, 2, 4), np.float32), num_classes=3)


# ----------------------------------------------------------------------------- maps

def _kervadec_one_hot2dist(seg: np.ndarray, spacing=None) -> np.ndarray:
    """Kervadec et al.'s ``one_hot2dist`` (LIVIAETS/boundary-loss, utils.py), written with scipy."""
    res = np.zeros(seg.shape, dtype=np.float64)
    for k in range(len(seg)):
        posmask = seg[k].astype(bool)
        if posmask.any() and not posmask.all():  # full masks: scipy's values are arbitrary; ours 0
            negmask = ~posmask
            res[k] = _scipy_edt(negmask, spacing) * negmask - (_scipy_edt(posmask, spacing) - 1) * posmask
    return res


def _label_batch(shape, n=2, c=4, seed=0):
    rng = np.random.default_rng(seed)
    ndi = require("scipy.ndimage")
    out = []
    for i in range(n):
        scores = np.stack([ndi.uniform_filter(rng.random(shape), size=3) for _ in range(c)])
        out.append(np.argmax(scores, 0))
    lab = np.stack(out)
    lab[lab == c - 1] = 0  # make the last class absent
    return lab


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape, spacing", [((14, 17), (1.0, 2.0)), ((8, 9, 10), (2.5, 1.0, 0.5)), ((20,), None)])
def test_signed_distance_map_equals_kervadec(backend, shape, spacing):
    lab = _label_batch(shape)
    ours = signed_distance_map(lab, 4, spacing, backend=backend)
    assert ours.shape == (2, 4) + shape and ours.dtype == np.float32
    for n in range(2):
        onehot = np.stack([lab[n] == c for c in range(4)])
        np.testing.assert_allclose(ours[n], _kervadec_one_hot2dist(onehot, spacing), rtol=1e-5, atol=1e-5)
    assert (ours[:, 3] == 0).all()  # absent class: all zeros


def test_signed_map_label_map_onehot_torch_and_ignore_index():
    lab = _label_batch((10, 11), c=3)
    onehot = np.stack([(lab == c) for c in range(3)], 1).astype(np.float32)
    a = signed_distance_map(lab, 3)
    np.testing.assert_array_equal(signed_distance_map(onehot), a)
    np.testing.assert_array_equal(signed_distance_map(lab[:, None], 3), a)  # (N, 1, *spatial)
    t = signed_distance_map(torch.from_numpy(lab), 3)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), a)
    ignored = lab.copy()
    ignored[:, :2] = 255  # ignored voxels count as background (label 0)
    zeroed = lab.copy()
    zeroed[:, :2] = 0
    np.testing.assert_array_equal(signed_distance_map(ignored, 3, ignore_index=255), signed_distance_map(zeroed, 3))
    # binary: num_classes=1 gives the foreground channel only
    fg = (lab > 0).astype(np.int64)
    np.testing.assert_array_equal(signed_distance_map(fg, 1)[:, 0], signed_distance_map(fg, 2)[:, 1])


def test_full_and_absent_classes_give_zero_maps_never_nan():
    lab = np.zeros((2, 6, 7), np.int64)
    lab[1] = 1  # sample 0: only class 0 (full) ; sample 1: only class 1 (full)
    for fn in (signed_distance_map, unsigned_distance_map, penalty_map, boundary_distance_map):
        out = fn(lab, 2)
        assert np.isfinite(out).all() and (out == 0).all(), fn.__name__


def test_unsigned_map_equals_monai_distance_field():
    monai_loss = require("monai.losses")
    lab = _label_batch((12, 13, 7), c=3)
    ours = unsigned_distance_map(lab, 3)
    onehot = torch.from_numpy(np.stack([(lab == c) for c in range(3)], 1).astype(np.float32))
    field = monai_loss.HausdorffDTLoss()
    for c in range(3):
        ref = field.distance_field(onehot[:, [c]])
        np.testing.assert_allclose(ours[:, [c]], ref.numpy(), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_penalty_map_formula_and_properties(backend):
    shape, spacing = (16, 13), (1.0, 1.5)
    lab = _label_batch(shape, c=3)
    pen = penalty_map(lab, 3, spacing, backend=backend)
    assert np.isfinite(pen).all() and pen.min() >= 0 and pen.max() <= 1
    for n in range(2):
        for c in range(3):
            g = lab[n] == c
            if not g.any() or g.all():
                assert (pen[n, c] == 0).all()
                continue
            expected = np.zeros(shape)
            for side, d in ((g, _scipy_edt(g, spacing)), (~g, _scipy_edt(~g, spacing))):
                v = d[side]
                expected[side] = 1 - (v - v.min()) / (v.max() - v.min()) if v.max() > v.min() else 1.0
            np.testing.assert_allclose(pen[n, c], expected, rtol=1e-5, atol=1e-5)


def test_penalty_map_highest_at_boundary_and_decreasing():
    line = np.zeros((1, 21), np.int64)
    line[0, 6:15] = 1
    pen = penalty_map(line, 1)[0, 0]
    assert pen[5] == pen[6] == pen[14] == pen[15] == 1.0  # the voxels on either side of the boundary
    assert (np.diff(pen[:6]) > 0).all() and (np.diff(pen[15:]) < 0).all()  # outside: decreasing away
    assert (np.diff(pen[6:11]) < 0).all() and (np.diff(pen[10:15]) > 0).all()  # inside: decreasing inward
    assert pen[0] == 0.0 and pen[10] == 0.0
    thin = np.zeros((1, 7, 7), np.int64)
    thin[0, 3] = 1  # one voxel thick: all boundary
    assert (penalty_map(thin, 1)[0, 0][3] == 1.0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_boundary_distance_map_equals_brute_force(backend):
    ndi = require("scipy.ndimage")
    shape, spacing = (9, 10, 8), (1.0, 2.0, 1.5)
    lab = _label_batch(shape, c=3)
    ours = boundary_distance_map(lab, 3, spacing, backend=backend)
    for n in range(2):
        for c in range(3):
            g = lab[n] == c
            if not g.any() or g.all():
                assert (ours[n, c] == 0).all()
                continue
            inner = g & ~ndi.binary_erosion(g, structure=np.ones((3, 3, 3)), border_value=1)
            np.testing.assert_allclose(ours[n, c], _scipy_edt(~inner, spacing), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fn", [signed_distance_map, unsigned_distance_map, penalty_map, boundary_distance_map])
def test_every_map_agrees_across_backends(fn):
    lab = _label_batch((9, 8, 7), c=3, seed=4)
    np.testing.assert_allclose(
        fn(lab, 3, (1.0, 0.5, 2.0), backend="edt"), fn(lab, 3, (1.0, 0.5, 2.0), backend="scipy"), rtol=1e-5, atol=1e-5
    )


# ----------------------------------------------------------------------------- precompute transform

def test_transform_on_dict_and_pair_matches_the_map_functions():
    lab = _label_batch((10, 12), n=1, c=3)[0]
    image = np.zeros((1, 10, 12), np.float32)
    tf = PrecomputeDistanceMaps("boundary", num_classes=3, spacing=(1.0, 2.0))
    out = tf({"image": image, "label": lab})
    assert set(out) == {"image", "label", "distance_map"}
    np.testing.assert_array_equal(out["distance_map"], signed_distance_map(lab[None], 3, (1.0, 2.0))[0])
    img, lab2, dmap = tf((image, lab[None]))  # (1, *spatial) label, (image, label) pair
    assert img is image and lab2.shape == (1, 10, 12)
    np.testing.assert_array_equal(dmap, out["distance_map"])
    t = tf((torch.from_numpy(image), torch.from_numpy(lab)))[2]
    assert isinstance(t, torch.Tensor) and t.shape == (3, 10, 12)
    # per-case spacing from the sample wins
    tf2 = PrecomputeDistanceMaps("dpce", num_classes=3, spacing_key="spacing", output_key="penalty")
    out2 = tf2({"label": lab, "spacing": (2.0, 0.5)})
    np.testing.assert_array_equal(out2["penalty"], penalty_map(lab[None], 3, (2.0, 0.5))[0])
    for kind, fn in [("hausdorff", unsigned_distance_map), ("shape_aware", boundary_distance_map), ("signed", signed_distance_map)]:
        np.testing.assert_array_equal(PrecomputeDistanceMaps(kind, 3)({"label": lab})["distance_map"], fn(lab[None], 3)[0])


def test_transform_errors():
    with pytest.raises(ValueError, match="kind: expected one of"):
        PrecomputeDistanceMaps("dice", 3)
    with pytest.raises(KeyError, match="label_key"):
        PrecomputeDistanceMaps("boundary", 3)({"seg": np.zeros((4, 4), np.int64)})
    with pytest.raises(TypeError, match="sample: expected a dict"):
        PrecomputeDistanceMaps("boundary", 3)(np.zeros((4, 4)))
