"""Topology metrics: clDice of hard masks and Betti numbers / errors (seglosses.metrics.topology)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require

from seglosses.metrics import betti_error, betti_numbers, cldice_score
from seglosses.metrics.topology import _euler_characteristic


def test_betti_numbers_2d_hand_cases():
    ring = np.zeros((9, 9), bool)
    ring[1:8, 1:8] = True
    ring[3:6, 3:6] = False
    assert betti_numbers(ring) == (1, 1)
    two_holes = ring.copy()
    two_holes[4, 1:8] = True  # a bar across the hole splits it
    assert betti_numbers(two_holes) == (1, 2)
    diag = np.zeros((4, 4), bool)
    diag[1, 1] = diag[2, 2] = True  # 8-connected: one component
    assert betti_numbers(diag) == (1, 0)
    assert betti_numbers(np.zeros((5, 5))) == (0, 0)
    open_c = ring.copy()
    open_c[4, 7] = False  # opens the ring... the hole touches the outside only through background
    open_c[3:6, 6:8] = False
    assert betti_numbers(open_c) == (1, 0)


def test_betti_numbers_3d_hand_cases():
    cube = np.zeros((7, 7, 7), bool)
    cube[1:6, 1:6, 1:6] = True
    assert betti_numbers(cube) == (1, 0, 0)
    shell = cube.copy()
    shell[2:5, 2:5, 2:5] = False
    assert betti_numbers(shell) == (1, 0, 1)
    torus = np.zeros((9, 9, 9), bool)
    torus[2:7, 2:7, 2:7] = True
    torus[:, 4, 4] = False  # a tunnel through the cube
    assert betti_numbers(torus) == (1, 1, 0)


def test_euler_characteristic_matches_skimage():
    measure = require("skimage.measure")
    rng = np.random.default_rng(0)
    for _ in range(5):
        m = rng.random((8, 9, 7)) > 0.6
        assert _euler_characteristic(m) == measure.euler_number(m, connectivity=3)


def test_betti_error_counts_a_cut_and_a_false_loop():
    gt = np.zeros((9, 12), bool)
    gt[4, 1:11] = True
    cut = gt.copy()
    cut[4, 5] = False
    assert betti_error(gt, cut) == 1.0 and betti_error(gt, cut, dim=0) == 1.0
    loop = gt.copy()
    loop[2:5, 3] = loop[2:5, 7] = True
    loop[2, 3:8] = True  # closes a loop above the line
    assert betti_error(gt, loop) == 1.0 and betti_error(gt, loop, dim=1) == 1.0
    with pytest.raises(ValueError, match=r"dim: expected an int in \[0, 2\)"):
        betti_error(gt, loop, dim=2)


def test_cldice_score_cut_and_empty_rules():
    require("skimage")
    gt = np.zeros((7, 9), bool)
    gt[3, 1:8] = True
    assert cldice_score(gt, gt) == 1.0
    pred = gt.copy()
    pred[3, 4] = False
    assert abs(cldice_score(gt, pred) - 2 * (6 / 7) / (1 + 6 / 7)) < 1e-12
    empty = np.zeros_like(gt)
    assert cldice_score(empty, empty) == 1.0
    assert cldice_score(gt, empty) == 0.0 and cldice_score(empty, gt) == 0.0
    with pytest.raises(ValueError, match="shape"):
        cldice_score(gt, gt[:, :5])
