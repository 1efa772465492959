"""Does ``seglosses bench --data DIR --budget 10m`` keep its budget? (issue: a plan that fits the user's time)

Writes two datasets to disk from built-in synthetic tasks (raw intensities, as files a user has):

* ``OUT/folder2d``: a 2-D ``images/`` + ``masks/`` folder (16-bit PNG images, 0/255 masks), 40
  cases of 128 x 128 (``liver``);
* ``OUT/msd3d``: a Medical Segmentation Decathlon folder (NIfTI, ``dataset.json``), 12 volumes of
  48^3 at 1.5 x 1 x 1 mm (``liver``, 3-D),

then runs ``seglosses bench --data DIR --budget BUDGET --yes --quiet`` on each and prints the
wall time against the budget.

    python benchmarks/budget_check.py                    # both datasets, --budget 10m
    python benchmarks/budget_check.py --budget 3m --only folder2d
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def write_folder2d(root: Path, n: int = 40, size: int = 128) -> Path:
    from PIL import Image

    from seglosses.bench.synthetic import make_task

    ds = make_task("liver", n_cases=n, spatial_dims=2, size=size, normalize=False)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for case in ds:
        img = case.image[0]
        img = (img - img.min()) / max(float(img.max() - img.min()), 1e-6) * 65535
        Image.fromarray(img.astype(np.uint16)).save(root / "images" / f"{case.case_id}.png")
        Image.fromarray((case.label > 0).astype(np.uint8) * 255).save(root / "masks" / f"{case.case_id}.png")
    return root


def write_msd3d(root: Path, n: int = 12, size: int = 48) -> Path:
    from seglosses.bench.io import write_nifti
    from seglosses.bench.synthetic import make_task

    ds = make_task("liver", n_cases=n, spatial_dims=3, size=size, normalize=False)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(exist_ok=True)
    training = []
    spacing = (1.5, 1.0, 1.0)
    for case in ds:
        name = f"{case.case_id}.nii.gz"
        write_nifti(root / "imagesTr" / name, case.image[0].astype(np.float32), spacing)
        write_nifti(root / "labelsTr" / name, case.label.astype(np.uint8), spacing)
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    meta = {"name": "SyntheticLiver3D", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver"},
            "training": training}
    (root / "dataset.json").write_text(json.dumps(meta, indent=1))
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--out", default="budget_check_out")
    ap.add_argument("--only", choices=["folder2d", "msd3d"], default=None)
    args = ap.parse_args(argv)
    out = Path(args.out)
    makers = {"folder2d": write_folder2d, "msd3d": write_msd3d}
    rows = []
    for name, make in makers.items():
        if args.only and name != args.only:
            continue
        data = make(out / name)
        cmd = [sys.executable, "-m", "seglosses.cli", "bench", "--data", str(data), "--budget", args.budget,
               "--yes", "--quiet", "--out", str(out / f"{name}_out")]
        print("$ seglosses " + " ".join(cmd[3:]), flush=True)
        t0 = time.time()
        rc = subprocess.call(cmd)
        wall = time.time() - t0
        rows.append((name, rc, wall))
        print(f"[budget_check] {name}: exit {rc}, wall {wall / 60:.1f} min for a budget of {args.budget}", flush=True)
    print("\n| dataset | budget | wall time | exit |\n|---|---|---|---|")
    for name, rc, wall in rows:
        print(f"| {name} | {args.budget} | {wall / 60:.1f} min | {rc} |")
    return max((r for _, r, _ in rows), default=0)


if __name__ == "__main__":
    sys.exit(main())
