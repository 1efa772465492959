"""``seglosses nnunet install | uninstall``: make the seglosses trainer visible to ``nnUNetv2_train``.

nnU-Net v2 looks for ``-tr TRAINER`` only inside its own package
(``nnunetv2/training/nnUNetTrainer``). ``install`` writes a package ``variants/seglosses/`` there
with one small module per trainer that imports
:class:`seglosses.integrations.nnunet_trainer.nnUNetTrainerSegLoss` (and, for a named variant,
subclasses it with a fixed spec and, optionally, a short schedule). Every file written starts with
a marker line; ``uninstall`` removes only files that carry it. The modules stay importable when
seglosses itself is later removed (they then define nothing), so nnU-Net's trainer search never
breaks.

Two commands for an nnU-Net user::

    seglosses nnunet install
    SEGLOSSES_LOSS="dice+topk(k=10)" nnUNetv2_train DATASET 2d 0 -tr nnUNetTrainerSegLoss
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path
from typing import List, Optional

from .nnunet import ENV_VAR, INSTALL_HINT, resolve_spec

__all__ = ["nnunet_trainer_dir", "install", "uninstall", "variant_name", "configure_nnunet", "run_nnunet"]

MARKER = "# Written by `seglosses nnunet install`"
BASE = "nnUNetTrainerSegLoss"
PACKAGE = "seglosses"  # folder under nnunetv2/training/nnUNetTrainer/variants


class NNUNetMissing(ImportError):
    """nnU-Net v2 is not installed."""


def nnunet_trainer_dir() -> Path:
    """``<nnunetv2>/training/nnUNetTrainer/variants/seglosses`` (found without importing nnU-Net)."""
    spec = importlib.util.find_spec("nnunetv2")
    if spec is None or not spec.submodule_search_locations:
        raise NNUNetMissing(f"nnU-Net v2 (package 'nnunetv2') is not installed; install it with: {INSTALL_HINT}")
    root = Path(list(spec.submodule_search_locations)[0])
    variants = root / "training" / "nnUNetTrainer" / "variants"
    if not variants.is_dir():
        raise NNUNetMissing(f"nnU-Net v2 at {root} has no training/nnUNetTrainer/variants folder; reinstall it with: {INSTALL_HINT}")
    return variants / PACKAGE


def variant_name(spec: Optional[str], epochs: Optional[int], iterations: Optional[int]) -> str:
    """Default class name of a variant: ``nnUNetTrainerSegLoss_dice_topk_k_10_1ep_5it``."""
    name = BASE
    if spec:
        name += "_" + re.sub(r"[^0-9A-Za-z]+", "_", spec).strip("_")
    if epochs is not None:
        name += f"_{epochs}ep"
    if iterations is not None:
        name += f"_{iterations}it"
    return name


def _module_text(name: str, spec: Optional[str], epochs: Optional[int], iterations: Optional[int]) -> str:
    from .. import __version__

    head = (
        f"{MARKER} (seglosses {__version__}); `seglosses nnunet uninstall` removes it.\n"
        f"# Train with: nnUNetv2_train DATASET CONFIGURATION FOLD -tr {name}\n"
        "try:\n"
        "    from seglosses.integrations.nnunet_trainer import nnUNetTrainerSegLoss\n"
        "except ImportError:  # seglosses (or this version of it) is gone: define nothing, stay importable\n"
        "    pass\n"
    )
    if name == BASE:
        return head
    body = [f"else:\n    class {name}(nnUNetTrainerSegLoss):\n"]
    body.append(f'        """nnUNetTrainerSegLoss with loss {spec or "from " + ENV_VAR}."""\n\n')
    if spec:
        body.append(f"        seglosses_spec = {spec!r}\n")
    if epochs is not None:
        body.append(f"        seglosses_epochs = {int(epochs)}\n")
    if iterations is not None:
        body.append(f"        seglosses_iterations_per_epoch = {int(iterations)}\n")
    return head + "".join(body)


def _ours(path: Path) -> bool:
    try:
        return path.read_text(encoding="utf-8").startswith(MARKER)
    except (OSError, UnicodeDecodeError):
        return False


def _write(path: Path, text: str) -> None:
    if path.exists() and not _ours(path):
        raise FileExistsError(f"{path} exists and was not written by seglosses; not overwriting it")
    path.write_text(text, encoding="utf-8")


def install(
    spec: Optional[str] = None,
    name: Optional[str] = None,
    epochs: Optional[int] = None,
    iterations: Optional[int] = None,
    folder: Optional[Path] = None,
) -> List[Path]:
    """Write the trainer module(s); return the paths written.

    Always (re)writes ``nnUNetTrainerSegLoss.py`` (loss from ``SEGLOSSES_LOSS``); with a spec,
    a name or a short schedule also ``<name>.py`` defining that variant. The spec is validated
    (built once) before anything is written.
    """
    if spec is not None:
        resolve_spec(spec, source="--loss")  # validate now, not at training time
    for arg, value in (("--epochs", epochs), ("--iterations-per-epoch", iterations)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{arg}: expected an integer >= 1, got {value!r}")
    if name is not None and not name.isidentifier():
        raise ValueError(f"--name: expected a Python class name such as 'nnUNetTrainer_DiceTopK', got {name!r}")
    if name == BASE and (spec or epochs or iterations):
        raise ValueError(f"--name: {BASE!r} is the base trainer (loss from {ENV_VAR}); give the variant another name")
    folder = Path(folder) if folder is not None else nnunet_trainer_dir()
    if name is not None:
        _check_name_free(name, folder)
    folder.mkdir(exist_ok=True)
    written = []
    init = folder / "__init__.py"
    _write(init, f"{MARKER}; `seglosses nnunet uninstall` removes this folder.\n")
    written.append(init)
    base = folder / f"{BASE}.py"
    _write(base, _module_text(BASE, None, None, None))
    written.append(base)
    if spec is not None or name is not None or epochs is not None or iterations is not None:
        name = name or variant_name(spec, epochs, iterations)
        path = folder / f"{name}.py"
        _write(path, _module_text(name, spec, epochs, iterations))
        written.append(path)
    return written


def _check_name_free(name: str, folder: Path) -> None:
    """nnU-Net uses the first class of that name it finds: refuse a name one of its trainers has."""
    trainers = folder.parent.parent  # .../training/nnUNetTrainer
    pattern = re.compile(rf"^class\s+{re.escape(name)}\b", re.M)
    for path in trainers.rglob("*.py"):
        if path.parent == folder:
            continue
        try:
            if pattern.search(path.read_text(encoding="utf-8", errors="replace")):
                raise ValueError(f"--name: nnU-Net already has a trainer {name!r} ({path}); choose another name")
        except OSError:
            continue


def uninstall(name: Optional[str] = None, folder: Optional[Path] = None) -> List[Path]:
    """Remove what ``install`` wrote (one variant with ``name``, else everything); return the paths removed."""
    folder = Path(folder) if folder is not None else nnunet_trainer_dir()
    removed: List[Path] = []
    if not folder.is_dir():
        return removed
    if name is not None:
        path = folder / f"{name}.py"
        if not path.exists():
            raise FileNotFoundError(f"--name: no trainer {name!r} installed in {folder}")
        if not _ours(path):
            raise ValueError(f"--name: {path} was not written by seglosses; not removing it")
        path.unlink()
        removed.append(path)
        for pyc in (folder / "__pycache__").glob(f"{name}.*.pyc"):
            pyc.unlink()
        return removed
    for path in sorted(folder.glob("*.py")):
        if _ours(path):
            path.unlink()
            removed.append(path)
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)
    try:
        folder.rmdir()
        removed.append(folder)
    except OSError:  # someone else's files are in it: leave them
        pass
    return removed


# ----------------------------------------------------------------------------- CLI
def configure_nnunet(parser) -> None:
    parser.epilog = (
        "A user with nnU-Net v2 installed:\n"
        "  seglosses nnunet install\n"
        f"  {ENV_VAR}='dice+topk(k=10)' nnUNetv2_train DATASET 2d 0 -tr {BASE}\n"
        "A named variant with a fixed loss, and a short one for a smoke test:\n"
        "  seglosses nnunet install --loss 'dice+topk(k=10)' --name nnUNetTrainer_DiceTopK\n"
        "  seglosses nnunet install --loss dice_ce --epochs 1 --iterations-per-epoch 10\n"
    )
    sub = parser.add_subparsers(dest="nnunet_command", metavar="ACTION")
    p = sub.add_parser("install", help="write the trainer module(s) into nnU-Net's package")
    p.add_argument("--loss", metavar="SPEC", help="fixed loss spec of a named variant, e.g. 'dice+topk(k=10)'")
    p.add_argument("--name", help="class name of the variant (default: derived from the spec)")
    p.add_argument("--epochs", type=int, metavar="N", help="short variant: N epochs")
    p.add_argument("--iterations-per-epoch", type=int, metavar="M", help="short variant: M training iterations per epoch")
    u = sub.add_parser("uninstall", help="remove what install wrote")
    u.add_argument("--name", help="remove only this variant")
    sub.add_parser("where", help="print the folder install writes to")


def run_nnunet(args) -> int:
    action = getattr(args, "nnunet_command", None)
    if action is None:
        print("usage: seglosses nnunet {install,uninstall,where} (see seglosses nnunet --help)", file=sys.stderr)
        return 2
    try:
        if action == "where":
            print(nnunet_trainer_dir())
            return 0
        if action == "install":
            written = install(args.loss, args.name, args.epochs, args.iterations_per_epoch)
            folder = written[0].parent
            print(f"seglosses: wrote {len(written)} files to {folder}")
            for path in written:
                print(f"  {path.name}")
            trainers = [p.stem for p in written if p.name != "__init__.py"]
            print("Train with:")
            print(f"  {ENV_VAR}='dice+ce' nnUNetv2_train DATASET CONFIGURATION FOLD -tr {BASE}")
            for t in trainers[1:]:
                print(f"  nnUNetv2_train DATASET CONFIGURATION FOLD -tr {t}")
            print("Remove with: seglosses nnunet uninstall")
            return 0
        removed = uninstall(args.name)
        if not removed:
            print(f"seglosses: nothing to remove in {nnunet_trainer_dir()}")
        for path in removed:
            print(f"seglosses: removed {path}")
        return 0
    except (NNUNetMissing, FileExistsError, PermissionError) as exc:
        print(f"seglosses nnunet: error: {exc}", file=sys.stderr)
        return 2
