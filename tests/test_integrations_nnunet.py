"""nnU-Net v2 integration: the loss builder, install/uninstall, and a tiny end-to-end training.

The end-to-end test builds a 2-D dataset in nnU-Net's raw format in a temporary folder, plans and
preprocesses it, installs a short trainer variant into nnU-Net's package, trains one epoch of a
few iterations on the CPU with a seglosses loss, checks from the training log and the checkpoint
that the loss was ours and finite, and removes the trainer module again.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import seglosses
from seglosses.integrations import nnunet as nn_int
from seglosses.integrations import nnunet_cli
from seglosses.integrations.nnunet import build_nnunet_loss, nnunet_ds_weights, nnunet_options, resolve_spec

from conftest import require

SRC = str(Path(seglosses.__file__).resolve().parents[1])  # the seglosses being tested


# ------------------------------------------------------------------ loss builder (no nnU-Net needed)
def test_doctests():
    import doctest

    assert doctest.testmod(nn_int).failed == 0


def test_resolve_spec_options_and_errors():
    assert resolve_spec("dice+topk(k=10)") == ("dice+topk", {"k": 10})
    assert resolve_spec("topk") == ("topk", {})
    with pytest.raises(ValueError, match="SEGLOSSES_LOSS: .*unknown loss 'nope'"):
        resolve_spec("nope", source="SEGLOSSES_LOSS")
    with pytest.raises(ValueError, match="SEGLOSSES_LOSS: expected one loss"):
        resolve_spec("dice,ce", source="SEGLOSSES_LOSS")
    with pytest.raises(ValueError, match="spec: expected a loss spec"):
        resolve_spec("  ")


def test_batch_dice_from_plans_unless_the_spec_sets_it():
    assert nnunet_options("dice", {}, batch_dice=True) == {"batch": True}
    assert nnunet_options("dice", {"batch": False}, batch_dice=True) == {"batch": False}
    assert nnunet_options("ce", {}, batch_dice=True) == {}
    assert nnunet_options("dice_ce", {}, batch_dice=False) == {"dice": {"batch": False}}
    assert nnunet_options("dice+ce", {"dice": {"batch": False}}, batch_dice=True) == {"dice": {"batch": False}}
    # the built loss really is a batch Dice
    loss = build_nnunet_loss("dice", batch_dice=True)
    assert loss.loss.options["batch"] is True


def test_ignore_label_and_regions():
    assert nnunet_options("dice+ce", {}, batch_dice=False, ignore_label=3)["ignore_index"] == 3
    assert nnunet_options("dice+ce", {}, batch_dice=False, has_regions=True)["mode"] == "multilabel"
    with pytest.raises(ValueError, match="ignore_label: region-based training with an ignore label"):
        nnunet_options("dice", {}, batch_dice=False, ignore_label=3, has_regions=True)
    with pytest.raises(ValueError, match=r"spec: region-based training needs losses with multilabel support; \['ell'\]"):
        nnunet_options("ell", {}, batch_dice=False, has_regions=True)
    with pytest.raises(ValueError, match="ignore_index: the dataset's ignore label is 3"):
        nnunet_options("ce", {"ignore_index": 4}, batch_dice=False, ignore_label=3)


def test_nnunet_targets_and_deep_supervision_like_nnunet():
    require("nnunetv2")
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    g = torch.Generator().manual_seed(0)
    outputs = [torch.randn(2, 3, s, s, generator=g) for s in (16, 8, 4)]
    targets = [torch.randint(0, 4, (2, 1, s, s), generator=g).to(torch.int16) for s in (16, 8, 4)]  # 3 = ignore
    loss = build_nnunet_loss("dice+ce", batch_dice=True, ignore_label=3, deep_supervision_levels=3)
    inner = seglosses.build_loss("dice+ce", dice={"batch": True}, ignore_index=3)
    ref = DeepSupervisionWrapper(lambda o, t: inner(o, t[:, 0].long()), nnunet_ds_weights(3))(outputs, targets)
    assert torch.allclose(loss(outputs, targets), ref)
    # regions: boolean multi-hot targets, sigmoid per region
    rt = [torch.rand(2, 2, s, s, generator=g) > 0.5 for s in (16, 8, 4)]
    ro = [o[:, :2] for o in outputs]
    rloss = build_nnunet_loss("dice+ce", batch_dice=False, has_regions=True, deep_supervision_levels=3)
    rinner = seglosses.build_loss("dice+ce", mode="multilabel")
    rref = DeepSupervisionWrapper(lambda o, t: rinner(o, t.float()), nnunet_ds_weights(3))(ro, rt)
    assert torch.allclose(rloss(ro, rt), rref)


def test_ddp_weights_keep_lowest_level_alive():
    w = nnunet_ds_weights(4, ddp=True)
    assert w[-1] > 0 and w[-1] < 1e-5 and abs(sum(w) - 1) < 1e-12
    assert nnunet_ds_weights(4, ddp=True, compiled=True)[-1] == 0


# ------------------------------------------------------------------ install / uninstall (a temp folder)
def test_install_writes_and_uninstall_removes_only_ours(tmp_path):
    folder = tmp_path / "nnUNetTrainer" / "variants" / "seglosses"
    folder.parent.mkdir(parents=True)
    written = nnunet_cli.install("dice+topk(k=10)", "nnUNetTrainer_DiceTopKTest", 2, 7, folder=folder)
    assert sorted(p.name for p in written) == ["__init__.py", "nnUNetTrainerSegLoss.py", "nnUNetTrainer_DiceTopKTest.py"]
    text = (folder / "nnUNetTrainer_DiceTopKTest.py").read_text()
    assert text.startswith(nnunet_cli.MARKER)
    assert "seglosses_spec = 'dice+topk(k=10)'" in text and "seglosses_epochs = 2" in text
    assert "seglosses_iterations_per_epoch = 7" in text
    compile(text, "variant", "exec")
    (folder / "user_file.py").write_text("x = 1\n")  # not ours: must survive
    removed = nnunet_cli.uninstall(folder=folder)
    assert {p.name for p in removed} == {"__init__.py", "nnUNetTrainerSegLoss.py", "nnUNetTrainer_DiceTopKTest.py"}
    assert (folder / "user_file.py").exists()


def test_install_validates_before_writing(tmp_path):
    folder = tmp_path / "nnUNetTrainer" / "variants" / "seglosses"
    folder.parent.mkdir(parents=True)
    with pytest.raises(ValueError, match="--loss: .*unknown loss 'nope'"):
        nnunet_cli.install("nope", folder=folder)
    with pytest.raises(ValueError, match="--name: expected a Python class name"):
        nnunet_cli.install("dice", "bad-name", folder=folder)
    with pytest.raises(ValueError, match="--epochs: expected an integer >= 1"):
        nnunet_cli.install("dice", epochs=0, folder=folder)
    assert not folder.exists()
    assert nnunet_cli.variant_name("dice+topk(k=10)", 1, 5) == "nnUNetTrainerSegLoss_dice_topk_k_10_1ep_5it"


def test_install_refuses_a_name_nnunet_already_has():
    require("nnunetv2")
    with pytest.raises(ValueError, match="--name: nnU-Net already has a trainer 'nnUNetTrainer_5epochs'"):
        nnunet_cli.install("dice", "nnUNetTrainer_5epochs")


def test_missing_nnunet_is_a_clear_message(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nnunetv2" else real(name, *a))
    from seglosses.cli import main

    assert main(["nnunet", "install"]) == 2
    assert 'pip install "seglosses[nnunet]"' in capsys.readouterr().err


# ------------------------------------------------------------------ into nnU-Net's package
@contextlib.contextmanager
def _install_lock():
    """Tests that write into nnU-Net's package may run in parallel (xdist): serialise install and
    clean-up, so one test's clean-up never removes what another just installed."""
    import fcntl

    with open(Path(tempfile.gettempdir()) / "seglosses_nnunet_install.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def installed_variant(spec, name, epochs=None, iterations=None, capsys=None):
    """Install a trainer variant with ``seglosses nnunet install`` and remove every file this
    wrote into site-packages afterwards (the shared base files too, once no other variant is left)."""
    from seglosses.cli import main

    args = ["nnunet", "install", "--loss", spec, "--name", name]
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    if iterations is not None:
        args += ["--iterations-per-epoch", str(iterations)]
    with _install_lock():
        assert main(args) == 0
    folder = nnunet_cli.nnunet_trainer_dir()
    try:
        yield folder / f"{name}.py"
    finally:
        with _install_lock():
            nnunet_cli.uninstall(name)
            if {p.name for p in folder.glob("*.py")} <= {"__init__.py", "nnUNetTrainerSegLoss.py"}:
                nnunet_cli.uninstall()
        assert not (folder / f"{name}.py").exists()


def test_cli_install_prints_what_and_where_and_uninstall_removes(capsys):
    require("nnunetv2")
    name = f"nnUNetTrainer_SegLossCLITest{os.getpid()}"
    with installed_variant("dice+topk(k=10)", name, epochs=1, iterations=5) as path:
        out = capsys.readouterr().out
        assert f"wrote 3 files to {path.parent}" in out and f"-tr {name}" in out
        assert path.read_text().startswith(nnunet_cli.MARKER)
        assert "seglosses_spec = 'dice+topk(k=10)'" in path.read_text()
    assert not path.exists()


# ------------------------------------------------------------------ end to end (nnU-Net on the CPU)
def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(array.astype(np.uint8)).save(path)


def _tiny_dataset(raw: Path, dataset_id: int, n_cases: int = 5, size: int = 32) -> str:
    name = f"Dataset{dataset_id}_SegLossTest"
    root = raw / name
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n_cases):
        cy, cx, r = rng.integers(10, size - 10, 2).tolist() + [int(rng.integers(4, 8))]
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        label = disk.astype(np.uint8)
        label[:, :3] = 2  # a stripe of the ignore label
        image = 60 + 120 * disk + rng.normal(0, 10, disk.shape)
        _write_png(root / "imagesTr" / f"case{i:03d}_0000.png", np.clip(image, 0, 255))
        _write_png(root / "labelsTr" / f"case{i:03d}.png", label)
    (root / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "gray"},
                "labels": {"background": 0, "disk": 1, "ignore": 2},
                "numTraining": n_cases,
                "file_ending": ".png",
            }
        )
    )
    return name


def _run(code: str, args: list, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", f"import sys; sys.argv = {['nnunet'] + args!r}; {code}"]
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


# nnUNetv2_train's own lookup (recursive_find_trainer_class_by_name) imports every trainer module of
# nnU-Net, including primus_trainers -> timm -> torchvision. Where torchvision cannot be imported (a
# CUDA torchvision wheel beside a CPU torch, as on this project's machines) that lookup crashes
# before reaching any trainer, so the test finds the installed trainer with nnU-Net's same
# recursive_find_python_class, started at the folder `seglosses nnunet install` wrote, and then
# does what nnUNetv2_train does (run_training.get_trainer_from_args, run_training, validation).
_TRAIN = """
import sys, torch
from os.path import join
import nnunetv2
from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.paths import nnUNet_preprocessed
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
name, dataset = sys.argv[1], sys.argv[2]
folder = join(nnunetv2.__path__[0], 'training', 'nnUNetTrainer', 'variants', 'seglosses')
cls = recursive_find_python_class(folder, name, 'nnunetv2.training.nnUNetTrainer.variants.seglosses')
assert cls is not None, 'installed trainer not found'
pre = join(nnUNet_preprocessed.require(), dataset)
plans = load_json(join(pre, 'nnUNetPlans.json'))
plans['continue_training'] = False
trainer = cls(plans=plans, configuration='2d', fold=0, dataset_json=load_json(join(pre, 'dataset.json')),
              device=torch.device('cpu'))
trainer.run_training()
trainer.perform_actual_validation(False)
"""


def test_nnunet_end_to_end_training_with_a_seglosses_loss(tmp_path):
    require("nnunetv2")
    dataset_id = 900 + os.getpid() % 99
    raw, pre, res = tmp_path / "raw", tmp_path / "preprocessed", tmp_path / "results"
    for p in (raw, pre, res):
        p.mkdir()
    dataset = _tiny_dataset(raw, dataset_id)
    env = dict(os.environ)
    env.update(
        nnUNet_raw=str(raw),
        nnUNet_preprocessed=str(pre),
        nnUNet_results=str(res),
        nnUNet_n_proc_DA="0",
        nnUNet_compile="f",
        OMP_NUM_THREADS="1",
        PYTHONPATH=SRC + os.pathsep + env.get("PYTHONPATH", ""),
    )
    _run(  # (the planner calls torch.set_num_threads(nnUNet_n_proc_DA): 1 here, 0 = in-process DA for training)
        "from nnunetv2.experiment_planning.plan_and_preprocess_entrypoints import plan_and_preprocess_entry as f; f()",
        ["-d", str(dataset_id), "-c", "2d", "-np", "1", "-npfp", "1"],
        {**env, "nnUNet_n_proc_DA": "1"},
        tmp_path,
    )
    name = f"nnUNetTrainer_SegLossCITest{os.getpid()}"
    spec = "dice+topk(k=20)"
    with installed_variant(spec, name, epochs=1, iterations=3):
        proc = _run(_TRAIN, [name, dataset], env, tmp_path)
    out = res / dataset / f"{name}__nnUNetPlans__2d" / "fold_0"
    log = "".join(p.read_text() for p in sorted(out.glob("training_log_*.txt")))
    assert f"seglosses loss: {spec!r} (from {name}.seglosses_spec)" in log, proc.stdout[-3000:]
    plans = json.loads((pre / dataset / "nnUNetPlans.json").read_text())
    batch_dice = bool(plans["configurations"]["2d"]["batch_dice"])
    assert f"batch_dice={batch_dice}, ignore_label=2, regions=False" in log
    topk_class = type(seglosses.build_loss("topk")).__name__
    assert "DeepSupervision(" in log and f"{topk_class}(ignore_index=2, k=20)" in log
    assert f"DiceLoss(ignore_index=2, batch={batch_dice})" in log  # the plans' batch Dice reached the Dice term
    ckpt = torch.load(out / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["trainer_name"] == name
    logging = ckpt["logging"]
    train_losses = logging["train_losses"]
    assert len(train_losses) == 1 and np.isfinite(train_losses).all()
    assert np.isfinite(logging["val_losses"]).all()
    assert (out / "validation" / "summary.json").exists()


def test_nnunet_own_lookup_finds_the_installed_trainer():
    """What ``nnUNetv2_train -tr NAME`` does to find the trainer (needs an importable torchvision)."""
    require("nnunetv2")
    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # a broken torchvision crashes nnU-Net's lookup before our folder
        pytest.skip(f"torchvision cannot be imported here ({type(exc).__name__}), nnU-Net's trainer lookup cannot run")
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    name = f"nnUNetTrainer_SegLossLookupTest{os.getpid()}"
    with installed_variant("dice_ce", name):
        cls = recursive_find_trainer_class_by_name(name)
        assert cls.__name__ == name and cls.seglosses_spec == "dice_ce"
        base = recursive_find_trainer_class_by_name("nnUNetTrainerSegLoss")
        assert base.__module__ == "seglosses.integrations.nnunet_trainer"


def test_schedules_reach_the_compound_through_the_nnunet_wrappers():
    # nnUNetTrainerSegLoss.on_train_epoch_start calls loss.set_epoch(epoch)
    loss = build_nnunet_loss("dice_bd", batch_dice=False, deep_supervision_levels=3)
    loss.set_epoch(3)
    assert loss.loss.loss.weights == [0.97, 0.03]
