"""Registry: names, wildcards, metadata, weighted-sum specs, per-term arguments, errors."""

from __future__ import annotations

import pytest
import torch

import seglosses
from seglosses import build_loss, list_losses, loss_info
from seglosses.functional import ce_loss, dice_loss, focal_loss, topk_loss
from seglosses.losses import CompoundLoss, DiceLoss
from seglosses.registry import parse_spec

REQUIRED = [
    "ce", "wce", "balanced_ce", "weighted_bce", "topk", "topk_threshold", "focal",
    "dice", "iou", "tversky", "focal_tversky", "asym", "gdice", "pgdice", "ss", "log_cosh_dice", "lovasz",
    "dice_ce", "dice_focal", "dice_topk", "combo", "ell",
]


@pytest.mark.parametrize("name", REQUIRED)
def test_papers_losses_are_registered(name):
    assert name in list_losses()


def test_list_losses_wildcards_and_category():
    assert list_losses("dice") == ["dice"]
    assert set(list_losses("dice_*")) >= {"dice_ce", "dice_focal", "dice_topk"}
    assert all(n.startswith("topk") for n in list_losses("topk*"))
    assert set(list_losses(category="compound")) >= {"dice_ce", "dice_focal", "dice_topk"}
    assert "ce" not in list_losses(category="region")
    with pytest.raises(ValueError, match="category: expected one of"):
        list_losses(category="nope")


def test_loss_info_metadata():
    info = loss_info("tversky") if "tversky" in list_losses() else loss_info("dice")
    assert info.category == "region"
    assert info.formula and info.paper
    assert "smooth" in info.defaults and info.needs_distance_map is False
    assert set(info.modes) <= {"binary", "multiclass", "multilabel"}
    assert loss_info("dice_ce").spec == "dice+ce"
    assert loss_info("topk").defaults["k"] == 10.0


def test_every_loss_is_documented():
    for name in list_losses():
        info = loss_info(name)
        assert info.paper, f"{name}: no paper reference"
        assert info.formula, f"{name}: no formula"
        if info.functional is not None:
            doc = info.functional.__doc__ or ""
            assert "Reference" in doc or "References" in doc, f"{name}: docstring lacks a reference"
            assert len(doc) > 300, f"{name}: docstring too short"


def test_parse_spec():
    assert parse_spec("0.5*dice+2*ce") == [(0.5, "dice"), (2.0, "ce")]
    assert parse_spec(" dice + topk ") == [(1.0, "dice"), (1.0, "topk")]
    assert parse_spec("1e-1*dice+ce") == [(0.1, "dice"), (1.0, "ce")]
    assert parse_spec("1e+1*dice+ce") == [(10.0, "dice"), (1.0, "ce")]
    assert parse_spec("2*dice_ce") == [(2.0, "dice"), (2.0, "ce")]  # named compounds expand
    for bad in ["", "dice+", "0.5*", "dice*0.5", "2**dice"]:
        with pytest.raises(ValueError, match="spec"):
            parse_spec(bad)
    with pytest.raises(ValueError, match=r"unknown loss 'dcie'; registered losses are \[.*'dice'"):
        parse_spec("dcie+ce")


def test_build_single_loss_passes_kwargs():
    loss = build_loss("dice", batch=True, smooth=1.0)
    assert isinstance(loss, DiceLoss)
    assert loss.options == {"batch": True, "smooth": 1.0}
    with pytest.raises(ValueError, match=r"dice: unknown argument\(s\) \['k'\]; valid arguments are \[.*'batch'"):
        build_loss("dice", k=3)


def test_build_weighted_sum_with_per_term_kwargs():
    logits = torch.randn(2, 3, 6, 6)
    target = torch.randint(0, 3, (2, 6, 6))
    loss = build_loss("0.5*dice+2*topk", dice={"batch": True}, topk={"k": 30})
    assert isinstance(loss, CompoundLoss)
    expected = 0.5 * dice_loss(logits, target, batch=True) + 2 * topk_loss(logits, target, k=30)
    torch.testing.assert_close(loss(logits, target), expected)
    assert set(loss.last_terms) == {"dice", "topk"}


def test_shared_top_level_arguments_apply_to_terms_that_accept_them():
    logits = torch.randn(2, 3, 6, 6)
    target = torch.randint(0, 3, (2, 6, 6))
    target[0, 0] = 255
    loss = build_loss("dice_ce", ignore_index=255, include_background=False)
    expected = dice_loss(logits, target, ignore_index=255, include_background=False) + ce_loss(
        logits, target, ignore_index=255
    )
    torch.testing.assert_close(loss(logits, target), expected)
    with pytest.raises(ValueError, match=r"unknown argument 'gamma2'"):
        build_loss("dice+ce", gamma2=1)
    with pytest.raises(TypeError, match="per-term options must be a dict"):
        build_loss("dice+ce", dice=3)


@pytest.mark.parametrize("native", ["1", "0"])
def test_compound_computes_one_softmax(monkeypatch, native):
    monkeypatch.setenv("SEGLOSSES_NATIVE", native)
    calls = {"log_softmax": 0, "softmax": 0, "native": 0}
    import torch.nn.functional as F

    from seglosses import _native

    real_native = _native.SoftmaxLabelStats.apply

    def counting_native(*a, **k):
        calls["native"] += 1
        return real_native(*a, **k)

    monkeypatch.setattr(_native.SoftmaxLabelStats, "apply", counting_native)

    real_ls, real_s = F.log_softmax, torch.softmax

    def counting_ls(*a, **k):
        calls["log_softmax"] += 1
        return real_ls(*a, **k)

    def counting_s(*a, **k):
        calls["softmax"] += 1
        return real_s(*a, **k)

    monkeypatch.setattr(F, "log_softmax", counting_ls)
    monkeypatch.setattr(torch, "softmax", counting_s)
    logits = torch.randn(2, 3, 6, 6)
    target = torch.randint(0, 3, (2, 6, 6))
    build_loss("ce+dice+focal")(logits, target)
    assert calls["log_softmax"] + calls["softmax"] + calls["native"] == 1, calls
    assert calls["native"] == (1 if native == "1" and _native.enabled() else 0), calls


def test_named_compounds_equal_their_sums():
    logits = torch.randn(2, 3, 6, 6)
    target = torch.randint(0, 3, (2, 6, 6))
    torch.testing.assert_close(build_loss("dice_focal")(logits, target), dice_loss(logits, target) + focal_loss(logits, target))


def test_catalogue_command(capsys):
    from seglosses.cli import main

    assert main(["losses", "dice*"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")]
    assert "dice_ce" in names and "ce" not in names and "focal" not in names
    assert main(["losses", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| name | category |") and "`topk`" in out
    assert main(["losses", "nothing*"]) == 1


def test_top_level_api():
    assert seglosses.build_loss is build_loss
    assert callable(seglosses.list_losses) and callable(seglosses.loss_info)


# ----------------------------------------------------------------------------- generated module classes

def _generator():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "gen_loss_classes.py"
    spec = importlib.util.spec_from_file_location("gen_loss_classes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_loss_classes_match_the_registry():
    """src/seglosses/losses/_classes.py is what scripts/gen_loss_classes.py writes from the registry."""
    gen = _generator()
    assert gen.TARGET.read_text() == gen.render(), "run: python scripts/gen_loss_classes.py"
    assert gen.main(["--check"]) == 0


def test_generator_check_fails_on_a_stale_file(tmp_path, monkeypatch, capsys):
    gen = _generator()
    stale = tmp_path / "_classes.py"
    stale.write_text(gen.render().replace("class DiceLoss(", "class DiceLos("))
    monkeypatch.setattr(gen, "TARGET", stale)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().out


@pytest.mark.parametrize("name", [n for n in list_losses() if loss_info(n).spec is None])
def test_every_single_loss_has_a_real_class(name):
    import inspect

    import seglosses.losses as losses
    from seglosses.losses import _classes

    info = loss_info(name)
    cls = getattr(losses, info.class_name)
    assert cls.__module__ == "seglosses.losses._classes" and cls.__name__ == info.class_name
    assert info.module is cls and cls.info.name == name
    assert isinstance(build_loss(name), cls)
    assert f"class {info.class_name}(SegLoss" in inspect.getsource(_classes)
    # help() shows the formula docstring of the functional form
    first = inspect.getdoc(info.functional).split("\n\n")[0]
    assert first in inspect.getdoc(cls)
    # the constructor's signature lists every option with its default, and the contract
    params = inspect.signature(cls).parameters
    assert {k: params[k].default for k in info.defaults} == info.defaults
    assert {"mode", "from_logits", "ignore_index"} <= set(params)
    for alias in info.aliases:
        assert getattr(losses, alias) is cls


def test_paper_names_and_old_names():
    from seglosses import losses

    assert losses.CELoss is losses.CeLoss
    assert losses.GeneralizedDiceLoss is losses.GdiceLoss is losses.GDiceLoss
    assert losses.SensitivitySpecificityLoss is losses.SSLoss is losses.SsLoss
    assert losses.TopKLoss is losses.TopkLoss
    assert losses.IoULoss is losses.IouLoss
    assert loss_info("gdice").class_name == "GeneralizedDiceLoss"
    assert set(losses.__all__) >= {"DiceLoss", "CELoss", "CeLoss", "CompoundLoss", "SegLoss"}
