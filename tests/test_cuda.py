"""The GPU path: losses, distance maps and the bench on CUDA (skipped without a GPU).

The compiled kernels are CPU-only; on CUDA every loss falls back to PyTorch. Checked here: every
registered loss, in every mode it supports, gives on ``.cuda()`` tensors the value and gradient
it gives on the CPU (float32, loose tolerance: different reduction orders); distance maps of a
CUDA target come back on its device; ``seglosses bench --device cuda`` trains and stores a tiny
3-D grid; ``--executor ray`` reserves a GPU per run. These tests have not been run where this
file was written (no GPU there).
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import torch

from seglosses import build_loss, list_losses, loss_info

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CASES = [(n, m) for n in list_losses() for m in loss_info(n).modes]


def _inputs(mode, spatial=(6, 7, 5), n=2, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    if mode == "binary":
        c = 1
    logits = torch.randn((n, c) + spatial, generator=g) * 2
    if mode == "multiclass":
        target = torch.randint(0, c, (n,) + spatial, generator=g)
        target.view(n, -1)[0, :c] = torch.arange(c)
    elif mode == "binary":
        target = (torch.rand((n,) + spatial, generator=g) > 0.6).long()
        target.view(n, -1)[:, 0] = 1
    else:
        target = (torch.rand((n, c) + spatial, generator=g) > 0.6).float()
    return logits, target


@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_loss_on_cuda_equals_cpu(name, mode):
    logits, target = _inputs(mode)
    values, grads = [], []
    for device in ("cpu", "cuda"):
        x = logits.to(device).requires_grad_(True)
        value = build_loss(name, mode=mode)(x, target.to(device))
        assert value.device.type == device
        value.backward()
        values.append(value.detach().cpu())
        grads.append(x.grad.cpu())
    torch.testing.assert_close(values[1], values[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("kind", ["signed", "unsigned", "penalty", "boundary_distance"])
def test_distance_maps_of_a_cuda_target_stay_on_its_device(kind):
    from seglosses.distance import distance_map

    target = torch.zeros(1, 12, 10, dtype=torch.long)
    target[0, 3:8, 2:6] = 1
    cpu = distance_map(kind, target, num_classes=2)
    gpu = distance_map(kind, target.cuda(), num_classes=2)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)


def _bench(tmp_path, *extra):
    from seglosses.cli import main

    out = tmp_path / "out"
    grid = ["--tasks", "liver", "--losses", "dice_ce,iou", "--iterations", "6", "--epoch-length", "3",
            "--batch-size", "2", "--image-size", "32", "--patch-size", "32", "--cases", "6",
            "--spatial-dims", "3", "--device", "cuda", "--quiet", "--no-report"]  # fmt: skip
    assert main(["bench", "--out", str(out)] + grid + list(extra)) == 0
    con = sqlite3.connect(str(out / "results.sqlite"))
    try:
        runs = con.execute("SELECT loss, status, reason FROM runs ORDER BY loss").fetchall()
        dsc = np.array([r[0] for r in con.execute("SELECT dsc FROM case_metrics")], dtype=float)
    finally:
        con.close()
    assert [(r[0], r[1]) for r in runs] == [("dice_ce", "finished"), ("iou", "finished")], runs
    assert dsc.size and np.isfinite(dsc).all()


def test_bench_on_cuda_3d(tmp_path):
    _bench(tmp_path, "--workers", "1")


def test_bench_on_cuda_with_ray_shares_a_gpu(tmp_path):
    from conftest import require

    require("ray")
    _bench(tmp_path, "--executor", "ray", "--workers", "2", "--gpus-per-run", "0.5")
