"""The planner (:mod:`seglosses.bench.plan`): budget parsing, cost arithmetic, sacrifice order, memory.

Most tests replace the timing probe by a deterministic cost model (``fake_probe``), so they check
the planner's arithmetic and decisions, never the speed of this machine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from seglosses.bench import plan as P
from seglosses.bench.synthetic import make_task


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1.5h", 5400), ("10min", 600), ("45", 45), (" 2m 30s ", 150)],
)
def test_parse_budget(text, seconds):
    assert P.parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-5m", "0", "10x", "m", "h30"])
def test_parse_budget_errors_name_the_flag(text):
    with pytest.raises(ValueError, match="--budget: expected a positive duration"):
        P.parse_budget(text)


def test_run_and_grid_arithmetic():
    # 100 iterations of 0.1 s, 4 epochs x 2 validation cases x 1 s, 4 test cases x (1 + 0.5) s
    assert P.run_seconds(0.1, 1.0, 0.5, 100, 25, n_val=2, n_test=4) == pytest.approx(10 + 8 + 6)
    assert P.run_seconds(0.1, 1.0, 0.5, 100, 25, n_val=2, n_test=4, validate_every_epoch=False) == pytest.approx(18)
    assert P.grid_seconds(24.0, 12, 2) == 144.0
    assert P.grid_seconds(24.0, 13, 2) == 168.0
    assert P.grid_seconds(24.0, 1, 8) == 24.0


@pytest.mark.parametrize("budget", [60.0, 100.0, 333.0, 1000.0])
@pytest.mark.parametrize("n_val, n_test", [(0, 0), (2, 4), (5, 9)])
def test_iterations_fill_the_budget_and_not_more(budget, n_val, n_test):
    kw = dict(n_runs=10, workers=2, epoch_length=25, n_val=n_val, n_test=n_test)
    it = P.iterations_for_budget(budget, 0.05, 0.2, 0.1, **kw)
    rounds = 5
    spent = P.grid_seconds(P.run_seconds(0.05, 0.2, 0.1, it, 25, n_val, n_test), 10, 2)
    assert spent <= budget
    assert it % 25 == 0 or it < 25
    # one more epoch would not fit
    more = P.run_seconds(0.05, 0.2, 0.1, it + 25, 25, n_val, n_test) * rounds
    assert more > budget


def test_sliding_windows():
    assert P.sliding_windows((64, 64), (64, 64)) == 1
    assert P.sliding_windows((65, 64), (64, 64)) == 2
    assert P.sliding_windows((128, 128, 128), (64, 64, 64), overlap=0.5) == 27


# ---------------------------------------------------------------------------------------------
# the planner with a deterministic cost model
# ---------------------------------------------------------------------------------------------

STEP_PER_VOXEL = 2e-7  # seconds per (sample x voxel) of a training step
MEM_PER_VOXEL = 400.0  # bytes per (sample x voxel)
CALLS = []


def fake_probe(cases, *, train_dims, patch, batch, **kw):
    CALLS.append((train_dims, tuple(patch), batch))
    vox = float(np.prod(patch))
    return P.Probe(
        train_dims=train_dims,
        patch=tuple(patch),
        batch=batch,
        step=STEP_PER_VOXEL * batch * vox * (30 if train_dims == 3 else 1),
        window=1e-7 * vox,
        metrics=0.01,
        peak_bytes=1e6 + MEM_PER_VOXEL * batch * vox,
        fixed_bytes=1e6,
        memory_source="fake",
        steps=3,
    )


BIG = (1e12, "test limit")


@pytest.fixture(scope="module")
def liver2d():
    return make_task("liver", n_cases=20, spatial_dims=2, size=32, seed=0)


@pytest.fixture(scope="module")
def liver3d():
    return make_task("liver", n_cases=6, spatial_dims=3, size=32, seed=0)


def settings(**kw):
    base = dict(n_losses=4, patch_size=32, batch_size=8, iterations=300, epoch_length=25, workers=2)
    base.update(kw)
    return P.PlanSettings(**base)


def test_without_budget_the_configuration_is_kept(liver2d):
    plan = P.make_plan(liver2d, settings(), probe_fn=fake_probe, limit=BIG)
    assert (plan.train_dims, plan.patch, plan.batch, plan.iterations, plan.folds) == (2, (32, 32), 8, 300, 1)
    assert plan.n_runs == 4
    n_val, n_test = 3, 4  # 20 cases: 4 test, 16 train of which 3 validate
    step = STEP_PER_VOXEL * 8 * 32 * 32
    per_run = P.run_seconds(step, 1e-7 * 32 * 32, 0.01, 300, 25, n_val, n_test)
    assert plan.run_seconds == pytest.approx(per_run)
    assert plan.eta_seconds == pytest.approx(2 * per_run)  # 4 runs on 2 workers
    text = "\n".join(plan.lines())
    assert "single split" in text and "ETA" in text and "20 cases" in text


def test_budget_fills_iterations_with_five_folds(liver2d):
    plan = P.make_plan(liver2d, settings(budget=600.0), probe_fn=fake_probe, limit=BIG)
    assert plan.folds == 5 and plan.n_runs == 20 and plan.run_folds == (0, 1, 2, 3, 4)
    assert plan.iterations >= P.ITERATION_FLOOR
    assert plan.eta_seconds <= 600 * (1 - P.BUDGET_RESERVE)
    assert "fills the budget" in plan.choice("iterations").reason
    # iterations are capped at ITERATION_CAP_FACTOR x the configured number
    rich = P.make_plan(liver2d, settings(budget=1e7), probe_fn=fake_probe, limit=BIG)
    assert rich.iterations == P.ITERATION_CAP_FACTOR * 300


def test_sacrifice_order_on_3d_data(liver3d):
    """A short budget on 3-D data: first 2-D training, then patch, batch, folds -- and the plan says so."""
    plans = {}
    for budget in (1e6, 3000.0, 60.0, 25.0):
        plans[budget] = P.make_plan(liver3d, settings(patch_size=None, budget=budget), probe_fn=fake_probe, limit=BIG)
    assert plans[1e6].train_dims == 3 and plans[1e6].folds == 5
    short = plans[60.0]
    assert short.train_dims == 2
    assert "2-D training" in short.choice("network").reason
    tiny = plans[25.0]
    assert tiny.train_dims == 2
    # the later sacrifices only come after the earlier ones are exhausted
    if tiny.folds < 5:
        assert tiny.batch == P.BATCH_FLOOR and max(tiny.patch) == P.PATCH_FLOOR
    if tiny.batch < 8:
        assert max(tiny.patch) == P.PATCH_FLOOR


def test_explicit_flags_win(liver3d):
    plan = P.make_plan(
        liver3d,
        settings(patch_size=32, budget=20.0, train_dims=3, folds=3, explicit=frozenset({"train_dims", "patch_size", "batch_size"})),
        probe_fn=fake_probe,
        limit=BIG,
    )
    assert plan.train_dims == 3 and plan.patch == (32, 32, 32) and plan.batch == 8 and plan.folds == 3
    assert plan.warnings  # the budget cannot be met, and the plan says so


def test_memory_caps_patch_then_keeps_batch_at_least_two(liver3d):
    # allow 1 MB + 400 B x 2 x 16^3 voxels: batch drops to 2, then the patch shrinks to fit
    limit = (1e6 + MEM_PER_VOXEL * 2 * 16**3 + 1, "test limit")
    plan = P.make_plan(liver3d, settings(patch_size=None), probe_fn=fake_probe, limit=limit)
    assert plan.batch == P.BATCH_FLOOR
    assert plan.memory_bytes <= limit[0]
    assert np.prod(plan.patch) <= 16**3
    assert "memory" in plan.choice("patch").reason


def test_run_folds_and_seeds_count_runs(liver2d):
    plan = P.make_plan(liver2d, settings(folds=5, run_folds=(0, 3), seeds=(0, 1, 2), n_lrs=2), probe_fn=fake_probe, limit=BIG)
    assert plan.n_runs == 4 * 2 * 2 * 3
    with pytest.raises(ValueError, match="--fold: expected fold numbers in \\[0, 4\\]"):
        P.make_plan(liver2d, settings(folds=5, run_folds=(5,)), probe_fn=fake_probe, limit=BIG)
    with pytest.raises(ValueError, match="--folds: expected an integer in \\[1, 20\\]"):
        P.make_plan(liver2d, settings(folds=21), probe_fn=fake_probe, limit=BIG)


def test_confirmation_rule():
    assert P.needs_confirmation(3601, "cpu") and not P.needs_confirmation(3599, "cpu")
    assert not P.needs_confirmation(10 * 3600, "cuda")


def test_fingerprint(liver2d):
    fp = P.fingerprint(liver2d)
    assert fp.n_cases == 20 and fp.median_shape == (32, 32) and fp.median_spacing == (1.0, 1.0)
    counts = liver2d.class_voxel_counts()
    assert fp.class_fraction["liver"] == pytest.approx(counts[1] / counts.sum())
    assert 0 < fp.class_presence["liver"] <= 1
    assert math.isfinite(fp.intensity[0]["std"])
    assert P.fingerprint(liver2d) == fp  # deterministic


def test_real_probe_on_a_tiny_network(liver3d):
    """The real probe runs a few steps and reports positive times and memory (no timing asserted)."""
    cases = liver3d.training_cases()
    pr = P.probe(cases, train_dims=3, patch=(16, 16, 16), batch=2, in_channels=1, num_classes=2, steps=2, metric_case=liver3d.cases[0])
    assert pr.step > 0 and pr.window > 0 and pr.metrics >= 0
    assert pr.peak_bytes > pr.fixed_bytes > 0
    big = pr.scaled((32, 32, 32), 2)
    assert big.peak_bytes - big.fixed_bytes == pytest.approx(8 * (pr.peak_bytes - pr.fixed_bytes))
