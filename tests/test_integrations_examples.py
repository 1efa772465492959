"""The MONAI and Lightning examples in examples/ run (a few steps on tiny synthetic data)."""

from __future__ import annotations

import math
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SRC = Path(__file__).resolve().parents[1] / "src"


def test_monai_dynunet_example_runs():
    require("monai")
    main = runpy.run_path(str(EXAMPLES / "monai_dynunet.py"))["main"]
    result = main(["--steps", "3", "--batch-size", "2", "--size", "16"])
    assert len(result["losses"]) == 3 and all(math.isfinite(v) for v in result["losses"])
    assert 0.0 <= result["dice"] <= 1.0


def test_monai_dynunet_example_deep_supervision_levels(capsys):
    require("monai")
    main = runpy.run_path(str(EXAMPLES / "monai_dynunet.py"))["main"]
    main(["--steps", "1", "--batch-size", "2", "--size", "16", "--weights", "same"])
    out = capsys.readouterr().out
    # DynUNet(deep_supr_num=1) gives 2 outputs; both are evaluated with weights="same"
    line = next(l for l in out.splitlines() if l.startswith("step"))
    levels = eval(line.split("per level")[1])
    assert len(levels) == 2 and all(v is not None and math.isfinite(v) for v in levels)


# Importing Lightning imports torchmetrics, which imports torchvision whenever its distribution is
# installed. Where the installed torchvision cannot be imported (a CUDA torchvision wheel beside a
# CPU torch, as on this project's machines: nnU-Net's timm pulls it in), the example runs as on a
# machine without torchvision: the prelude hides its distribution and module.
_PRELUDE = """
import importlib.metadata as md, sys
try:
    import torchvision  # noqa: F401
except Exception:
    def _hide(f):
        def g(name, *a, **k):
            if name.lower().replace("_", "-") == "torchvision":
                raise md.PackageNotFoundError(name)
            return f(name, *a, **k)
        return g
    md.distribution, md.version = _hide(md.distribution), _hide(md.version)
    sys.modules["torchvision"] = None
"""


@pytest.mark.parametrize("loss", ["dice+ce", "dice_bd"])
def test_lightning_example_runs(loss):
    import importlib.util

    if importlib.util.find_spec("lightning") is None:
        require("lightning")  # fails in CI, skips elsewhere
    code = _PRELUDE + f"import runpy; sys.argv = ['lightning_module.py', '--steps', '3', '--size', '16', '--loss', {loss!r}]\n"
    code += f"runpy.run_path({str(EXAMPLES / 'lightning_module.py')!r}, run_name='__main__')\n"
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = next(l for l in proc.stdout.splitlines() if l.startswith(f"loss {loss!r}:"))
    values = dict(item.rsplit(" ", 1) for item in summary.split(": ", 1)[1].split(", "))
    assert math.isfinite(float(values["train/loss"])) and 0 <= float(values["val/dice"]) <= 1
    assert "train/dice" in values  # the compound's terms are logged
