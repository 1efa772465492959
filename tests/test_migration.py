"""The migration guide is a test: every row of ``docs/coming_from_monai_smp_kornia.md`` holds.

The table between the ``migration-table`` markers is parsed; each row builds the peer's loss
(MONAI, smp, kornia or PyTorch, left) and the seglosses loss (right), calls both on the same random
inputs of the row's kind and compares. The MONAI argument names of the guide's second table are
checked to raise an error naming the seglosses equivalent.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest
import torch
from conftest import require

import seglosses
import seglosses.functional  # noqa: F401  (rows call seglosses.functional.*)
from _peers import smp_losses

DOC = Path(__file__).resolve().parents[1] / "docs" / "coming_from_monai_smp_kornia.md"
_TABLE = re.search(r"<!-- migration-table:start -->(.*?)<!-- migration-table:end -->", DOC.read_text(), re.S)
ROWS = []
for line in _TABLE.group(1).strip().splitlines()[2:]:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    ROWS.append((cells[0].strip("`"), cells[1].strip("`"), cells[2]))


def _inputs(kind: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if kind in ("mc", "mc-long", "mc-ignore", "mc3d"):
        spatial = (6, 7, 8) if kind == "mc3d" else (8, 8)
        x = torch.randn((2, 4) + spatial, generator=g) * 2
        y = torch.randint(0, 4, (2,) + spatial, generator=g)
        if kind == "mc-ignore":
            y[torch.rand(y.shape, generator=g) < 0.2] = -100
        if kind in ("mc", "mc3d"):
            y = y.unsqueeze(1).float()
        return x, y
    if kind == "bin":
        return torch.randn(2, 1, 8, 8, generator=g) * 2, (torch.rand(2, 1, 8, 8, generator=g) > 0.6).float()
    if kind == "ml":
        return torch.randn(2, 3, 8, 8, generator=g) * 2, (torch.rand(2, 3, 8, 8, generator=g) > 0.6).float()
    if kind == "ml-soft":
        return torch.randn(2, 3, 8, 8, generator=g) * 2, torch.rand(2, 3, 8, 8, generator=g)
    raise ValueError(f"kind: unknown input kind {kind!r}")


def _namespace(theirs: str) -> dict:
    ns = {"torch": torch, "seglosses": seglosses}
    if theirs.startswith("monai."):
        ns["monai"] = types.SimpleNamespace(losses=require("monai.losses"))
    elif theirs.startswith("kornia."):
        ns["kornia"] = require("kornia")
    elif theirs.startswith("smp."):
        ns["smp"] = types.SimpleNamespace(losses=smp_losses())
    return ns


def test_table_is_read():
    assert len(ROWS) >= 45
    assert {t.split(".")[0] for t, _, _ in ROWS} == {"monai", "smp", "kornia", "torch"}


@pytest.mark.parametrize("theirs, ours, kind", ROWS, ids=[f"{t} | {k}" for t, _, k in ROWS])
def test_row(theirs, ours, kind):
    ns = _namespace(theirs)
    ref_loss, our_loss = eval(theirs, ns), eval(ours, ns)
    for seed in (0, 1):
        x, y = _inputs(kind, seed)
        ref = ref_loss(x, y)
        got = our_loss(x, y)
        if ref.numel() == got.numel():
            ref = ref.reshape(got.shape)  # MONAI keeps singleton spatial dims in reduction="none"
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name, value, says",
    [
        ("to_onehot_y", True, "label map"),
        ("softmax", True, "mode='multiclass'"),
        ("sigmoid", True, "mode='binary'"),
        ("other_act", torch.tanh, "from_logits=False"),
        ("squared_pred", True, "squared=True"),
        ("jaccard", True, "'iou'"),
        ("weight", [1.0, 2.0], "class_weights"),
    ],
)
def test_monai_argument_names_name_the_equivalent(name, value, says):
    with pytest.raises(ValueError, match=re.escape(says)) as info:
        seglosses.build_loss("dice", **{name: value})
    assert name in str(info.value)
    x, y = _inputs("mc")
    with pytest.raises(ValueError, match=re.escape(says)):
        seglosses.functional.dice_loss(x, y, **{name: value})
    with pytest.raises(ValueError, match=re.escape(says)):
        seglosses.build_loss("dice+ce", **{name: value})


def test_every_foreign_name_is_in_the_guide_and_raises():
    from seglosses.registry import FOREIGN_ARGS

    text = DOC.read_text()
    section = text[text.index("## Their argument names") : text.index("## Convention differences")]
    for name, equivalent in FOREIGN_ARGS.items():
        assert f"`{name}" in section, name
        with pytest.raises(ValueError, match=re.escape(equivalent)):
            seglosses.build_loss("dice", **{name: 1})


@pytest.mark.parametrize("cls,name,value,says", [
    ("DiceLoss", "softmax", True, "mode='multiclass'"),
    ("DiceLoss", "weight", [1.0, 2.0, 1.0, 1.0], "class_weights=[...]"),
    ("FocalLoss", "use_softmax", True, "mode='multiclass'"),
    ("CELoss", "smooth_factor", 0.1, "label_smoothing="),
])
def test_module_classes_name_the_seglosses_equivalent(cls, name, value, says):
    """The module forms give the same error as build_loss and the functional forms (not a
    plain TypeError about an unexpected keyword)."""
    with pytest.raises(ValueError, match=re.escape(f"{name!r} is not a seglosses argument")) as info:
        getattr(seglosses.losses, cls)(**{name: value})
    assert says in str(info.value)


def test_module_classes_unknown_argument_names_the_loss_and_nearest_names():
    with pytest.raises(ValueError, match=r"dice: unknown argument\(s\) \['bacth'\].*did you mean \['batch'\]"):
        seglosses.losses.DiceLoss(bacth=True)
    with pytest.raises(ValueError, match=r"focal: unknown argument\(s\) \['gama'\].*did you mean \['gamma'\]"):
        seglosses.losses.FocalLoss(gama=2.0)
