"""The report opened in a real headless browser (Debian's Chromium, driven by Playwright).

What a reader sees is checked on the rendered page, not on the HTML source: no Markdown syntax
is left in the visible text, every image loads (``naturalWidth > 0``), every link leads to a
file of the report folder or to an element of the page, and the summary is on the first screen.
Pages: the demo study's report (``amuro demo``, run here), the paper's released results, and
studies that lack some analyses.

The browser is the system's Chromium (``$AMURO_CHROMIUM``, else ``chromium`` on the PATH). When
it is missing, the session fixture installs Debian's package with apt-get if it runs as root;
otherwise, or if that fails, these tests skip and say why. ``AMURO_REPORT_SCREENSHOT=PATH``
saves the demo report's first screen there (how ``docs/img/report_first_screen.png`` is made).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from amuro_study.report import build_report, paper_report

RESULTS = Path(__file__).resolve().parent / "data" / "paper_results"
#: Launch flags that work in a container as root (no sandbox, no GPU, no network chatter);
#: Playwright adds --headless and a fresh --user-data-dir itself.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"]
FIRST_SCREEN = {"width": 1280, "height": 800}


def _find_chromium() -> str | None:
    env = os.environ.get("AMURO_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    return None


def _install_chromium() -> str:
    """apt-get install Debian's chromium; returns why it could not, or ''."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not root, so apt-get cannot install it"
    if not shutil.which("apt-get"):
        return "no apt-get on this machine"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    log = ""
    for cmd in (install, ["apt-get", "update", "-q"], install):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"{' '.join(cmd)}: {err}"
        log = (proc.stdout + proc.stderr)[-600:]
        if cmd is install and proc.returncode == 0 and _find_chromium():
            return ""
    return f"apt-get install chromium failed: {log}"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium (installed with apt-get when missing and possible), or a skip."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install 'amuro[test]')")
    env = os.environ.get("AMURO_CHROMIUM")
    if env and not Path(env).is_file():
        pytest.skip(f"AMURO_CHROMIUM={env} is not a file")
    path = _find_chromium()
    if path is None:
        why = _install_chromium()
        path = _find_chromium()
        if path is None:
            print(f"\nskipping the browser tests: no Chromium ({why})", file=sys.stderr)
            pytest.skip(f"no Chromium to open the report in: {why}")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


_INSPECT = """() => ({
  text: document.body.innerText,
  summary: (document.querySelector('main .summary') || {innerText: ''}).innerText,
  images: [...document.images].map(i => ({src: i.getAttribute('src'), url: i.src,
                                          complete: i.complete, width: i.naturalWidth})),
  links: [...document.querySelectorAll('a[href]')].map(a => ({href: a.getAttribute('href'),
                                                              url: a.href})),
  ids: [...document.querySelectorAll('[id]')].map(e => e.id),
  tables: document.querySelectorAll('main table').length,
  cards: [...document.querySelectorAll('.summary .card')].map(c => {
      const r = c.getBoundingClientRect(); return {id: c.id, top: r.top, bottom: r.bottom}}),
  firstSection: (() => { const s = document.querySelector('main section.part');
                         return s ? s.getBoundingClientRect().top : null })(),
})"""


def open_report(browser: Any, report_dir: Path, screenshot: Path | None = None
                ) -> dict[str, Any]:
    """Open ``report.html`` at a 1280 x 800 screen, wait for every image, return what the
    page shows (text, images, links, ids, tables, summary cards); optionally screenshot the
    first screen."""
    page = browser.new_page(viewport=FIRST_SCREEN)
    try:
        page.goto((report_dir / "report.html").resolve().as_uri(), wait_until="load")
        page.wait_for_function("[...document.images].every(i => i.complete)", timeout=30_000)
        if screenshot is not None:
            page.screenshot(path=str(screenshot))
        return page.evaluate(_INSPECT)
    finally:
        page.close()


def check_page(seen: dict[str, Any], report_dir: Path) -> None:
    """The page reads as a rendered report: no raw Markdown, images load, links resolve."""
    text = seen["text"]
    for raw in ("**", "`", "](", "|---", "\\*", "\\_", "\\|"):
        assert raw not in text, f"raw Markdown {raw!r} visible: ...{_around(text, raw)}..."
    hashes = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert not hashes, f"lines starting with '#': {hashes[:3]}"
    assert seen["images"], "no image on the page"
    for img in seen["images"]:
        assert img["complete"] and img["width"] > 0, f"image did not load: {img['src']}"
        assert _local_file(img["url"], report_dir).is_file()
    ids = set(seen["ids"])
    assert seen["links"], "no link on the page"
    for a in seen["links"]:
        href = a["href"]
        if href.startswith("#"):
            assert href[1:] in ids, f"link to a missing anchor: {href}"
        else:
            path = _local_file(a["url"], report_dir)
            assert path.is_file(), f"link to a missing file: {href}"


def _local_file(url: str, report_dir: Path) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file", f"not a file of the report: {url}"
    path = Path(unquote(parsed.path)).resolve()
    assert path.is_relative_to(report_dir.resolve()), f"outside the report folder: {url}"
    return path


def _around(text: str, needle: str) -> str:
    i = text.find(needle)
    return text[max(0, i - 60):i + 60]


def check_summary_first(seen: dict[str, Any]) -> None:
    """The summary cards come before the sections, and the first card is on the first screen."""
    assert seen["cards"], "no summary card"
    first = seen["cards"][0]
    assert first["top"] < FIRST_SCREEN["height"] - 100, first
    assert all(c["bottom"] <= seen["firstSection"] for c in seen["cards"])


# ============================================================================ the pages
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """``amuro demo`` as a user runs it: from a working folder, into ./amuro-demo."""
    cwd = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "-m", "amuro_study.cli", "demo", "--output-dir",
                           "amuro-demo"], capture_output=True, text=True, timeout=1200, cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, cwd / "amuro-demo"


@pytest.mark.slow
def test_the_demo_shows_something(demo: tuple[subprocess.CompletedProcess, Path]) -> None:
    """Issue 13's done-when: `amuro demo` prints where its report is; the base checkpoints
    differ; an in-domain gain's 95% CI excludes 0; both groups of the dichotomy are there;
    the report says first that this is a synthetic world, and what it shows. (No browser.)"""
    import pandas as pd

    proc, out = demo
    report_dir = out / "report"
    assert f"report: {(report_dir / 'report.md').resolve()}" in proc.stdout
    tables = report_dir / "tables"
    perf = pd.read_csv(tables / "performance.csv")
    base = perf[perf["variant"].eq("base")]
    assert (base.groupby("eval_set")["value"].nunique() > 1).any(), base
    gain = pd.read_csv(tables / "gain_ci.csv")
    assert ((gain["ci_low"] > 0) | (gain["ci_high"] < 0)).any(), gain
    assert set(pd.read_csv(tables / "dichotomy.csv")["detected"]) == {"pre-training",
                                                                     "fine-tuning"}
    md = (report_dir / "report.md").read_text()
    assert "## Summary" in md
    lead = md.split("## Summary")[0]
    assert "synthetic world, not a claim about real models" in lead and "What it shows" in lead
    assert "fatal" not in proc.stdout + proc.stderr
    # the Table 5 card: the detected groups beside the paper's, each pooled over checkpoints
    card = md.split("### Gain from fine-tuning by group")[1].split("Details:")[0]
    for group, eval_set in (("Learned in Pre-train", "xsum"),
                            ("Learned in Fine-Tune", "mnli_matched")):
        (line,) = [x for x in card.splitlines() if f"{group}, detected (`{eval_set}`)" in x]
        pooled = gain[gain["eval_set"].eq(eval_set)]["raw_change"].mean()
        assert line.split("|")[-2].strip().startswith(f"{pooled:+.3f} ["), (line, pooled)


@pytest.mark.slow
def test_demo_report_in_a_browser(browser: Any, demo: tuple[subprocess.CompletedProcess, Path],
                                  tmp_path: Path) -> None:
    """``amuro demo`` end to end, then its report.html in Chromium."""
    _, out = demo
    report_dir = out / "report"
    shot = Path(os.environ.get("AMURO_REPORT_SCREENSHOT") or tmp_path / "first_screen.png")
    seen = open_report(browser, report_dir, screenshot=shot)
    check_page(seen, report_dir)
    check_summary_first(seen)
    assert shot.stat().st_size > 10_000
    # every figure the demo can reproduce, every table rendered as a table
    srcs = sorted({i["src"] for i in seen["images"]})  # each figure, and its thumbnail
    assert srcs == ["plots/figure2_performance.png", "plots/figure4_gain_by_group.png",
                    "plots/figure5_formats.png", "plots/figure7_ood.png"]
    md = (report_dir / "report.md").read_text()
    assert seen["tables"] == md.count("\n|---")
    assert {c["id"] for c in seen["cards"]} >= {
        "gain-from-fine-tuning-by-group-table-5", "out-of-domain-change-figure-7"}
    assert "Table 5" in seen["text"] and "95% CI" in seen["text"]
    lead = seen["text"][:seen["text"].index("Summary")]  # on the page: what it shows, first
    assert "synthetic world, not a claim about real models" in lead and "What it shows" in lead


def test_paper_report_in_a_browser(browser: Any, tmp_path: Path) -> None:
    """The paper's released results: the headline numbers are on the first screen."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = paper_report(tmp_path / "paper", RESULTS)
    seen = open_report(browser, report.parent)
    check_page(seen, report.parent)
    check_summary_first(seen)
    summary = seen["summary"]
    for number in ("+0.062", "+0.149", "+0.286", "+0.290", "-0.005", "-61.46%", "+0.31%"):
        assert number in summary, number
    assert "qqp" in seen["text"] and "Known-defective evaluation sets" in seen["text"]


@pytest.mark.parametrize("case", sorted(__import__("report_cases").DEGRADED))
def test_reports_of_partial_studies_in_a_browser(browser: Any, tmp_path: Path, case: str
                                                 ) -> None:
    """A base-only study, one checkpoint, no per-sample files: still a whole, working page."""
    from report_cases import DEGRADED, synthetic_study

    report = build_report(synthetic_study(tmp_path / "s", **DEGRADED[case]), tmp_path / "rep",
                          title=case)
    seen = open_report(browser, report.parent)
    check_page(seen, report.parent)
    check_summary_first(seen)


def test_shot_study_report_in_a_browser(browser: Any, tmp_path: Path) -> None:
    """Shot sets, 0 vs 4 shots and a collapsed model: the new cards, section and figure render
    (issue 14)."""
    from report_cases import shot_study

    from amuro_study.report import COLLAPSE, SHOTS
    from amuro_study.report_doc import anchor

    df = shot_study(tmp_path / "s", collapsed=(("mnli", 3000, 1234),))
    report = build_report(df, tmp_path / "rep", title="shot sets")
    seen = open_report(browser, report.parent)
    check_page(seen, report.parent)
    check_summary_first(seen)
    assert {"shot-sensitivity", "label-collapse"} <= {c["id"] for c in seen["cards"]}
    assert {anchor(SHOTS), anchor(COLLAPSE)} <= set(seen["ids"])
    assert "plots/shot_sensitivity.png" in {i["src"] for i in seen["images"]}
    assert "contradiction (1.00)" in seen["summary"]
