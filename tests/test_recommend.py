"""`seglosses recommend`: the profile against hand-built masks, the shortlist rules, the evidence
look-up, the CLI and its JSON schema."""

import json
import math

import numpy as np
import pytest
from scipy import ndimage

from seglosses.bench.data import Case, Dataset
from seglosses.bench.profile import boundary_voxels, components, profile_dataset
from seglosses.recommend import (
    BASELINE,
    load_evidence,
    nearest_regimes,
    recommend,
    regime_of,
    shortlist,
)

from conftest import require


def _ds(labels, spacing=None, names=("background", "fg")):
    cases = [
        Case(f"c{i}", np.zeros((1,) + lab.shape, np.float32), lab.astype(np.int64),
             spacing or (1.0,) * lab.ndim)
        for i, lab in enumerate(labels)
    ]
    return Dataset("toy", cases, names)


# ---- profile: hand-built masks with known counts and sizes -------------------------------------


def test_profile_counts_sizes_and_fractions_2d():
    a = np.zeros((20, 20), int)
    a[2:6, 2:6] = 1          # 16 voxels, one square
    a[10:12, 10:13] = 1      # 6 voxels
    a[18, 18] = 1            # 1 voxel
    b = np.zeros((20, 20), int)
    b[5:10, 5:10] = 1        # 25 voxels
    c = np.zeros((20, 20), int)  # class absent
    p = profile_dataset(_ds([a, b, c], spacing=(0.5, 2.0)))
    fg = p["classes"]["fg"]
    total, fgv = 1200, 16 + 6 + 1 + 25
    assert fg["voxel_fraction"] == pytest.approx(fgv / total)
    assert fg["bg_fg_ratio"] == pytest.approx((total - fgv) / fgv)
    assert fg["absent_fraction"] == pytest.approx(1 / 3)
    assert fg["objects_per_case"] == {"median": 2.0, "mean": 2.0, "max": 3.0}
    sizes = np.array([16, 6, 1, 25])
    assert fg["object_size_voxels"]["median"] == pytest.approx(np.median(sizes))
    assert fg["object_size_voxels"]["p10"] == pytest.approx(np.percentile(sizes, 10))
    assert fg["object_size_mm"]["median"] == pytest.approx(np.median(sizes) * 1.0)  # 0.5 * 2.0 mm^2
    # boundary: square 4x4 -> 12, 2x3 -> 6, dot -> 1, 5x5 -> 16
    assert fg["boundary_fraction"] == pytest.approx((12 + 6 + 1 + 16) / fgv)
    # thinness: against a disk of the median size (11 voxels: 3.15 / sqrt(11) of it on the boundary)
    assert fg["thinness"] == pytest.approx(fg["boundary_fraction"] / (3.15 / 11 ** 0.5))
    d = p["dataset"]
    assert d["cases"] == 3 and d["spatial_dims"] == 2 and d["image_size"]["median"] == [20, 20]
    assert d["spacing"] == [0.5, 2.0] and d["anisotropy"] == pytest.approx(4.0)
    assert d["unit"] == "mm^2"


def test_profile_3d_mm3_and_diagonal_connectivity():
    v = np.zeros((6, 6, 6), int)
    v[0, 0, 0] = v[1, 1, 1] = 1   # corner-touching: one component under 26-connectivity
    v[3:5, 3:5, 3:5] = 1          # 8-voxel cube, all on its boundary
    p = profile_dataset(_ds([v], spacing=(2.0, 1.0, 1.0)))
    fg = p["classes"]["fg"]
    assert fg["objects_per_case"]["median"] == 2.0
    assert fg["object_size_mm"]["median"] == pytest.approx(np.median([2, 8]) * 2.0)
    assert fg["boundary_fraction"] == pytest.approx(1.0)
    assert p["dataset"]["unit"] == "mm^3"


def test_profile_multiclass_and_never_occurring_class():
    a = np.zeros((10, 10), int)
    a[0:5, :] = 1
    p = profile_dataset(_ds([a], names=("bg", "big", "never")))
    assert p["classes"]["big"]["voxel_fraction"] == 0.5
    never = p["classes"]["never"]
    assert never["voxel_fraction"] == 0.0 and math.isinf(never["bg_fg_ratio"])
    assert never["absent_fraction"] == 1.0 and never["objects_per_case"]["max"] == 0.0
    # the border of the image is not a boundary: a band touching three image edges has one boundary row
    assert p["classes"]["big"]["boundary_fraction"] == pytest.approx(10 / 50)


def test_thinness_tells_thin_from_small_compact_objects():
    line = np.zeros((40, 40), int)
    line[20, 2:38] = 1                       # a 1-voxel wide line of 36 voxels
    disk = (np.hypot(*np.mgrid[-20:20, -20:20]) < 12).astype(int)
    dots = np.zeros((40, 40), int)
    dots[5:7, 5:7] = dots[20:22, 30:32] = 1  # tiny compact objects: all boundary
    thin = profile_dataset(_ds([line]))["classes"]["fg"]["thinness"]
    compact = profile_dataset(_ds([disk]))["classes"]["fg"]["thinness"]
    small = profile_dataset(_ds([dots]))["classes"]["fg"]["thinness"]
    assert thin > 1.5 and 0.8 < compact < 1.2 and small <= 1.0


def test_boundary_voxels_thin_versus_compact():
    line = np.zeros((30, 30), bool)
    line[15, 2:28] = True
    disk = np.hypot(*np.mgrid[-15:15, -15:15]) < 10
    assert boundary_voxels(line) == line.sum()
    assert boundary_voxels(disk) / disk.sum() < 0.25
    assert boundary_voxels(np.zeros((4, 4), bool)) == 0


def test_components_cc3d_equals_scipy():
    require("cc3d")
    rng = np.random.default_rng(0)
    for shape in ((40, 40), (16, 16, 16)):
        m = rng.random(shape) < 0.3
        structure = ndimage.generate_binary_structure(m.ndim, m.ndim)
        lab, n = ndimage.label(m, structure=structure)
        ref = np.sort(np.bincount(lab.ravel())[1:])
        assert np.array_equal(np.sort(components(m)), ref)


# ---- regime, rules and evidence -------------------------------------------------------------


def _profile(ratio, objects=1.0, p10=500.0, boundary=0.1, absent=0.0, dims=2, classes=None, thinness=1.0):
    one = {
        "bg_fg_ratio": ratio, "objects_per_case": {"median": objects, "mean": objects, "max": objects},
        "object_size_voxels": {"median": p10 * 2, "p10": p10}, "boundary_fraction": boundary,
        "absent_fraction": absent, "thinness": thinness,
    }
    return {"dataset": {"spatial_dims": dims, "anisotropy": 1.0, "classes": 1}, "classes": classes or {"fg": one}}


NO_EVIDENCE = {"meta": {}, "rows": []}


def _losses(sl):
    return [c.loss for c in sl["shortlist"]]


def test_shortlist_always_has_baseline_first_and_3_to_6_entries():
    for prof in (_profile(3.0), _profile(40.0), _profile(500.0, objects=4, p10=8, boundary=0.7),
                 _profile(2000.0, absent=0.5)):
        sl = shortlist(prof, evidence=NO_EVIDENCE)
        losses = _losses(sl)
        assert losses[0].startswith(BASELINE)
        assert 3 <= len(losses) <= 6
        assert len(set(losses)) == len(losses)
        assert all(c.reasons for c in sl["shortlist"])


def test_rules_follow_the_profile():
    mild = _losses(shortlist(_profile(5.0), evidence=NO_EVIDENCE))
    assert "dice" in mild and "dice_topk(topk.k=10)" in mild
    high = shortlist(_profile(500.0, objects=3, p10=8), evidence=NO_EVIDENCE)
    assert "dice_topk(topk.k=10)" in _losses(high) and "focal_tversky" in _losses(high)
    reasons = " ".join(r for c in high["shortlist"] for r in c.reasons)
    assert "500:1" in reasons and "8 voxels" in reasons  # reasons cite the profile's numbers
    absent = _losses(shortlist(_profile(50.0, absent=0.4), evidence=NO_EVIDENCE))
    assert absent[0] == "dice_ce(dice.batch=true)"
    thin = shortlist(_profile(300.0, boundary=0.8, thinness=3.0), evidence=NO_EVIDENCE)
    assert any("thin structure" in r for c in thin["shortlist"] for r in c.reasons)
    # small compact objects lie on their boundary too, but are not thin structures
    blobs = shortlist(_profile(300.0, p10=8, boundary=0.9, thinness=1.0), evidence=NO_EVIDENCE)
    assert not any("thin structure" in r for c in blobs["shortlist"] for r in c.reasons)


def test_regime_uses_hardest_class_and_rejects_empty():
    classes = {
        "a": _profile(10.0)["classes"]["fg"],
        "b": _profile(900.0, boundary=0.6)["classes"]["fg"],
    }
    r = regime_of(_profile(0, classes=classes))
    assert r["hardest_class"] == "b" and r["ratio_spread"] == pytest.approx(90.0)
    with pytest.raises(ValueError, match="no foreground class"):
        regime_of(_profile(math.inf))


def _evidence(tmp_path):
    text = "\n".join([
        "# command: python benchmarks/evidence.py --test",
        "# date: 2026-01-01",
        "regime,spatial_dims,log10_bg_fg,objects_per_case,boundary_fraction,thinness,loss,rank_score,mean_dsc,mean_nsd,n_cases,seeds,folds",
        "mild,2,0.5,1,0.05,1.0,dice_ce,0.5,0.9,0.9,10,0;1,3",
        "mild,2,0.5,1,0.05,1.0,dice,0.0,0.92,0.9,10,0;1,3",
        "mild,2,0.5,1,0.05,1.0,ce,1.0,0.8,0.8,10,0;1,3",
        "tiny,2,2.7,3,0.6,2.5,dice_ce,1.0,0.5,0.5,10,0;1,3",
        "tiny,2,2.7,3,0.6,2.5,focal_tversky,0.0,0.6,0.6,10,0;1,3",
        "tiny,2,2.7,3,0.6,2.5,iou,0.2,0.55,0.6,10,0;1,3",
    ])
    path = tmp_path / "ev.csv"
    path.write_text(text + "\n")
    return path


def test_evidence_orders_the_shortlist(tmp_path):
    ev = load_evidence(_evidence(tmp_path))
    assert ev["meta"]["command"].startswith("python benchmarks/evidence.py")
    prof = _profile(500.0, objects=3, p10=8, boundary=0.6, thinness=2.5)
    near = nearest_regimes(regime_of(prof), ev)
    assert near[0]["regime"] == "tiny" and near[0]["weight"] > near[1]["weight"]
    sl = shortlist(prof, evidence=ev)
    losses = _losses(sl)
    assert losses[0] == "dice_ce"                    # the baseline stays first
    assert losses[1] == "focal_tversky"              # best measured in the nearest regime
    ft = sl["shortlist"][1]
    assert ft.evidence_score is not None and ft.evidence_score < 0.5
    assert "iou" in losses                           # measured top quarter joins without a rule


def test_evidence_table_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("regime,loss\nx,dice\n")
    with pytest.raises(ValueError, match="missing columns"):
        load_evidence(bad)


def test_shipped_evidence_table_is_readable_and_covers_the_regimes():
    ev = load_evidence()
    assert ev["rows"], "seglosses/data/evidence.csv is missing or empty"
    for key in ("command", "date"):
        assert ev["meta"].get(key), f"evidence table lacks '# {key}:'"
    regimes = {r["regime"]: r for r in ev["rows"]}
    ratios = [r["log10_bg_fg"] for r in regimes.values()]
    assert min(ratios) <= 1.0 and max(ratios) >= 2.5     # about 1:10 to beyond 1:300
    assert {r["spatial_dims"] for r in regimes.values()} == {2, 3}
    assert any(r["thinness"] >= 1.5 for r in regimes.values())            # a thin regime
    assert any(r["objects_per_case"] >= 3 for r in regimes.values())      # a many-objects regime
    for regime in regimes:
        scores = [r["rank_score"] for r in ev["rows"] if r["regime"] == regime]
        assert min(scores) == 0.0 and all(0.0 <= s <= 1.0 for s in scores)


# ---- end to end ------------------------------------------------------------------------------


def test_recommend_builtin_task_and_json(tmp_path, capsys):
    from seglosses.cli import main

    out = tmp_path / "r.json"
    assert main(["recommend", "tumor", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Profile" in text and "Shortlist" in text and "tumor" in text
    doc = json.loads(out.read_text())
    assert set(doc) >= {"profile", "shortlist", "confirmed"}
    assert doc["confirmed"] is None
    assert doc["shortlist"][0]["loss"].startswith(BASELINE)
    for c in doc["shortlist"]:
        assert set(c) == {"loss", "reasons", "evidence_score"} and c["reasons"]
    assert doc["profile"]["classes"]["tumor"]["bg_fg_ratio"] > 100


def test_recommend_json_to_stdout_is_pure_json(capsys):
    from seglosses.cli import main

    assert main(["recommend", "liver", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["profile"]["dataset"]["name"] == "liver"


def test_recommend_errors_name_the_argument(capsys):
    from seglosses.cli import main

    assert main(["recommend", "/no/such/folder"]) == 2
    err = capsys.readouterr().err
    assert "DATA" in err and "/no/such/folder" in err


def test_recommend_every_builtin_task():
    from seglosses.bench.synthetic import TASKS, make_task

    for name in TASKS:
        for dims in TASKS[name].dims:
            doc = recommend(make_task(name, n_cases=4, spatial_dims=dims, size=32 if dims == 3 else 64))
            assert 3 <= len(doc["shortlist"]) <= 6


def test_recommend_on_2d_folder_and_decathlon_layouts(tmp_path, capsys):
    from seglosses.cli import main

    from test_bench_e2e import make_decathlon, make_folder_2d

    folder = make_folder_2d(tmp_path / "f2d")
    assert main(["recommend", str(folder), "--json", str(tmp_path / "a.json")]) == 0
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["profile"]["dataset"]["spatial_dims"] == 2
    msd = make_decathlon(tmp_path / "msd")
    assert main(["recommend", str(msd), "--json", str(tmp_path / "b.json")]) == 0
    doc = json.loads((tmp_path / "b.json").read_text())
    d = doc["profile"]["dataset"]
    assert d["spatial_dims"] == 3 and d["unit"] == "mm^3"
    assert 3 <= len(doc["shortlist"]) <= 6
    capsys.readouterr()


def test_confirm_end_to_end_on_tiny_data(tmp_path):
    """--confirm: the shortlist is benchmarked on the data, the winner is tested against the
    baseline, and the report shows the profile and the reasons."""
    from seglosses.recommend import confirm, format_recommendation, recommend, load_data

    from test_bench_e2e import make_folder_2d

    folder = make_folder_2d(tmp_path / "f2d", n=6)
    doc = recommend(load_data(str(folder)), max_losses=3)
    out = tmp_path / "confirm"
    tiny = ["--iterations", "4", "--batch-size", "2", "--patch-size", "32", "--quiet", "--workers", "1"]
    conf = confirm(doc, str(folder), out=str(out), extra_args=tiny)
    assert conf["winner"] in [c["loss"] for c in doc["shortlist"]]
    assert conf["baseline"] == doc["shortlist"][0]["loss"]
    assert sorted(conf["ranking"]) == sorted(c["loss"] for c in doc["shortlist"])
    assert isinstance(conf["significant"], bool)
    assert (out / "report.html").exists()
    md = (out / "report.md").read_text()
    assert "Why these losses" in md and doc["shortlist"][1]["reasons"][0][:40] in md
    doc["confirmed"] = conf
    text = "\n".join(format_recommendation(doc))
    assert "winner:" in text and "report.html" in text
    # a second confirmation resumes: nothing is trained again, the same winner comes back
    again = confirm(doc, str(folder), out=str(out), extra_args=tiny)
    assert again["winner"] == conf["winner"]
