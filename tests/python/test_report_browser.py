"""report.html in a real browser: headless Chromium opens pages from disk and
the tests read back the DOM it rendered (--dump-dom), its console (stderr)
and a screenshot.

    STALL_BUILD=build-web PYTHONPATH=build-web/python /usr/bin/python3 -m pytest -q tests/python/test_report_browser.py

- a real report: `stall run` of a small input-bound PyTorch training
  (num_workers=0, a CPU-heavy __getitem__); the verdict names the report's
  first finding, the charts are drawn, the operation and loader tables have
  rows, no script error happened, and the screenshot has the size asked for;
- error detection itself: a page with an injected uncaught error and an
  unhandled rejection must show both in #page-errors and on the console
  (so that "no error" above means something);
- degenerate reports (no series, no findings, nothing at all) render cleanly;
- comparison pages (schema stall.compare/1): two real runs (num_workers 0
  and 2), a run against an edited copy with known ratios, and broken
  comparisons.

The template (src/export/report.html.in) records uncaught errors and
unhandled rejections in a visible <div id="page-errors" data-count="N">;
the page logs nothing to the console, so any console message from it is a
failure too. Skipped only when no Chromium is installed.
"""

import copy
import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from stall import _native

from browser import CHROMIUM, Node, assert_no_errors, chromium, load, png_size  # noqa: E402  (tests/python)

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("STALL_BUILD", REPO / "build"))
STALL = BUILD / "stall"
PY = "/usr/bin/python3"
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")

INPUT_TYPES = {"DATA_LOADING", "INSUFFICIENT_WORKERS", "PREPROCESSING_BOTTLENECK", "SLOW_DISK_IO",
               "COLLATE_FUNCTION_SLOW", "SAMPLER_OVERHEAD", "BATCH_SIZE_INEFFICIENCY"}
WINDOW = (1280, 2000)

# A small training held up by its input: each sample costs FETCH_MS of CPU in
# __getitem__, the loader's worker count comes from argv[1].
TRAIN = textwrap.dedent("""
    import sys, time, torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
    torch.set_num_threads(1)
    WORKERS = int(sys.argv[1])
    FETCH_MS, STEP_MS, BATCHES, BS = 3.0, 2.0, 100, 8

    def busy(ms):
        end = time.perf_counter() + ms / 1000
        while time.perf_counter() < end:
            pass

    class Heavy(Dataset):
        def __len__(self):
            return BATCHES * BS
        def __getitem__(self, i):
            busy(FETCH_MS)
            return torch.full((16,), float(i)), i % 4

    def main():
        loader = DataLoader(Heavy(), batch_size=BS, num_workers=WORKERS)
        model = nn.Linear(16, 4)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        n = 0
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            busy(STEP_MS)
            n += 1
        print("batches", n)

    if __name__ == "__main__":
        main()
""")


# ----------------------------------------------------------------- a DOM


def screenshot(workdir, page, name):
    shot = Path(workdir) / name
    chromium(workdir, page, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars")
    assert shot.exists(), "Chromium wrote no screenshot"
    return shot


# --------------------------------------------------------------- the runs


def stall_run(workdir, workers):
    script = Path(workdir) / "train.py"
    if not script.exists():
        script.write_text(TRAIN)
    out = Path(workdir) / f"out-w{workers}"
    r = subprocess.run([str(STALL), "run", "--quiet", "--out", str(out), "--", PY, str(script), str(workers)],
                       capture_output=True, text=True, timeout=240, cwd=workdir)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "batches 100" in r.stdout
    rep = json.loads((out / "report.json").read_text())
    assert rep["schema"] == "stall.report/1"
    assert (out / "report.html").exists()
    return out, rep


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    assert STALL.exists(), f"no stall binary at {STALL}: build first (or set STALL_BUILD)"
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def input_bound(workdir):
    """The num_workers=0 run: (output dir, report)."""
    out, rep = stall_run(workdir, 0)
    assert rep["bottlenecks"] and rep["bottlenecks"][0]["type"] in INPUT_TYPES, rep["bottlenecks"]
    assert rep["loaders"][0]["num_workers"] == 0
    return out, rep


@pytest.fixture(scope="module")
def two_workers(workdir):
    """The same training with num_workers=2: (output dir, report)."""
    out, rep = stall_run(workdir, 2)
    assert rep["loaders"][0]["num_workers"] == 2
    return out, rep


@pytest.fixture(scope="module")
def real_page(workdir, input_bound):
    out, rep = input_bound
    return load(workdir, out / "report.html"), rep


def write_page(workdir, name, doc):
    page = Path(workdir) / name
    page.write_text(_native.render_report_html(doc if isinstance(doc, str) else json.dumps(doc)), encoding="utf-8")
    return page


# ------------------------------------------------------ one real report


def test_real_report_has_no_errors(real_page):
    pg, rep = real_page
    assert_no_errors(pg)
    assert pg.title() == "stall report \u2014 train.py"


def test_real_report_verdict_names_the_first_finding(real_page):
    pg, rep = real_page
    first = rep["bottlenecks"][0]
    v = pg.app.find("section", cls="verdict")
    assert v is not None
    assert v.find(cls="eyebrow").text() == "Main bottleneck"
    # the engine's own title, the words of the terminal summary
    assert v.find("h2").text() == first["title"], (v.find("h2").text(), first)
    assert f"costs {pct(first['severity'])} of wall time" in v.text()
    assert v.find("div", cls="meter") is not None
    # the suggestions, with their parameters as Python keywords
    for s in first["suggestions"]:
        assert s["action"] in v.text()
        for k, val in s["params"].items():
            if isinstance(val, (bool, int)):
                assert f"{k}={val}" in v.text()
    # the other findings in their own cards, by their titles too
    others = [c.find("h3").text() for c in pg.app.find_all("section", cls="finding")]
    assert others == [b["title"] for b in rep["bottlenecks"][1:3]]


def test_real_report_draws_charts(real_page):
    pg, rep = real_page
    charts = pg.app.find("div", cls="charts")
    assert charts is not None, "no charts section"
    svgs = charts.find_all("svg", cls="plot")
    assert len(svgs) > 0
    captions = [f.find("figcaption").find("b").text() for f in charts.find_all("figure")]
    assert captions[0] == "Throughput" and "CPU" in captions and "Memory" in captions
    # every chart has at least one drawn line with points
    for svg in svgs:
        lines = svg.find_all("path", cls="line")
        assert lines and all(re.match(r"M[\d.]+,[\d.]+", p.attrs["d"]) for p in lines), svg.attrs
        assert len(svg.find_all("text")) >= 4  # axis labels


def test_real_report_tables_have_rows(real_page):
    pg, rep = real_page
    ops = pg.app.find(id="t-ops")
    loaders = pg.app.find(id="t-loaders")
    assert ops is not None and loaders is not None
    op_rows = ops.find("tbody").find_all("tr")
    assert len(op_rows) == min(25, len(rep["ops"])) > 0
    shown = {r.find("td").text() for r in op_rows}
    assert {o["name"] for o in rep["ops"]} >= shown and any(n.endswith(".fetch") for n in shown)
    ld_rows = loaders.find("tbody").find_all("tr")
    assert len(ld_rows) == len(rep["loaders"]) >= 1
    assert ld_rows[0].find("td").text() == rep["loaders"][0]["id"]
    assert pg.app.find(id="t-procs") is not None


def test_real_report_screenshot(workdir, input_bound):
    out, rep = input_bound
    shot = screenshot(workdir, out / "report.html", "report.png")
    assert png_size(shot) == WINDOW
    assert shot.stat().st_size > 30_000, shot.stat().st_size  # a drawn page, not a blank one


def test_errors_are_detected(workdir, input_bound):
    """The checks above would be empty if errors went unseen: a page with an
    uncaught error and an unhandled rejection shows both, and Chromium's
    console says "Uncaught"."""
    out, rep = input_bound
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("\n  boot();\n") == 1
    page = page.replace("\n  boot();\n", "\n  boot();\n  Promise.reject(new Error('canary rejection'));\n"
                        "  null.canary_error;\n")
    bad = Path(workdir) / "broken.html"
    bad.write_text(page, encoding="utf-8")
    pg = load(workdir, bad)
    assert pg.page_errors == 2, pg.page_error_text
    assert "canary_error" in pg.page_error_text and "canary rejection" in pg.page_error_text
    assert any("canary_error" in u for u in pg.uncaught) and any("canary rejection" in u for u in pg.uncaught)
    assert pg.console  # the messages come with the page's URL as their source
    # the box is visible, above the report, which rendered before the error
    body = pg.dom.find("body")
    assert next(c for c in body.children if isinstance(c, Node)).attrs.get("id") == "page-errors"
    assert pg.app.find("section", cls="verdict") is not None


@pytest.mark.parametrize("case", ["no_series_no_findings", "missing_keys", "empty_object"])
def test_degenerate_reports_render_cleanly(workdir, input_bound, case):
    out, rep = input_bound
    r = copy.deepcopy(rep)
    if case == "no_series_no_findings":
        r["series"] = {"interval_s": 0.1, "metrics": {}, "loop": []}
        r["bottlenecks"] = []
    elif case == "missing_keys":
        for k in ("series", "bottlenecks", "throughput", "system"):
            del r[k]
    else:
        r = {}
    pg = load(workdir, write_page(workdir, f"degenerate-{case}.html", r))
    assert_no_errors(pg)
    app = pg.app
    assert not app.find_all("svg", cls="plot") and app.find("div", cls="charts") is None
    heading = app.find("section", cls="verdict").find("h2").text()
    if case == "no_series_no_findings":
        assert heading == "No bottleneck found"
        assert len(app.find(id="t-ops").find("tbody").find_all("tr")) > 0
    else:
        assert heading == "No diagnosis in this report"
    if case == "missing_keys":
        assert app.find(id="t-loaders") is not None


# ------------------------------------------------------------ comparisons

COMPARE_KEYS = ["duration_s", "throughput.batches", "throughput.batches_per_s", "breakdown.data_wait_frac",
                "throughput.step_ms_mean", "throughput.wait_ms_mean", "loaders.num_workers", "bottlenecks.0.type",
                "bottlenecks.0.severity"]


def compare_doc(a, b, a_label="a/report.json", b_label="b/report.json"):
    return {"schema": "stall.compare/1", "a": a, "b": b, "a_label": a_label, "b_label": b_label}


def cmp_rows(pg):
    table = pg.app.find("table", id="cmp-table")
    assert table is not None, "no comparison table"
    rows = {}
    for tr in table.find("tbody").find_all("tr"):
        tds = tr.find_all("td")
        assert len(tds) == 5
        rows[tr.attrs["data-key"]] = {"label": tds[0].text(), "a": tds[1].text(), "b": tds[2].text(),
                                      "change": tds[3].text(), "better": tr.attrs["data-better"],
                                      "better_cell": tds[4].text()}
    return rows


def pct(f):
    """A share as the page writes it: whole percent from 10%, else one decimal (or 2 digits below 1%)."""
    v = f * 100
    if abs(v) >= 10:
        return "%d%%" % int(v + 0.5)
    if abs(v) >= 1:
        return "%g%%" % float("%.1f" % v)
    return "%g%%" % float("%.2g" % v)


def sig3(x):
    """A number as the page writes it below 1000: 3 significant digits."""
    return "%g" % float("%.3g" % x)


def expect_ratio(a, b, more_is_better):
    """(better, word) as the page decides them: within 2% is the same."""
    if abs(b - a) / abs(a) < 0.02:
        return "same", "about the same"
    better = "b" if (b > a) == more_is_better else "a"
    return better, f"{sig3(max(a, b) / min(a, b))}\u00d7"


def test_compare_two_real_runs(workdir, input_bound, two_workers):
    (_, a), (_, b) = input_bound, two_workers
    doc = compare_doc(a, b, "w0/report.json", "w2/report.json")
    page = write_page(workdir, "compare.html", doc)
    pg = load(workdir, page)
    assert_no_errors(pg)
    app = pg.app
    assert pg.title() == "stall comparison \u2014 w0/report.json vs w2/report.json"
    assert app.find("h1").text() == "stall comparison"
    # a header card per run: label and command
    for w, label, rep in (("a", "w0/report.json", a), ("b", "w2/report.json", b)):
        card = app.find("section", cls="runcard", data_run=w)
        assert card is not None and card.find("h2").text() == label
        cmd = card.find(cls="cmd").text()
        assert cmd == "$ " + " ".join(rep["command"]), cmd
    # the table of key figures
    rows = cmp_rows(pg)
    assert list(rows) == COMPARE_KEYS
    tp = rows["throughput.batches_per_s"]
    ta, tb = a["throughput"]["batches_per_s"], b["throughput"]["batches_per_s"]
    better, word = expect_ratio(ta, tb, True)
    assert tp["better"] == better and word in tp["change"], (tp, ta, tb)
    if better != "same":
        assert tp["change"].endswith("faster" if better == "b" else "slower")
        assert tp["better_cell"] == better.upper()
    dw = rows["breakdown.data_wait_frac"]
    da, db = a["breakdown"]["data_wait_frac"], b["breakdown"]["data_wait_frac"]
    if abs(db - da) >= 0.01:
        assert dw["change"].startswith("+" if db > da else "\u2212") and dw["change"].endswith("pp data wait")
        assert dw["better"] == ("b" if db < da else "a")
    assert rows["loaders.num_workers"]["a"] == "0" and rows["loaders.num_workers"]["b"] == "2"
    assert rows["loaders.num_workers"]["change"] == "changed"
    bt = rows["bottlenecks.0.type"]
    assert a["bottlenecks"][0]["type"] in bt["a"] and a["bottlenecks"][0]["title"] in bt["a"]
    if b["bottlenecks"]:
        assert b["bottlenecks"][0]["type"] in bt["b"]
    # the summary names the faster run
    summary = app.find(id="cmp-summary").text()
    if better == "same":
        assert "about the same speed" in summary
    else:
        fast = "B (w2/report.json)" if better == "b" else "A (w0/report.json)"
        assert summary.startswith(f"Comparison{fast} trains {sig3(max(ta, tb) / min(ta, tb))}\u00d7 faster"), summary
    # both verdicts, side by side, each naming its own first finding
    verdicts = {}
    for col in app.find_all("div", cls="side"):
        for d in col.children:
            if isinstance(d, Node) and d.attrs.get("data-run") and d.find("section", cls="verdict"):
                verdicts[d.attrs["data-run"]] = d.find("section", cls="verdict").find("h2").text()
    assert verdicts["a"] == a["bottlenecks"][0]["title"]
    assert verdicts["b"] == (b["bottlenecks"][0]["title"] if b["bottlenecks"] else "No bottleneck found")
    # both throughput charts, on the same axes
    figs = {w: app.find("figure", data_run=w) for w in "ab"}
    assert all(figs.values())
    ticks = []
    for w, rep in (("a", a), ("b", b)):
        svg = figs[w].find("svg", cls="plot")
        if any(p[1] is not None for p in rep["series"]["loop"]):
            assert svg is not None and svg.find("path", cls="line") is not None
            ticks.append([t.text() for t in svg.find_all("text")])
    if len(ticks) == 2:
        assert ticks[0] == ticks[1]  # same scales: the same tick labels
    assert len(app.find_all("svg", cls="plot")) == len(ticks)
    shot = screenshot(workdir, page, "compare.png")
    assert png_size(shot) == WINDOW and shot.stat().st_size > 30_000


def test_compare_known_changes(workdir, input_bound):
    """A run against an edited copy of itself: twice the throughput, half the
    duration, 45 points less data wait, no finding left."""
    _, a = input_bound
    b = copy.deepcopy(a)
    b["duration_s"] = a["duration_s"] / 2
    b["throughput"]["batches_per_s"] = a["throughput"]["batches_per_s"] * 2
    b["throughput"]["step_ms_mean"] = a["throughput"]["step_ms_mean"]
    b["throughput"]["wait_ms_mean"] = a["throughput"]["wait_ms_mean"] / 4
    a = copy.deepcopy(a)
    a["breakdown"]["data_wait_frac"] = 0.9
    b["breakdown"]["data_wait_frac"] = 0.45
    b["bottlenecks"] = []
    b["command"] = a["command"] + ["--fixed"]
    pg = load(workdir, write_page(workdir, "compare-known.html", compare_doc(a, b, "before.json", "after.json")))
    assert_no_errors(pg)
    rows = cmp_rows(pg)
    assert rows["duration_s"]["change"] == "2\u00d7 faster" and rows["duration_s"]["better"] == "b"
    assert rows["throughput.batches_per_s"]["change"] == "2\u00d7 faster"
    assert rows["throughput.batches_per_s"]["better"] == "b" and rows["throughput.batches_per_s"]["better_cell"] == "B"
    assert rows["breakdown.data_wait_frac"]["a"] == "90%" and rows["breakdown.data_wait_frac"]["b"] == "45%"
    assert rows["breakdown.data_wait_frac"]["change"] == "\u221245 pp data wait"
    assert rows["throughput.step_ms_mean"]["change"] == "about the same"
    assert rows["throughput.step_ms_mean"]["better"] == "same"
    assert rows["throughput.wait_ms_mean"]["change"] == "4\u00d7 shorter"
    assert rows["throughput.batches"]["change"] == "" and rows["throughput.batches"]["better"] == ""
    assert rows["bottlenecks.0.type"]["b"] == "none found" and rows["bottlenecks.0.type"]["change"] == "changed"
    sev = rows["bottlenecks.0.severity"]
    assert sev["b"] == "0%" and sev["better"] == "b" and sev["change"].startswith("\u2212")
    assert "B (after.json) trains 2\u00d7 faster than A (before.json)" in pg.app.find(id="cmp-summary").text()
    assert pg.app.find("section", cls="runcard", data_run="b").find(cls="cmd").text().endswith("--fixed")
    verdicts = [s.find("h2").text() for s in pg.app.find_all("section", cls="verdict")]
    assert verdicts == [a["bottlenecks"][0]["title"], "No bottleneck found"]


@pytest.mark.parametrize("case", ["missing_b", "empty_runs", "no_series"])
def test_broken_comparisons_render_cleanly(workdir, input_bound, case):
    _, a = input_bound
    if case == "missing_b":
        doc = {"schema": "stall.compare/1", "a": a, "a_label": "a.json"}
    elif case == "empty_runs":
        doc = {"schema": "stall.compare/1", "a": {}, "b": {}}
    else:
        b = copy.deepcopy(a)
        b.pop("series")
        b["bottlenecks"] = []
        doc = compare_doc(a, b)
    pg = load(workdir, write_page(workdir, f"compare-{case}.html", doc))
    assert_no_errors(pg)
    rows = cmp_rows(pg)
    assert list(rows) == COMPARE_KEYS
    assert len(pg.app.find_all("section", cls="runcard")) == 2
    text = pg.app.text()
    if case == "missing_b":
        assert "Run B is missing from this comparison" in text
        assert rows["duration_s"]["b"] == "\u2014" and rows["duration_s"]["change"] == "\u2014"
        assert pg.app.find("section", cls="runcard", data_run="b").find("h2").text() == "run B"
    elif case == "empty_runs":
        assert "no throughput or duration to compare" in text
        assert not pg.app.find_all("svg", cls="plot")
    else:
        assert "No throughput samples in this run" in pg.app.find("figure", data_run="b").text()
        assert pg.app.find("figure", data_run="a").find("svg", cls="plot") is not None
