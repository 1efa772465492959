"""Command-line behaviour of ``seglosses bench / report / export / tasks``: help, argument errors,
corrupt files named in the message."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

import seglosses
from seglosses.cli import build_parser, main


def _err(capsys, argv):
    rc = main(argv)
    captured = capsys.readouterr()
    return rc, captured.err


def test_help_has_examples(capsys):
    parser = build_parser()
    for cmd in ("bench", "report", "export", "tasks"):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([cmd, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "example" in out.lower(), cmd
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--preset",
        "--tasks",
        "--data",
        "--losses",
        "--lrs",
        "--iterations",
        "--epochs",
        "--spatial-dims",
        "--out",
        "--resume",
        "--seed",
        "--device",
        "--workers",
        "--resume      # continue",
    ):
        assert flag in out


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["bench", "--losses", "dice,not_a_loss"], ["unknown loss 'not_a_loss'", "dice_ce", "tversky"]),
        (["bench", "--losses", "zz*"], ["wildcard 'zz*' matches no loss", "registered losses"]),
        (["bench", "--losses", "topk(k=oops=1)"], ["--losses"]),
        (["bench", "--losses", "dice(nonsense=1)"], ["--losses", "nonsense"]),
        (["bench", "--tasks", "lung"], ["unknown task(s) ['lung']", "liver", "multiorgan"]),
        (["bench", "--data", "/no/such/dataset"], ["--data", "/no/such/dataset", "does not exist"]),
        (["bench", "--lrs", "3e-3,abc"], ["--lrs", "'abc'"]),
        (["bench", "--lrs", "-1"], ["--lrs", "positive"]),
        (["bench", "--retry-failed"], ["--retry-failed needs --resume"]),
        (["bench", "--device", "tpu"], ["--device", "tpu"]),
        (["bench", "--tolerance", "0"], ["--tolerance"]),
        (["report", "/no/such/out"], ["/no/such/out"]),
        (["export", "/no/such/out", "--csv"], ["/no/such/out"]),
    ],
)
def test_argument_errors_are_clear(capsys, tmp_path, argv, needles):
    argv = list(argv) + (["--out", str(tmp_path / "out")] if argv[0] == "bench" else [])
    rc, err = _err(capsys, argv)
    assert rc == 2
    assert err.startswith(f"seglosses {argv[0]}: error:")
    for n in needles:
        assert n in err, (n, err)
    assert not (tmp_path / "out" / "results.sqlite").exists()  # nothing trained or written


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--iterations", "0"])
    assert exc.value.code == 2
    assert "--iterations" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--iterations", "5", "--epochs", "2"])
    assert "not allowed with" in capsys.readouterr().err


def test_corrupt_results_file_is_named(capsys, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"this is not a database" * 100)
    for cmd in (
        ["report", str(out)],
        ["export", str(out)],
        ["bench", "--out", str(out), "--resume", "--losses", "dice"],
    ):
        rc, err = _err(capsys, cmd)
        assert rc == 2 and str(out / "results.sqlite") in err and "not a readable SQLite" in err, err
    other = tmp_path / "other"
    other.mkdir()
    con = sqlite3.connect(str(other / "results.sqlite"))
    con.execute("CREATE TABLE foo (x)")
    con.commit()
    con.close()
    rc, err = _err(capsys, ["report", str(other)])
    assert rc == 2 and "not a seglosses results database" in err and str(other / "results.sqlite") in err


def test_corrupt_case_stops_before_training_and_names_the_file(capsys, tmp_path):
    from PIL import Image

    data = tmp_path / "folder"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray((rng.random((32, 32)) * 255).astype(np.uint8)).save(data / "images" / f"c{i}.png")
        Image.fromarray(((rng.random((32, 32)) > 0.7) * 255).astype(np.uint8)).save(
            data / "masks" / f"c{i}.png"
        )
    (data / "images" / "c2.png").write_bytes(b"\x89PNG truncated")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(data / "masks" / "c3.png")  # shape mismatch
    rc, err = _err(
        capsys, ["bench", "--data", str(data), "--losses", "dice", "--out", str(tmp_path / "out"), "--quiet"]
    )
    assert rc == 2
    assert "c2.png" in err and "c3" in err
    assert not (tmp_path / "out" / "results.sqlite").exists()


def test_tasks_command_lists_and_previews(capsys, tmp_path):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for t in ("liver", "tumor", "pancreas", "multiorgan", "brain", "aerial"):
        assert t in out
    assert (
        main(
            ["tasks", "--preview", str(tmp_path / "prev"), "--tasks", "liver", "--cases", "2", "--size", "32"]
        )
        == 0
    )
    assert (tmp_path / "prev" / "liver.png").stat().st_size > 1000


def test_losses_parsing():
    from seglosses.bench.presets import parse_losses

    cfgs = parse_losses("dice*,ce, 0.5*dice+ce ,topk(k=30),topk_k50,dice_ce(dice.batch=true),dice")
    names = [c.name for c in cfgs]
    assert names[: len(seglosses.list_losses("dice*"))] == seglosses.list_losses("dice*")
    assert names.count("dice") == 1  # duplicates dropped
    by = {c.name: c for c in cfgs}
    assert by["0.5*dice+ce"].spec == "0.5*dice+ce"
    assert by["topk(k=30)"].spec == "topk" and by["topk(k=30)"].options == {"k": 30}
    assert by["topk_k50"].spec == "topk" and by["topk_k50"].options == {"k": 50.0}
    assert by["dice_ce(dice.batch=true)"].options == {"dice": {"batch": True}}
    for c in cfgs:
        c.build()


def test_presets():
    from seglosses.bench.presets import MA_FIG10, PAPER, QUICK, resolve_preset_losses

    quick, warnings = resolve_preset_losses(QUICK)
    names = {c.name for c in quick}
    assert {
        "ce",
        "wce",
        "focal",
        "topk",
        "dice",
        "iou",
        "tversky",
        "dice_ce",
        "dice_focal",
        "dice_topk",
    } <= names
    assert len(quick) >= 10 and len(QUICK.tasks) >= 2 and QUICK.spatial_dims == 2
    assert len(MA_FIG10) == 27
    paper, warnings = resolve_preset_losses(PAPER)
    assert warnings == [], warnings  # every loss of Ma et al. is registered
    pnames = {c.name for c in paper}
    assert {n for n, _, _ in MA_FIG10} <= pnames
    assert set(seglosses.list_losses()) <= {c.spec for c in paper} | pnames  # every registered loss
    assert set(PAPER.tasks) == {"liver", "tumor", "pancreas", "multiorgan"} and PAPER.lrs == (
        3e-3,
        3e-4,
        3e-5,
    )
    by = {c.name: c for c in paper}
    assert by["dice"].options == {"batch": True, "squared": False}
    assert by["topk_k70"].options == {"k": 70.0} and by["topk_t0.3"].spec == "topk_threshold"
    for c in paper:
        c.build()


def test_build_config_epochs_presets_and_devices():
    import torch

    from seglosses.bench.cli import build_config

    parser = build_parser()
    cfg, _ = build_config(
        parser.parse_args(["bench", "--epochs", "3", "--epoch-length", "4", "--losses", "dice"])
    )
    assert cfg.iterations == 12 and cfg.epoch_length == 4 and cfg.workers == 2 and cfg.threads == 1
    assert cfg.tasks == ["liver", "pancreas"] and cfg.lrs == [3e-3]
    cfg, _ = build_config(parser.parse_args(["bench", "--preset", "paper", "--losses", "dice"]))
    assert (
        cfg.spatial_dims == 3
        and cfg.lrs == [3e-3, 3e-4, 3e-5]
        and cfg.batch_size == 2
        and cfg.model_size == "nnunet"
    )
    assert cfg.iterations == 250_000 and cfg.workers == 1
    cfg, _ = build_config(parser.parse_args(["bench", "--data", ".", "--losses", "dice"]))
    assert cfg.tasks == [] and cfg.spatial_dims is None  # the data's own dims
    if not torch.cuda.is_available():
        from seglosses.bench.train import resolve_device

        with pytest.raises(ValueError, match="cuda"):
            resolve_device("cuda")
        assert resolve_device("auto") == "cpu"
