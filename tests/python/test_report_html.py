"""Tests of report.html (src/export/report.html.in, src/export/html.c) through
stall._native.render_report_html.

Run from the repository root after building:

    PYTHONPATH=build-html/python /usr/bin/python3 -m pytest -q tests/python/test_report_html.py

The page is the template with the report JSON in a <script
type="application/json" id="stall-report"> element; its inline script draws
everything in the browser. These tests check the C side (the JSON comes
back identical, hostile strings cannot leave their element, the page grows
by the JSON alone) and, when `node` is installed, the script itself: it
parses, and run against a two-element stand-in for the DOM it renders the
sample, hostile and degenerate reports without a section failing.
"""

import copy
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from stall import _native

DATA = Path(__file__).parent / "data" / "report_sample.json"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")

HOSTILE = "</script><script>alert(1)</script>"
JSON_RE = re.compile(r'<script type="application/json" id="stall-report">(.*?)</script>', re.S)
SCRIPT_RE = re.compile(r"<script>(.*?)</script>", re.S)


def sample():
    with open(DATA, encoding="utf-8") as f:
        return json.load(f)


def render(report):
    text = report if isinstance(report, str) else json.dumps(report, ensure_ascii=False)
    return _native.render_report_html(text)


def embedded(page):
    """The text of the JSON element, as a browser hands it to JSON.parse."""
    m = JSON_RE.search(page)
    assert m, "no stall-report element"
    return m.group(1)


def renderer(page):
    scripts = SCRIPT_RE.findall(page)
    assert len(scripts) == 1, "expected one inline rendering script"
    return scripts[0]


# A stand-in for the browser: the two elements boot() touches, then the
# markup it set and the title, as JSON on stdout.
NODE_DRIVER = r"""
const fs = require('fs'), vm = require('vm');
const page = fs.readFileSync(process.argv[2], 'utf8');
const data = /<script type="application\/json" id="stall-report">([\s\S]*?)<\/script>/.exec(page)[1];
const js = /<script>([\s\S]*?)<\/script>/.exec(page)[1];
const app = { innerHTML: '', addEventListener() {} };
const doc = { title: '', querySelectorAll: () => [],
  getElementById: (id) => (id === 'app' ? app : id === 'stall-report' ? { textContent: data } : null) };
const t0 = Date.now();
vm.runInNewContext(js, { document: doc }, { timeout: 20000 });
process.stdout.write(JSON.stringify({ html: app.innerHTML, title: doc.title, ms: Date.now() - t0 }));
"""


def run_page(tmp_path, page):
    """Runs the page's script in node; returns {html, title, ms}."""
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    (tmp_path / "driver.js").write_text(NODE_DRIVER)
    p = subprocess.run([NODE, str(tmp_path / "driver.js"), str(tmp_path / "page.html")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def assert_rendered(out):
    assert "Could not render" not in out["html"], out["html"][:2000]
    assert "could not be read" not in out["html"]
    assert "<footer>" in out["html"]


# ------------------------------------------------------------------ C side


def test_sample_is_rich():
    r = sample()
    assert len(r["loaders"]) == 2 and len(r["bottlenecks"]) == 3
    assert all(len(v) >= 200 for v in r["series"]["metrics"].values())
    assert set(r["series"]["metrics"]) <= set(_native.metric_names())


def test_json_comes_back_identical():
    text = DATA.read_text(encoding="utf-8")
    page = render(text)
    assert page.startswith("<!doctype html>")
    assert "@STALL_REPORT_JSON@" not in page
    assert json.loads(embedded(page)) == json.loads(text)
    assert '<meta charset="utf-8">' in page


def test_page_is_template_plus_json():
    empty = render("{}")
    text = DATA.read_text(encoding="utf-8")
    assert "<" not in text and ">" not in text and "&" not in text
    assert len(render(text)) == len(empty) - 2 + len(text)


def test_hostile_strings_stay_inside_the_json():
    r = sample()
    r["command"][1] = HOSTILE
    r["bottlenecks"][0]["summary"] = HOSTILE + " <!-- x --> & \u2028\u2029 <b>"
    r["loaders"][0]["dataset_type"] = "<img src=x onerror=alert(3)>"
    page = render(r)
    text = embedded(page)
    assert "<" not in text and ">" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert "\\u003c/script\\u003e" in text
    assert json.loads(text) == r
    # the template's two script elements, and no third one
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert page.count("<!--") == 1  # the template's own header comment


def test_non_ascii_survives():
    r = sample()
    r["command"].append("données_é_漢字_\U0001F600")
    assert json.loads(embedded(render(r))) == r


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        _native.render_report_html("")
    with pytest.raises(ValueError, match="NUL"):
        _native.render_report_html('{"a": "\0"}')
    with pytest.raises(TypeError):
        _native.render_report_html(b"{}")
    # not JSON: still a page (it says so when opened), and still nothing escapes
    page = _native.render_report_html("{oops <script>")
    assert "<script>" not in embedded(page)


def day_long_report():
    """A 24 h run as the engine reports it: every metric downsampled to 1200
    points (coarser buckets for older samples), the loop series to 1440."""
    r = sample()
    metrics = {}
    for name in _native.metric_names():
        pts = []
        for i in range(1200):
            t = 72.0 * i + 36.0
            v = 1e9 + 3e8 * ((i * 37) % 101) / 101
            pts.append([round(t, 1), round(v * 0.9), round(v), round(v * 1.1)])
        metrics[name] = pts
    r["duration_s"] = 86400.0
    r["series"]["metrics"] = metrics
    r["series"]["loop"] = [[60.0 * i + 30, 20.0 + (i % 7), 0.3 + (i % 5) / 20] for i in range(1440)]
    return r


def test_size_stays_small_for_a_day_long_run():
    r = day_long_report()
    text = json.dumps(r, separators=(",", ":"))
    page = render(text)
    overhead = len(render("{}")) - 2
    # one template draws three views (a run, a comparison, a tuning search)
    assert overhead < 96 * 1024, f"template is {overhead} bytes"
    # the page carries the JSON once, nothing drawn in advance
    assert len(page) == overhead + len(text)
    assert len(text) < 2 * 1024 * 1024  # a day of series, folded


# --------------------------------------------------------------- JS side


def test_script_parses(tmp_path):
    js = renderer(render(sample()))
    assert "JSON.parse" in js and "stall-report" in js
    if NODE is None:
        pytest.skip("node is not installed: only checked the script is there")
    (tmp_path / "r.js").write_text(js)
    p = subprocess.run([NODE, "--check", str(tmp_path / "r.js")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


@needs_node
def test_script_renders_the_sample(tmp_path):
    out = run_page(tmp_path, render(sample()))
    assert_rendered(out)
    html = out["html"]
    assert "Too few DataLoader workers" in html
    assert "costs 41% of wall time" in html
    assert "num_workers=4" in html and "persistent_workers=True" in html
    assert "\u22481.68\u00d7 faster" in html
    assert "Slow copies to the GPU" in html and "Slow collate function" in html
    assert "expected_speedup" not in html
    # 7 charts: throughput, CPU, memory, disk, pressure, GPU utilisation and memory
    assert html.count('<svg class="plot"') == 7
    assert "usable cores" in html
    assert html.count("<tr>") >= 2 + 14 + 5  # loaders, ops (first 25), processes
    assert "dl4242.0.fetch" in html and "ImageFolder" in html
    assert "12 events were dropped" in html
    assert "stall-out/trace.json" in html
    assert out["title"] == "stall report \u2014 train.py"


@needs_node
def test_script_escapes_hostile_strings(tmp_path):
    r = sample()
    r["command"][1] = HOSTILE
    r["bottlenecks"][0]["summary"] = HOSTILE
    r["bottlenecks"][1]["type"] = HOSTILE
    r["bottlenecks"][0]["suggestions"][0]["params"] = {"x": HOSTILE}
    r["ops"][0]["name"] = "<img src=x onerror=alert(2)>"
    r["loaders"][0]["collate_fn"] = HOSTILE
    out = run_page(tmp_path, render(r))
    assert_rendered(out)
    html = out["html"]
    assert "<script" not in html and "<img" not in html
    assert "&#60;/script&#62;&#60;script&#62;alert(1)" in html


@needs_node
def test_script_renders_no_findings_and_a_signal(tmp_path):
    r = sample()
    r["bottlenecks"] = []
    r["exit_status"] = None
    r["signal"] = "SIGKILL"
    r["system"]["gpus"] = []
    for k in ("gpu_util_pct", "gpu_mem_used_bytes"):
        del r["series"]["metrics"][k]
    out = run_page(tmp_path, render(r))
    assert_rendered(out)
    assert "No bottleneck found" in out["html"]
    assert "killed by SIGKILL" in out["html"]
    assert out["html"].count('<svg class="plot"') == 5


@needs_node
@pytest.mark.parametrize("case", ["empty", "nulls", "wrong_types", "unknown_type"])
def test_script_survives_degenerate_reports(tmp_path, case):
    if case == "empty":
        r = {}
    elif case == "nulls":
        r = {k: None for k in sample()}
    elif case == "wrong_types":
        r = {k: "x" for k in sample()}
        r.update(bottlenecks=[None, 3, {"evidence": [1], "suggestions": "no", "severity": "high"}],
                 loaders=[{}, None], ops=[{"name": None}, 5], processes=[[]],
                 series={"metrics": {"main_cpu_cores": [None, [1], [1, None, None, None], ["a", 1, 2, 3], [2.0, 1, 2, 3]],
                                     "mem_used_bytes": "x"}, "loop": [[1.0], None, [2.0, None, 0.5]]},
                 breakdown={"loop_s": 0, "wait_s": -1, "fetch_s": "1"}, system={"gpus": [None, {"name": None}]},
                 outputs={"x": None, "y": "<b>"})
    else:
        r = sample()
        r["bottlenecks"] = [{"type": "SOMETHING_NEW", "severity": None}]
        r["schema"] = "stall.report/9"
    out = run_page(tmp_path, render(r))
    assert_rendered(out)
    if case == "unknown_type":
        assert "SOMETHING_NEW" in out["html"] and "stall.report/9" in out["html"]


@needs_node
def test_script_invalid_json_says_so(tmp_path):
    out = run_page(tmp_path, _native.render_report_html("{oops"))
    assert "could not be read" in out["html"]


@needs_node
def test_script_draws_a_day_long_run_at_bounded_size(tmp_path):
    r = day_long_report()
    page = render(r)
    t0 = time.monotonic()
    out = run_page(tmp_path, page)
    assert_rendered(out)
    assert time.monotonic() - t0 < 30
    # charts draw at most a fixed number of points per series, whatever the input
    assert len(out["html"]) < 1.5 * 1024 * 1024, len(out["html"])
    assert out["html"].count('<svg class="plot"') == 7
