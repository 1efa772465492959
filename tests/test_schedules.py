"""Training schedules (Ma et al. 2021 sec. 3.2): exact alpha sequences, balancing, two-stage data."""

from __future__ import annotations

import pytest
import torch

from seglosses import build_loss
from seglosses.functional import boundary_loss, dice_loss, hausdorff_loss
from seglosses.losses import CompoundLoss
from seglosses.losses.schedules import (
    FIRST_STAGE_FRACTION,
    TWO_STAGE,
    BoundaryRebalancing,
    HausdorffBalancing,
    training_stages,
)


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.zeros(2, 10, 11, dtype=torch.long)
    target[:, 2:7, 3:8] = 1
    target[1, 6:9, 1:4] = 2
    logits = torch.randn(2, 3, 10, 11, generator=g) + 2 * torch.nn.functional.one_hot(target, 3).movedim(-1, 1)
    return logits, target


# ----------------------------------------------------------------------------- boundary rebalancing

def test_boundary_alpha_sequence_is_exactly_as_specified():
    s = BoundaryRebalancing()
    # alpha = 1 at epoch 0, minus 0.01 per epoch, down to 0.01 (epoch 99), then constant
    expected = [float(f"{(100 - e) / 100:.2f}") for e in range(100)] + [0.01] * 50
    assert [s.alpha(e) for e in range(150)] == expected
    assert s.alpha(0) == 1.0 and s.alpha(1) == 0.99 and s.alpha(3) == 0.97 and s.alpha(99) == 0.01 and s.alpha(1000) == 0.01


def test_dice_bd_weights_follow_the_schedule():
    loss = build_loss("dice_bd")
    assert isinstance(loss.schedule, BoundaryRebalancing)
    assert loss.names == ["dice", "boundary"]
    assert loss.weights == [1.0, 0.0]  # epoch-0 state at construction
    for epoch in range(130):
        loss.set_epoch(epoch)
        alpha = float(f"{max(100 - epoch, 1) / 100:.2f}")
        assert loss.weights == [alpha, float(f"{1 - alpha:.2f}")]
    logits, target = _inputs()
    loss.set_epoch(25)
    torch.testing.assert_close(loss(logits, target), 0.75 * dice_loss(logits, target) + 0.25 * boundary_loss(logits, target))


def test_boundary_schedule_arguments():
    s = BoundaryRebalancing(start=0.5, step=0.1, minimum=0.2)
    assert [s.alpha(e) for e in range(5)] == [0.5, 0.4, 0.3, 0.2, 0.2]
    with pytest.raises(ValueError, match="start, minimum"):
        BoundaryRebalancing(start=0.1, minimum=0.5)
    with pytest.raises(ValueError, match="epoch"):
        s.alpha(-1)
    with pytest.raises(ValueError, match=r"boundary: the schedule expects a term named 'boundary'"):
        build_loss("dice+ce", schedule=BoundaryRebalancing())


# ----------------------------------------------------------------------------- hausdorff balancing

def test_hausdorff_alpha_is_ratio_of_term_means_without_gradient():
    loss = build_loss("dice_hd")
    assert isinstance(loss.schedule, HausdorffBalancing)
    assert loss.weights == [1.0, 1.0]
    batches = [_inputs(s) for s in range(5)]
    loss.set_epoch(0)
    logits0, target0 = batches[0]
    v0 = loss(logits0, target0)  # before any observation: alpha = 1
    d0, h0 = float(dice_loss(logits0, target0)), float(hausdorff_loss(logits0, target0))
    torch.testing.assert_close(v0, torch.tensor(d0 + h0))
    # epoch 0: alpha = the first batch's ratio, then held for the epoch
    assert loss.schedule.alpha == pytest.approx(h0 / d0)
    dice_vals, hd_vals = [d0], [h0]
    for logits, target in batches[1:]:
        x = logits.clone().requires_grad_(True)
        value = loss(x, target)
        d, h = dice_loss(logits, target), hausdorff_loss(logits, target)
        torch.testing.assert_close(value, (h0 / d0) * d + h)
        value.backward()  # alpha is a float: no gradient flows through it
        y = logits.clone().requires_grad_(True)
        ((h0 / d0) * dice_loss(y, target) + hausdorff_loss(y, target)).backward()
        torch.testing.assert_close(x.grad, y.grad)
        dice_vals.append(float(d))
        hd_vals.append(float(h))
    # next epoch: ratio of the means over the previous epoch
    loss.set_epoch(1)
    expected = (sum(hd_vals) / len(hd_vals)) / (sum(dice_vals) / len(dice_vals))
    assert loss.weights == [pytest.approx(expected), 1.0]
    loss(*batches[0])
    assert loss.weights == [pytest.approx(expected), 1.0]  # held within the epoch
    loss.set_epoch(2)
    assert loss.weights[0] == pytest.approx(float(hausdorff_loss(*batches[0])) / float(dice_loss(*batches[0])))


def test_hausdorff_balancing_keeps_alpha_when_dice_mean_is_zero():
    s = HausdorffBalancing()
    comp = CompoundLoss([(1.0, build_loss("dice")), (1.0, build_loss("hausdorff"))], schedule=s)
    s.observe({"dice": torch.tensor(0.0), "hausdorff": torch.tensor(2.0)}, comp)
    assert s.alpha == 1.0 and comp.weights == [1.0, 1.0]
    s.observe({"dice": torch.tensor(0.5), "hausdorff": torch.tensor(2.0)}, comp)
    assert s.alpha == 4.0 and comp.weights == [4.0, 1.0]


def test_schedule_can_be_disabled_or_replaced():
    assert build_loss("dice_bd", schedule=None).schedule is None
    assert build_loss("dice_bd", schedule=None).weights == [1.0, 0.0]
    custom = build_loss("dice+boundary", schedule=BoundaryRebalancing(start=0.5))
    assert custom.weights == [0.5, 0.5]
    assert build_loss("dice+boundary").schedule is None  # only named compounds get a schedule by default


# ----------------------------------------------------------------------------- two-stage training

def test_two_stage_table_and_stages():
    assert TWO_STAGE["lovasz"] == ("ce", "lovasz")
    assert TWO_STAGE["dice_bd"] == ("dice", "dice_bd")
    assert TWO_STAGE["dice_hd"] == ("dice", "dice_hd")
    assert TWO_STAGE["boundary"] == ("dice", "boundary") and TWO_STAGE["hausdorff"] == ("dice", "hausdorff")
    assert training_stages("dice_bd") == [("dice", FIRST_STAGE_FRACTION), ("dice_bd", 1 - FIRST_STAGE_FRACTION)]
    assert training_stages(" lovasz ", first_fraction=0.25) == [("ce", 0.25), ("lovasz", 0.75)]
    assert training_stages("dice+topk") == [("dice+topk", 1.0)]
    for spec in list(TWO_STAGE) + ["ce", "dice_ce"]:
        assert sum(f for _, f in training_stages(spec)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="first_fraction"):
        training_stages("lovasz", first_fraction=1.0)
