"""The trainer: stages (Ma et al. 3.2), set_epoch every epoch, NaN detection, output heads, model sizes."""

from __future__ import annotations

import pytest
import torch

from seglosses.bench.model import build_model, count_parameters, size_divisor
from seglosses.bench.presets import LossConfig
from seglosses.bench.synthetic import make_task
from seglosses.bench.train import NonFiniteLoss, TrainConfig, loss_stages, output_channels, train_run


@pytest.fixture(scope="module")
def tiny():
    return make_task("liver", n_cases=4, size=32)


def _cfg(**kw):
    base = dict(iterations=8, epoch_length=2, batch_size=2, patch_size=(32, 32))
    base.update(kw)
    return TrainConfig(**base)


def test_two_stage_losses_follow_training_stages(tiny):
    stages = loss_stages(LossConfig("lovasz", "lovasz"))
    assert [(c.spec, f) for c, f in stages] == [("ce", 0.5), ("lovasz", 0.5)]
    assert [c.spec for c, _ in loss_stages(LossConfig("dice_bd", "dice_bd"))] == ["dice", "dice_bd"]
    assert [c.spec for c, _ in loss_stages(LossConfig("x", "0.5*dice+ce", {}))] == ["0.5*dice+ce"]
    res = train_run(
        tiny.cases[:3],
        tiny.cases[3:],
        LossConfig("dice_bd", "dice_bd"),
        _cfg(),
        num_classes=2,
        in_channels=1,
        train_dims=2,
    )
    assert [s["spec"] for s in res.stages] == ["dice", "dice_bd"] and [
        s["iterations"] for s in res.stages
    ] == [4, 4]
    assert [(p["stage"], p["epoch"]) for p in res.curves] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert res.iterations_done == 8 and 0 <= res.val_dice <= 1


class _Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.epochs = []
        self.ce = torch.nn.CrossEntropyLoss()

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def forward(self, logits, target):
        return self.ce(logits, target)


def test_set_epoch_every_epoch_and_plateau(tiny, monkeypatch):
    rec = _Recorder()
    monkeypatch.setattr(LossConfig, "build", lambda self: rec)
    res = train_run(
        tiny.cases[:3],
        [],
        LossConfig("rec", "ce"),
        _cfg(iterations=7, epoch_length=2),
        num_classes=2,
        in_channels=1,
        train_dims=2,
    )
    assert rec.epochs == [0, 1, 2, 3]  # 7 iterations = 3 full epochs + 1 short one
    assert [p["iteration"] for p in res.curves] == [2, 4, 6, 7]
    assert all(p["val_dice"] is None for p in res.curves) and res.val_dice is None
    assert all(p["lr"] == pytest.approx(3e-3) for p in res.curves)


def test_nan_loss_raises_with_iteration(tiny, monkeypatch):
    class NanAt3(torch.nn.Module):
        calls = 0

        def forward(self, logits, target):
            NanAt3.calls += 1
            return logits.mean() * (float("inf") if NanAt3.calls == 3 else 1.0)

    monkeypatch.setattr(LossConfig, "build", lambda self: NanAt3())
    with pytest.raises(NonFiniteLoss, match="loss became inf at iteration 3") as exc:
        train_run(
            tiny.cases[:3], [], LossConfig("bad", "ce"), _cfg(), num_classes=2, in_channels=1, train_dims=2
        )
    assert exc.value.iterations_done == 2 and len(exc.value.curves) == 1


def test_output_channels_and_models():
    assert output_channels([(LossConfig("dice", "dice"), 1.0)], 9) == 9
    assert output_channels([(LossConfig("weighted_bce", "weighted_bce"), 1.0)], 2) == 1
    with pytest.raises(ValueError, match="weighted_bce"):
        output_channels([(LossConfig("weighted_bce", "weighted_bce"), 1.0)], 3)
    for arch in ("dynunet", "basicunet"):
        for dims in (2, 3):
            m = build_model(1, 3, dims, "tiny", arch)
            d = size_divisor("tiny", arch)
            x = torch.zeros((1, 1) + (2 * d,) * dims)  # instance norm needs > 1 voxel at the bottom
            assert m(x).shape == (1, 3) + (2 * d,) * dims
    assert count_parameters(build_model(1, 2, 2, "tiny")) < count_parameters(build_model(1, 2, 2, "small"))
    with pytest.raises(ValueError, match="model size"):
        build_model(1, 2, 2, "huge")


def test_deep_supervision_heads_weights_and_training(tiny, monkeypatch):
    from seglosses.bench.model import deep_supervision_heads

    assert [deep_supervision_heads(s) for s in ("tiny", "small", "nnunet")] == [2, 3, 4]
    m = build_model(1, 3, 2, "small", deep_supervision=True)
    x = torch.zeros(1, 1, 32, 32)
    assert m(x).shape == (1, 4, 3, 32, 32)  # training mode: full resolution + 3 heads, upsampled
    m.eval()
    assert m(x).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="deep_supervision: needs arch 'dynunet'"):
        build_model(1, 3, 2, "tiny", "basicunet", deep_supervision=True)
    # training: the loss is called once per output of non-zero weight (tiny: 3 outputs, weights 2/3, 1/3, 0)
    calls = []
    rec = _Recorder()
    orig = rec.forward

    def forward(logits, target):
        calls.append(tuple(logits.shape))
        return orig(logits, target)

    rec.forward = forward
    monkeypatch.setattr(LossConfig, "build", lambda self: rec)
    res = train_run(
        tiny.cases[:3], [], LossConfig("ce", "ce"), _cfg(iterations=2, deep_supervision=True),
        num_classes=2, in_channels=1, train_dims=2,
    )
    assert res.iterations_done == 2 and calls == [(2, 2, 32, 32)] * 4
    assert "deep_supervision" not in _cfg().to_dict() and _cfg(deep_supervision=True).to_dict()["deep_supervision"]
