"""The report renders offline in headless Chromium and every figure loads.

Debian's ``chromium`` is needed: the test FAILS when it is missing and ``CI`` is set, and is
skipped elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from seglosses.bench.presets import LossConfig
from seglosses.bench.report import write_report
from seglosses.bench.runner import BenchConfig, run_bench

CHECK_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-total', String(imgs.length));
  document.body.setAttribute('data-images-loaded', String(ok));
});
</script>
"""


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("headless Chromium is required in CI to render report.html (apt-get install chromium)")
    pytest.skip("chromium not installed")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_report")
    cfg = BenchConfig(
        out=str(out),
        tasks=["liver", "multiorgan"],
        losses=[LossConfig("ce", "ce"), LossConfig("dice", "dice")],
        iterations=4,
        epoch_length=2,
        batch_size=2,
        patch_size=32,
        image_size=32,
        n_cases=6,
        progress=False,
        report=False,
    )
    run_bench(cfg, log=lambda *a: None)
    write_report(out, n_bootstrap=20)
    return out


def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    chromium = _chromium()
    html = (report_dir / "report.html").read_text()
    n_expected = html.count("<img ")
    assert n_expected >= 8  # 2 violins, ranking, 2 stability, 2 overlays, 2 curves
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", CHECK_SCRIPT + "</body>"))
    profile = tmp_path / "profile"
    cmd = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    total = re.search(r'data-images-total="(\d+)"', dom)
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    assert total and loaded, f"the check script did not run; stderr: {result.stderr[-1000:]}"
    assert int(total.group(1)) == n_expected
    assert int(loaded.group(1)) == n_expected, f"{loaded.group(1)} of {n_expected} images loaded"
    assert "What to use" in dom and "Table 2" in dom

    shot = tmp_path / "shot.png"
    cmd_shot = cmd[:-2] + [
        f"--screenshot={shot}",
        "--window-size=1200,3000",
        (report_dir / "report.html").as_uri(),
    ]
    subprocess.run(cmd_shot, capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000


def test_report_is_self_contained(report_dir):
    html = (report_dir / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", html), "external reference in report.html"
    assert "<script" not in html and "<link" not in html and "@import" not in html
    md = (report_dir / "report.md").read_text()
    for rel in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (report_dir / rel).is_file(), rel
    # tables: both tasks, both losses, DSC and NSD per task
    table2 = md.split("## Mean DSC and NSD")[1].split("\n## ")[0]
    assert "liver DSC" in table2 and "multiorgan NSD" in table2 and "mean DSC" in table2
    assert "| ce " in table2 and "| dice " in table2
