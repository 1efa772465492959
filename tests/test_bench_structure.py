"""The benchmark's structure: the results layer, the executors' protocol, report sections that
fail visibly, and no silent fallbacks (broken sub-commands, misspelt preset options).

These tests build small results stores by hand (no training), so they run in seconds.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from seglosses.bench import report as report_mod
from seglosses.bench.executors import EXECUTORS, Executor, choices, get_executor
from seglosses.bench.results import (
    CASE_COLUMNS,
    case_table,
    export_csv,
    load_results,
    select_runs,
    summary_lines,
)
from seglosses.bench.store import ResultStore
from seglosses.metrics import METRIC_KEYS

CASES = [f"c{i}" for i in range(6)]


def _store(out, runs):
    """A results store with one task ``liver`` (6 test cases) and the given runs:
    ``(loss, lr, status, val_dice, dsc_per_case)``."""
    store = ResultStore(out, create=True)
    label = np.zeros((8, 8), np.int16)
    label[2:5, 2:5] = 1
    store.put_task(
        {
            "task": "liver",
            "label_names": ["background", "liver"],
            "num_classes": 2,
            "in_channels": 1,
            "spatial_dims": 2,
            "train_dims": 2,
            "source": "synthetic (test)",
            "description": "hand-made",
            "class_ratios": {"liver": 6.0},
            "split": {"train": ["t0", "t1"], "val": ["v0"], "test": CASES},
            "n_cases": 9,
        },
        [(c, -1, -1, np.linspace(0, 1, 64).reshape(8, 8), label) for c in CASES],
    )
    for loss, lr, status, val_dice, dsc in runs:
        metrics = []
        if status == "finished":
            for c, d in zip(CASES, dsc):
                metrics.append(
                    {"case_id": c, "label": 1, "label_name": "liver", **{k: float(d) for k in METRIC_KEYS}}
                )
        store.record_run(
            {
                "task": "liver",
                "loss": loss,
                "spec": loss,
                "options": {},
                "lr": lr,
                "seed": 0,
                "status": status,
                "reason": None if status == "finished" else "loss became nan",
                "val_dice": val_dice,
                "config": {},
            },
            metrics,
            [{"stage": 0, "epoch": 0, "iteration": 2, "train_loss": 0.5, "val_dice": val_dice, "lr": lr}],
            [(c, -1, -1, label) for c in CASES] if status == "finished" else [],
        )
    store.close()
    return out


GOOD = np.linspace(0.8, 0.9, 6)
BAD = np.linspace(0.1, 0.2, 6)
MID = np.linspace(0.4, 0.6, 6)


@pytest.fixture
def out(tmp_path):
    return _store(
        tmp_path / "out",
        [
            ("dice", 3e-3, "finished", 0.7, GOOD),
            ("dice", 3e-4, "finished", 0.6, BAD),  # lower validation Dice: not selected
            ("ce", 3e-3, "finished", 0.5, MID),
            ("focal", 3e-3, "failed", None, None),
        ],
    )


# ---------------------------------------------------------------------------------------------
# results layer
# ---------------------------------------------------------------------------------------------


def test_case_columns_come_from_the_metric_names():
    from seglosses.metrics import TOPOLOGY_KEYS

    assert sorted(CASE_COLUMNS) == sorted(METRIC_KEYS + TOPOLOGY_KEYS) and CASE_COLUMNS[:3] == ("dsc", "nsd", "hd95")
    assert CASE_COLUMNS[-len(TOPOLOGY_KEYS):] == TOPOLOGY_KEYS  # present only where a store has them


def test_select_runs_picks_the_best_validation_dice(out):
    res = load_results(out)
    sel = res.selected.set_index("loss")
    assert sel.loc["dice", "lr"] == 3e-3 and sel.loc["focal", "status"] == "failed"
    assert list(res.selected["loss"]) == ["ce", "dice", "focal"]  # sorted by task, loss
    cases = res.cases
    assert set(cases["method"]) == {"dice", "ce", "focal"}
    np.testing.assert_allclose(cases[cases["method"] == "dice"]["dsc"], GOOD)
    assert cases[cases["method"] == "focal"]["dsc"].isna().all() and len(cases[cases["method"] == "focal"]) == 6


def test_select_runs_ties_and_failures():
    runs = pd.DataFrame(
        {
            "run_id": [1, 2, 3, 4],
            "task": ["t"] * 4,
            "loss": ["a", "a", "b", "b"],
            "lr": [1e-3, 1e-2, 1e-3, 1e-2],
            "seed": [0] * 4,
            "status": ["finished", "finished", "finished", "failed"],
            "val_dice": [0.5, 0.5, 0.1, None],
        }
    )
    sel = select_runs(runs).set_index("loss")["run_id"]
    assert sel["a"] == 2  # a tie goes to the larger learning rate
    assert sel["b"] == 3  # a finished run beats a failed one


def test_select_runs_averages_replicates_and_keeps_them_all():
    # two seeds per learning rate: lr 1e-2 wins on the mean (0.6 vs 0.55) although 1e-3 has the best single run
    runs = pd.DataFrame(
        {
            "run_id": [1, 2, 3, 4],
            "task": ["t"] * 4,
            "loss": ["a"] * 4,
            "lr": [1e-3, 1e-3, 1e-2, 1e-2],
            "seed": [0, 1, 0, 1],
            "status": ["finished"] * 4,
            "val_dice": [0.9, 0.2, 0.6, 0.6],
        }
    )
    assert select_runs(runs)["run_id"].tolist() == [3, 4]


def test_export_csv_and_summary_use_the_same_selection(out, tmp_path):
    paths = export_csv(out, tmp_path / "csv")
    rank = pd.read_csv(paths["rank"])
    assert list(rank.columns[:5]) == ["method", "task", "case", "lr", "status"]
    from seglosses.metrics import TOPOLOGY_KEYS

    assert list(rank.columns[5:]) == [c for c in CASE_COLUMNS if c not in TOPOLOGY_KEYS]  # no topology task here
    assert sorted(rank["method"].unique()) == ["ce", "dice", "focal"] and (rank[rank.method == "dice"].lr == 3e-3).all()
    tidy = pd.read_csv(paths["tidy"])
    assert tidy.groupby("lr")["selected"].all().to_dict() == {3e-4: False, 3e-3: True}
    with ResultStore(out, create=False, readonly=True) as store:
        lines = summary_lines(store)
    marked = [line for line in lines if "*" in line]
    assert len(marked) == 1 and "dice" in marked[0] and "3e-03" in marked[0]
    assert any("failed: loss became nan" in line for line in lines)
    assert case_table(load_results(out).runs, pd.DataFrame(columns=["run_id", "case_id"]), {}).empty


# ---------------------------------------------------------------------------------------------
# report sections
# ---------------------------------------------------------------------------------------------


def test_report_lists_every_section_and_renders_both_formats(out):
    names = [n for n, _ in report_mod.SECTIONS]
    for expected in ("Table 2", "Jadon tables", "violins", "ranking", "hardest cases", "training curves", "runs"):
        assert expected in names
    with warnings.catch_warnings():
        warnings.simplefilter("error", report_mod.ReportSectionWarning)  # no section may fail here
        paths = report_mod.write_report(out, n_bootstrap=20)
    md = paths["md"].read_text()
    html = paths["html"].read_text()
    for title in ("## What to use", "## Mean DSC and NSD", "## Ranking", "## Rank stability", "## Runs"):
        assert title in md
    assert "Error" not in md and 'class="error"' not in html
    ctx = report_mod.ReportContext(load_results(out), out, out / "figures", n_bootstrap=20)
    one = report_mod.render_section("Table 2", report_mod.section_table2, ctx)
    assert one.error is None and "<table>" in one.html and "| dice |" in one.markdown.replace("**", "")


def test_a_failing_section_shows_an_error_block_and_warns(out, monkeypatch, caplog):
    def broken(ctx):
        raise RuntimeError("injected failure")

    sections = list(report_mod.SECTIONS)
    i = [n for n, _ in sections].index("violins")
    sections[i] = ("violins", broken)
    monkeypatch.setattr(report_mod, "SECTIONS", sections)
    with pytest.warns(report_mod.ReportSectionWarning, match="'violins' failed: RuntimeError: injected failure"):
        paths = report_mod.write_report(out, n_bootstrap=20)
    md = paths["md"].read_text()
    html = paths["html"].read_text()
    assert "> **Error:** The report section 'violins' could not be produced (RuntimeError: injected failure)" in md
    assert '<div class="error" role="alert">' in html and "injected failure" in html
    # the other sections are still there, in order
    assert md.index("## Mean DSC and NSD") < md.index("**Error:**") < md.index("## Ranking")
    assert any("injected failure" in r.getMessage() for r in caplog.records)


def test_a_report_section_is_one_function_and_one_line(out, monkeypatch):
    def extra(ctx):
        return [report_mod.Block("h2", "Extra"), report_mod.Block("p", f"{len(ctx.tasks)} task(s)")]

    monkeypatch.setattr(report_mod, "SECTIONS", list(report_mod.SECTIONS) + [("extra", extra)])
    md = report_mod.write_report(out, n_bootstrap=20)["md"].read_text()
    assert md.rstrip().endswith("## Extra\n\n1 task(s)")


# ---------------------------------------------------------------------------------------------
# executors
# ---------------------------------------------------------------------------------------------


def test_executor_registry_and_errors():
    assert set(EXECUTORS) >= {"local", "thread", "process"}
    assert choices() == [n for n in EXECUTORS if n != "local"]
    for name, cls in EXECUTORS.items():
        assert issubclass(cls, Executor) and cls.name == name
    with pytest.raises(ValueError, match=r"--executor: expected 'thread' or 'process'.*got 'ray-typo'"):
        get_executor("ray-typo")


class _Listing(Executor):
    """A minimal executor: results in reverse order, one worker failure."""

    name = "listing"

    def submit(self, jobs):
        self.jobs, self.cancelled = list(jobs), False

    def results(self):
        for job in reversed(self.jobs):
            if job["lr"] < 0:
                yield job, RuntimeError("node lost")
            else:
                yield job, {"job": job["lr"]}

    def cancel(self):
        self.cancelled = True


def test_executor_protocol_yields_results_and_failures_and_cancels_on_early_exit():
    ex = _Listing()
    jobs = [{"lr": 1.0}, {"lr": -1.0}, {"lr": 2.0}]
    got = list(ex.run(jobs))
    assert [j["lr"] for j, _ in got] == [2.0, -1.0, 1.0] and isinstance(got[1][1], RuntimeError)
    assert not ex.cancelled
    gen = ex.run(jobs)
    next(gen)
    gen.close()  # the driver stops early (Ctrl-C, an error while recording)
    assert ex.cancelled


def test_a_worker_failure_is_recorded_as_a_failed_run():
    from seglosses.bench.job import failed_result

    job = {
        "task": "liver",
        "loss": {"name": "dice", "spec": "dice", "options": {}},
        "lr": 3e-3,
        "train": {"seed": 4},
    }
    r = failed_result(job, RuntimeError("worker died"))
    assert r["run"]["status"] == "failed" and r["run"]["seed"] == 4
    assert r["run"]["reason"] == "worker error: RuntimeError: worker died" and r["metrics"] == []


# ---------------------------------------------------------------------------------------------
# no silent fallbacks
# ---------------------------------------------------------------------------------------------


def test_a_broken_subcommand_is_listed_and_errors(monkeypatch, capsys):
    from seglosses import cli

    monkeypatch.setattr(
        cli, "COMMANDS", list(cli.COMMANDS) + [("ghost", "seglosses._no_such_module", "a command that cannot import")]
    )
    parser = cli.build_parser()
    assert "ghost" in parser.format_help() and "seglosses._no_such_module" in parser.format_help()
    assert cli.main(["ghost", "--anything"]) == 2
    err = capsys.readouterr().err
    assert "command 'ghost' is unavailable" in err
    assert "seglosses._no_such_module" in err and "ModuleNotFoundError" in err
    assert cli.main(["losses", "dice"]) == 0  # the others still work


def test_a_subcommand_module_without_its_functions_is_a_programming_error(monkeypatch):
    from seglosses import cli

    monkeypatch.setattr(cli, "COMMANDS", [("nothing", "seglosses.bench.results", "no configure_nothing")])
    with pytest.raises(AttributeError, match="configure_nothing, run_nothing"):
        cli.build_parser()


@pytest.mark.parametrize(
    "spec, options, match",
    [
        ("topk", {"kk": 10}, r"loss 'topk': unknown option 'kk'; did you mean 'k'\?"),
        ("dice_ce", {"dcie": {"batch": True}}, r"loss 'dice_ce': unknown option 'dcie'; did you mean 'dice'"),
        ("dice_ce", {"dice": {"bacth": True}}, r"loss 'dice_ce: dice': unknown option 'bacth'; did you mean 'batch'"),
    ],
)
def test_a_misspelt_preset_option_is_an_error(monkeypatch, spec, options, match):
    from seglosses.bench import presets

    preset = presets.Preset(**{**presets.QUICK.__dict__, "losses": (presets._c("x", spec, options),)})
    with pytest.raises(ValueError, match=match):
        presets.resolve_preset_losses(preset)


def test_preset_term_options_must_be_a_dict():
    from seglosses.bench import presets

    preset = presets.Preset(**{**presets.QUICK.__dict__, "losses": (presets._c("x", "dice_ce", {"dice": 3}),)})
    with pytest.raises(TypeError, match="options of term 'dice' must be a dict"):
        presets.resolve_preset_losses(preset)


def test_every_preset_resolves_unchanged():
    from seglosses.bench import presets

    for preset in presets.PRESETS.values():
        losses, warnings_ = presets.resolve_preset_losses(preset)
        assert not warnings_
        by_name = {c.name: c.options for c in losses}
        for name, _, opts in preset.losses:
            assert by_name[name] == opts  # nothing dropped, nothing added
