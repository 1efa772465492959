"""seglosses.DeepSupervision: weights, target downsampling, references (MONAI, nnU-Net), errors."""

from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F

import seglosses
from seglosses.losses import deep_supervision as ds_mod
from seglosses.losses.deep_supervision import DeepSupervision, deep_supervision_weights, downsample_target

from conftest import require


def _outputs(n=2, c=3, sizes=((16, 16), (8, 8), (4, 4)), seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn((n, c) + s, generator=g, requires_grad=grad) for s in sizes]


def _labels(n=2, c=3, size=(16, 16), seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, c, (n,) + size, generator=g)


def test_doctests():
    result = doctest.testmod(ds_mod)
    assert result.attempted >= 5 and result.failed == 0


def test_top_level_export():
    assert seglosses.DeepSupervision is DeepSupervision
    assert seglosses.losses.DeepSupervision is DeepSupervision
    assert "DeepSupervision" in seglosses.__all__


# ------------------------------------------------------------------ weights
def test_nnunet_weights_follow_nnunet_trainer_formula():
    # nnUNetTrainer._build_loss: 1/2^i, last set to 0, normalised to sum 1 (written out here)
    for levels in range(2, 7):
        w = [1 / 2**i for i in range(levels)]
        w[-1] = 0
        s = sum(w)
        assert deep_supervision_weights("nnunet", levels) == pytest.approx([x / s for x in w], abs=0)
    assert deep_supervision_weights("nnunet", 1) == [1.0]
    assert deep_supervision_weights("nnunet", 3) == pytest.approx([2 / 3, 1 / 3, 0.0])


def test_exp_and_same_weights():
    assert deep_supervision_weights("exp", 7) == [1, 0.5, 0.25, 0.125, 0.0625, 0.0625, 0.0625]
    assert deep_supervision_weights("same", 3) == [1.0, 1.0, 1.0]
    assert deep_supervision_weights((3, 0, 1), 3) == [3.0, 0.0, 1.0]


# ------------------------------------------------------------------ downsampling
@pytest.mark.parametrize("size,out", [((16, 16), (8, 8)), ((15, 9), (7, 4)), ((12,), (5,)), ((8, 6, 4), (4, 3, 2))])
def test_label_downsampling_equals_nearest_exact_interpolate(size, out):
    lab = torch.randint(0, 5, (2,) + size)
    ref = F.interpolate(lab[:, None].float(), size=out, mode="nearest-exact")[:, 0].long()
    assert torch.equal(downsample_target(lab, out), ref)
    assert torch.equal(downsample_target(lab[:, None], out)[:, 0], ref)  # (N, 1, *spatial) too
    assert downsample_target(lab, out).dtype == lab.dtype


def test_label_downsampling_keeps_large_labels_exact():
    lab = torch.full((1, 4, 4), 2**25 + 1, dtype=torch.long)  # not representable in float32
    assert downsample_target(lab, (2, 2)).unique().tolist() == [2**25 + 1]


def test_soft_target_downsampling_is_average_pooling_and_stays_a_distribution():
    soft = torch.softmax(torch.randn(2, 3, 16, 16), dim=1)
    down = downsample_target(soft, (4, 4))
    assert torch.allclose(down, F.avg_pool2d(soft, 4))
    assert torch.allclose(down.sum(1), torch.ones(2, 4, 4))
    mask = (torch.rand(2, 16, 16) > 0.5).float()  # binary float mask (N, *spatial)
    assert torch.allclose(downsample_target(mask, (8, 8)), F.avg_pool2d(mask[:, None], 2)[:, 0])


# ------------------------------------------------------------------ the weighted sum
def test_weighted_sum_by_hand_with_compound_spec():
    outputs, target = _outputs(), _labels()
    ds = DeepSupervision("dice+ce", weights=[1.0, 0.5, 0.25])
    inner = seglosses.build_loss("dice+ce")
    expected = sum(
        w * inner(o, F.interpolate(target[:, None].float(), size=o.shape[2:], mode="nearest-exact")[:, 0].long())
        for w, o in zip([1.0, 0.5, 0.25], outputs)
    )
    assert torch.allclose(ds(outputs, target), expected)
    assert len(ds.last_levels) == 3


def test_zero_weight_level_is_not_evaluated_and_gets_zero_gradient():
    outputs, target = _outputs(grad=True), _labels()
    ds = DeepSupervision("dice", weights="nnunet")
    value = ds(outputs, target)
    value.backward()
    assert outputs[0].grad is not None and outputs[1].grad is not None
    # kept in the graph (DDP needs every head used) through an exact zero
    assert outputs[2].grad is not None and torch.equal(outputs[2].grad, torch.zeros_like(outputs[2]))
    assert ds.last_levels[2] is None
    w = ds.weights_for(3)
    dice = seglosses.build_loss("dice")
    expected = w[0] * dice(outputs[0], target) + w[1] * dice(outputs[1], downsample_target(target, (8, 8)))
    assert torch.equal(value, expected)  # the value is unchanged


def test_ignore_index_survives_downsampling():
    outputs = _outputs()
    target = _labels()
    target[:, :8, :8] = 255  # ignored top-left quarter, aligned with every level
    ds = DeepSupervision("ce", weights="same", ignore_index=255)
    value = ds(outputs, target)
    assert torch.isfinite(value)
    # equals the per-level loss computed on the nearest-downsampled, still-ignored targets
    ce = seglosses.build_loss("ce", ignore_index=255)
    expected = sum(ce(o, downsample_target(target, o.shape[2:])) for o in outputs)
    assert torch.allclose(value, expected)
    # the ignored voxels do not matter: changing the logits there leaves the loss unchanged
    changed = [o.clone() for o in outputs]
    for o in changed:
        h = o.shape[-1] // 2
        o[..., :h, :h] += 100.0
    assert torch.allclose(ds(changed, target), value)


def test_list_of_targets_used_as_given():
    outputs = _outputs()
    targets = [_labels(size=tuple(o.shape[2:]), seed=i) for i, o in enumerate(outputs)]
    ds = DeepSupervision("ce", weights=[1, 1, 1])
    ce = seglosses.build_loss("ce")
    assert torch.allclose(ds(outputs, targets), sum(ce(o, t) for o, t in zip(outputs, targets)))


def test_single_tensor_output_is_the_plain_loss():
    o, t = _outputs()[0], _labels()
    assert torch.equal(DeepSupervision("dice")(o, t), seglosses.build_loss("dice")(o, t))


def test_3d_and_binary_float_target():
    outputs = _outputs(c=1, sizes=((8, 8, 8), (4, 4, 4)))
    mask = (torch.rand(2, 1, 8, 8, 8) > 0.5).float()
    value = DeepSupervision("dice", weights="same")(outputs, mask)
    dice = seglosses.build_loss("dice")
    assert torch.allclose(value, dice(outputs[0], mask) + dice(outputs[1], F.avg_pool3d(mask, 2)))


def test_set_epoch_reaches_scheduled_compound():
    ds = DeepSupervision("dice_bd")
    ds.set_epoch(3)
    assert ds.loss.weights == [0.97, 0.03]


def test_per_call_inputs_as_lists():
    outputs, target = _outputs(sizes=((8, 8), (4, 4))), _labels(size=(8, 8))
    ds = DeepSupervision("boundary", weights="same")
    dmaps = [torch.randn(o.shape) for o in outputs]
    b = seglosses.build_loss("boundary")
    expected = sum(b(o, downsample_target(target, o.shape[2:]), distance_map=d) for o, d in zip(outputs, dmaps))
    assert torch.allclose(ds(outputs, target, distance_map=dmaps), expected)
    with pytest.raises(ValueError, match="distance_map: with deep supervision expected a list of 2"):
        ds(outputs, target, distance_map=dmaps[0])


def test_float_label_map_is_downsampled_as_labels_not_averaged():
    # MONAI's habit: a float (N, 1, *spatial) label map with C > 1 logits (the contract reads it as labels)
    g = torch.Generator().manual_seed(3)
    outs = [torch.randn((2, 3) + s, generator=g) for s in ((8, 8), (4, 4), (2, 2))]
    y = 2 * torch.randint(0, 2, (2, 1, 8, 8), generator=g)  # labels {0, 2}: averaging gives 0.5, 1, 1.5
    ds = DeepSupervision("dice+ce", weights="exp")
    assert torch.equal(ds(outs, y.float()), ds(outs, y))
    assert torch.equal(ds(outs, y[:, 0].float()), ds(outs, y[:, 0]))  # (N, *spatial) too
    # a random float label map must not be turned into non-integral "labels"
    yr = torch.randint(0, 3, (2, 8, 8), generator=g).float()
    assert torch.equal(ds(outs, yr), ds(outs, yr.long()))
    # a binary float mask (C == 1) is still averaged (soft targets at low resolution)
    mask = (torch.rand(2, 1, 8, 8, generator=g) > 0.5).float()
    bouts = [o[:, :1] for o in outs]
    bce = seglosses.build_loss("ce")
    expected = sum(w * bce(o, downsample_target(mask, o.shape[2:])) for w, o in zip([1, 0.5, 0.25], bouts))
    assert torch.allclose(DeepSupervision("ce", weights="exp")(bouts, mask), expected)
    # ... unless it holds an ignore label (smp's 255): then nearest, so the 255s stay exact
    ignored = mask.clone()
    ignored[:, :, :2] = 255
    ds = DeepSupervision("ce", weights="exp", ignore_index=255)
    assert torch.equal(ds(bouts, ignored), ds(bouts, ignored.long()))


# ------------------------------------------------------------------ references
@pytest.mark.parametrize("mode", ["exp", "same"])
def test_matches_monai_deep_supervision_loss(mode):
    monai_losses = require("monai.losses")
    outputs, target = _outputs(), _labels()
    onehot = F.one_hot(target, 3).movedim(-1, 1).float()
    # MONAI downsamples the (one-hot) target with nearest-exact; give both the same per-voxel loss
    ref = monai_losses.DeepSupervisionLoss(
        monai_losses.DiceLoss(softmax=True, smooth_nr=1e-5, smooth_dr=1e-5), weight_mode=mode
    )
    ours = DeepSupervision("dice", weights=mode)
    # label map in (nearest), so both see the same hard targets at every level
    assert torch.allclose(ours(outputs, target), ref(outputs, onehot), atol=1e-6)
    # explicit weights are used as given by both
    ref_w = monai_losses.DeepSupervisionLoss(monai_losses.DiceLoss(softmax=True, smooth_nr=1e-5, smooth_dr=1e-5), weights=[0.3, 2.0, 1.0])
    assert torch.allclose(DeepSupervision("dice", weights=[0.3, 2.0, 1.0])(outputs, target), ref_w(outputs, onehot), atol=1e-6)


def test_matches_nnunet_wrapper_and_weights():
    require("nnunetv2")
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    outputs, target = _outputs(sizes=((16, 16), (8, 8), (4, 4), (2, 2))), _labels()
    # nnU-Net's data loader downsamples with nearest-exact and hands over a list of targets
    targets = [F.interpolate(target[:, None].float(), size=o.shape[2:], mode="nearest-exact")[:, 0].long() for o in outputs]
    weights = [1 / 2**i for i in range(4)]
    weights[-1] = 0
    weights = [w / sum(weights) for w in weights]
    inner = seglosses.build_loss("dice+ce")
    ref = DeepSupervisionWrapper(inner, weights)(outputs, targets)
    assert torch.allclose(DeepSupervision(inner, weights="nnunet")(outputs, target), ref, atol=1e-6)
    assert torch.allclose(DeepSupervision(inner, weights="nnunet")(outputs, targets), ref, atol=1e-6)


# ------------------------------------------------------------------ errors
def test_errors_name_the_argument():
    outputs, target = _outputs(), _labels()
    with pytest.raises(ValueError, match=r"weights: expected 3 weights \(one per output\), got 2"):
        DeepSupervision("dice", weights=[1, 0.5])(outputs, target)
    with pytest.raises(ValueError, match="weights: expected one of"):
        DeepSupervision("dice", weights="two")
    with pytest.raises(ValueError, match="weights: expected finite non-negative"):
        DeepSupervision("dice", weights=[1, -1])
    with pytest.raises(ValueError, match="weights: expected finite non-negative"):
        DeepSupervision("dice", weights=[0, 0])
    with pytest.raises(ValueError, match=r"target: expected one target per output \(3\), got a list of 2"):
        DeepSupervision("dice", weights="same")(outputs, [target, target])
    with pytest.raises(ValueError, match=r"target: expected spatial shape \(16, 16\)"):
        DeepSupervision("dice")(outputs, target[:, :8])
    with pytest.raises(ValueError, match=r"outputs\[1\]: expected shape"):
        DeepSupervision("dice")([outputs[0], outputs[1][:, :2]], target)
    with pytest.raises(ValueError, match=r"target: expected spatial shape \(4, 4\)"):  # reversed order
        DeepSupervision("dice")(outputs[::-1], target)
    with pytest.raises(TypeError, match="outputs: expected a non-empty list"):
        DeepSupervision("dice")([], target)
    with pytest.raises(ValueError, match="options"):
        DeepSupervision(seglosses.build_loss("dice"), batch=True)
    with pytest.raises(ValueError, match="dice: unknown argument"):
        DeepSupervision("dice", bogus=1)
    with pytest.raises(ValueError, match=r"weight_mode: MONAI's name; use weights='exp'"):
        DeepSupervision("dice", weight_mode="exp")
    with pytest.raises(ValueError, match=r"weights: expected one weight per output \(at least one\), got \[\]"):
        DeepSupervision("dice", weights=[])
    # the wrapped loss's own contract still applies at every level
    with pytest.raises(ValueError, match="target: expected label values"):
        DeepSupervision("dice")(outputs, target + 5)


def test_only_full_resolution_weighted_is_the_plain_loss():
    outputs, target = _outputs(grad=True), _labels()
    value = DeepSupervision("dice+ce", weights=[1, 0, 0])(outputs, target)
    assert torch.equal(value, seglosses.build_loss("dice+ce")(outputs[0], target))
