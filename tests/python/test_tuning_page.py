"""The DataLoader tuner's page (schema stall.tuning/1) in a real browser.

    PYTHONPATH=build/python /usr/bin/python3 -m pytest -q tests/python/test_tuning_page.py

stall._native.render_report_html puts a synthetic search result (4 batch
sizes x 4 worker counts: some measured, some only predicted by the model,
one failed, a baseline loader) into report.html's template; headless
Chromium renders it and the tests read back the DOM (--dump-dom), its
console (stderr) and a screenshot:

- the verdict names the best configuration, its throughput and its speedup
  over the current loader, and gives the DataLoader call to copy;
- the chart has one bar (<g class="cfg">) per configuration, in the state
  the data gives it (measured, predicted, failed, unknown), the chosen one
  and the baseline marked; unknown numbers show as a dash, never as 0;
- the table lists every configuration, measured ones first, fastest first;
- results with nothing to recommend (no configuration list, an empty one,
  every configuration failed, none chosen) say so in #page-errors
  (data-problems) without a script error.

Skipped only when no Chromium is installed.
"""

import copy
import json
from pathlib import Path

import pytest

from stall import _native

from browser import CHROMIUM, Node, chromium, load, png_size  # noqa: E402  (tests/python)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
WINDOW = (1280, 1800)
DASH = "\u2014"

BATCH_SIZES = (16, 32, 64, 128)
WORKERS = (0, 1, 2, 4)
MEASURED = {(16, 0): 1, (64, 2): 2, (128, 2): 3, (128, 1): 4, (32, 2): 5, (128, 4): 6}  # (bs, nw) -> order
FAILED = (128, 4)
CHOSEN = (128, 2)


def model_sps(bs, nw):
    """Plausible samples/s: per-sample and per-batch work spread over at most 1.9 cores."""
    per_core = 1.0 / (0.0009 + 0.004 / bs)
    return per_core * (0.9 if nw == 0 else min(nw, 1.9) * (0.96 if nw > 2 else 1.0))


def tuning_doc():
    configs = []
    for bs in BATCH_SIZES:
        for nw in WORKERS:
            measured = (bs, nw) in MEASURED
            pred = None if (bs, nw) == (16, 0) else round(model_sps(bs, nw), 1)
            sps = round(model_sps(bs, nw) * (1.03 if nw else 1.0), 1) if measured else None
            if (bs, nw) == CHOSEN:
                sps = 2100.0
            elif (bs, nw) == (16, 0):
                sps = 900.0  # the baseline loader
            c = {"batch_size": bs, "num_workers": nw, "pin_memory": False, "persistent_workers": nw > 0,
                 "prefetch_factor": 2 if nw else None, "measured": measured, "samples_per_second": sps,
                 "batches_per_second": round(sps / bs, 2) if sps else None,
                 "time_to_first_batch_s": (0.012 + 0.35 * (nw > 0)) if measured else None,
                 "peak_memory_bytes": (180 + 95 * nw) * 2 ** 20 + bs * 2 ** 18 if measured else None,
                 "cpu_cores": min(1.9, 0.98 * max(nw, 1)) if measured else None,
                 "predicted_samples_per_second": pred, "measure_seconds": 1.0 if measured else None,
                 "batches": 50 if measured else None, "error": None, "chosen": (bs, nw) == CHOSEN,
                 "order": MEASURED.get((bs, nw))}
            if (bs, nw) == FAILED:
                c.update(samples_per_second=None, batches_per_second=None, time_to_first_batch_s=None,
                         peak_memory_bytes=None, cpu_cores=None, batches=3,
                         error="RuntimeError: DataLoader worker (pid 4242) exited unexpectedly")
            configs.append(c)
    return {
        "schema": "stall.tuning/1", "created": "2026-11-22T10:00:00Z",
        "dataset": {"type": "ImageFiles", "length": 4096}, "strategy": "model", "cores": 2.0, "cuda": False,
        "search_seconds": 12.3, "grid_size": 16, "measured": 6,
        "stop_reason": "no unmeasured configuration is predicted to beat the best measured one by 3% or more",
        "baseline": {"batch_size": 16, "num_workers": 0, "pin_memory": False, "persistent_workers": False,
                     "prefetch_factor": None, "samples_per_second": 900.0},
        "chosen": {"batch_size": 128, "num_workers": 2, "pin_memory": False, "persistent_workers": True,
                   "prefetch_factor": 2, "samples_per_second": 2100.0, "speedup_vs_baseline": 2.3},
        "model": {"per_sample_s": 0.0004, "per_batch_s": 0.002, "cpu_frac": 0.95, "handover_s_per_sample": 0.00001,
                  "cores": 1.9},
        "configurations": configs,
    }


# ------------------------------------------------------- DOM and browser


class Page:
    """The tuning page of doc as Chromium rendered it (browser.load)."""

    def __init__(self, tmp, name, doc):
        self.path = Path(tmp) / name
        self.path.write_text(_native.render_report_html(doc if isinstance(doc, str) else json.dumps(doc)),
                             encoding="utf-8")
        pg = load(tmp, self.path)
        self.dom, self.app, self.console, self.uncaught = pg.dom, pg.app, pg.console, pg.uncaught
        self.box = pg.dom.find(id="page-errors")

    def title(self):
        return self.dom.find("title").text()


def assert_clean(pg, problems=0):
    """No script error anywhere; `problems` data problems listed in #page-errors."""
    assert not pg.uncaught, pg.uncaught
    assert not pg.console, f"the page wrote to the console: {pg.console}"
    if problems:
        assert pg.box is not None, "no #page-errors box"
        assert pg.box.attrs["data-problems"] == str(problems) == pg.box.attrs["data-count"], pg.box.text()
        assert "script error" not in pg.box.text()
    else:
        assert pg.box is None, pg.box.text()
    txt = pg.app.text()
    assert "Could not render" not in txt and "Rendering the report" not in txt, txt[:3000]
    assert pg.app.find("footer") is not None


def bars(pg):
    svg = pg.app.find("svg", data_tune_chart="1")
    assert svg is not None, "no tuning chart"
    return svg.find_all("g", cls="cfg")


def rows(pg):
    """The table's configuration rows (a failed one is followed by a row with its error)."""
    return [tr for tr in pg.app.find(id="t-tune").find("tbody").find_all("tr") if "data-bs" in tr.attrs]


def key(e):
    return int(e.attrs["data-bs"]), int(e.attrs["data-workers"])


def sps_sort_key(c):
    """The table's order: measured (fastest first), predicted (fastest first), failed, the rest."""
    if c["error"]:
        return (2, 0, c["batch_size"], c["num_workers"])
    if c["measured"]:
        return (0, -c["samples_per_second"], c["batch_size"], c["num_workers"])
    if c["predicted_samples_per_second"] is not None:
        return (1, -c["predicted_samples_per_second"], c["batch_size"], c["num_workers"])
    return (3, 0, c["batch_size"], c["num_workers"])


# ------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("tuning")


@pytest.fixture(scope="module")
def page(tmp):
    return Page(tmp, "tuning.html", tuning_doc())


def test_no_errors_and_title(page):
    assert_clean(page)
    assert page.title() == "stall tuning \u2014 ImageFiles"
    assert page.app.find("h1").text() == "stall DataLoader tuning"


def test_verdict_and_code_line(page):
    v = page.app.find("section", id="tune-verdict")
    assert v is not None and "ok" in v.attrs["class"].split()
    assert v.find(id="tune-title").text() == \
        "Best: batch_size=128, num_workers=2 \u2014 2,100 samples/s, 2.3\u00d7 the current loader"
    assert v.find("code", id="tune-code").text() == \
        "DataLoader(dataset, batch_size=128, num_workers=2, persistent_workers=True, prefetch_factor=2, pin_memory=False)"
    assert v.find("button", data_copy="tune-code") is not None
    txt = v.text()
    assert "Measured 6 of 16 configurations in 12.3 s" in txt
    assert "beat the best measured one by 3% or more" in txt
    assert "Current loader: batch_size=16, num_workers=0, 900 samples/s" in txt


def test_one_bar_per_configuration(page):
    doc = tuning_doc()
    gs = bars(page)
    assert len(gs) == 16
    assert sorted(key(g) for g in gs) == sorted((c["batch_size"], c["num_workers"]) for c in doc["configurations"])
    # grouped by batch size, one bar per worker count, in order
    assert [key(g) for g in gs] == [(bs, nw) for bs in BATCH_SIZES for nw in WORKERS]
    by = {key(g): g for g in gs}
    for c in doc["configurations"]:
        g = by[(c["batch_size"], c["num_workers"])]
        want = ("failed" if c["error"] else "measured" if c["measured"]
                else "predicted" if c["predicted_samples_per_second"] is not None else "unknown")
        assert g.attrs["data-state"] == want, (c, g.attrs)
        value = c["samples_per_second"] if want == "measured" else c["predicted_samples_per_second"] if want == "predicted" else None
        assert (float(g.attrs["data-value"]) if g.attrs["data-value"] else None) == value
        rect = g.find("rect", cls="bar")
        assert rect is not None and g.find("title") is not None
        if want == "predicted":  # hollow, dashed, value marked as a prediction
            assert rect.attrs["fill"] == "#fff" and rect.attrs.get("stroke-dasharray")
            assert any(t.text().startswith("\u2248") for t in g.find_all("text"))
        if want == "measured":
            assert rect.attrs["fill"] != "#fff" and not rect.attrs.get("stroke-dasharray")
    # the chosen one, labelled; the failed one, marked; the baseline, marked and drawn as a line
    chosen = [g for g in gs if g.attrs.get("data-chosen") == "true"]
    assert [key(g) for g in chosen] == [CHOSEN] and chosen[0].attrs["data-state"] == "measured"
    assert "best" in chosen[0].text()
    failed = by[FAILED]
    assert "failed" in failed.text() and "exited unexpectedly" in failed.find("title").text()
    base = [g for g in gs if g.attrs.get("data-baseline") == "true"]
    assert [key(g) for g in base] == [(16, 0)] and "current" in base[0].text()
    line = page.app.find("g", cls="baseline")
    assert line is not None and line.attrs["data-value"] == "900" and "900/s" in line.text()
    assert line.find("title").text() == "current loader: 900 samples/s"
    legend = page.app.find("figure", id="tune-chart").find("ul", cls="legend").text()
    for word in ("0 workers", "1 worker", "2 workers", "4 workers", "predicted", "failed", "best", "current loader"):
        assert word in legend


def test_table_rows_and_order(page):
    doc = tuning_doc()
    trs = rows(page)
    assert len(trs) == 16
    want = sorted(doc["configurations"], key=sps_sort_key)
    assert [key(tr) for tr in trs] == [(c["batch_size"], c["num_workers"]) for c in want]
    assert [tr.attrs["data-state"] for tr in trs[:5]] == ["measured"] * 5
    assert key(trs[0]) == CHOSEN and trs[0].attrs.get("data-chosen") == "true"
    assert "best" in trs[0].find("td").text()
    assert [tr for tr in trs if tr.attrs.get("data-chosen")] == [trs[0]]
    heads = [th.text() for th in page.app.find(id="t-tune").find("thead").find_all("tr")[1].find_all("th")]
    cells = {key(tr): dict(zip(heads, (td.text() for td in tr.find_all("td")))) for tr in trs}
    best = cells[CHOSEN]
    assert best["samples/s measured"] == "2,100" and best["first batch"] == "362 ms"
    assert best["peak memory"] == "402 MiB" and best["CPU cores"] == "1.9"
    assert best["predicted"].startswith("2,0") and "(\u2212" in best["predicted"]  # predicted below measured
    all_trs = page.app.find(id="t-tune").find("tbody").find_all("tr")
    err = all_trs[all_trs.index(trs[-1]) + 1]  # the failed one, last, then its error
    assert key(trs[-1]) == FAILED and err.attrs.get("data-error-for") == "128/4" and "errrow" in err.attrs["class"]
    assert err.text() == "RuntimeError: DataLoader worker (pid 4242) exited unexpectedly"
    assert len(all_trs) == 17
    # unknown numbers are dashes, never 0
    for k in (FAILED, (64, 4)):
        for col in ("samples/s measured", "first batch", "peak memory", "CPU cores"):
            assert cells[k][col] == DASH, (k, col, cells[k][col])
    assert cells[(16, 0)]["predicted"] == DASH and "current" in cells[(16, 0)]["status"]
    assert cells[(64, 4)]["status"] == "predicted"


def test_key_figures(page):
    s = page.app.find(id="tune-search").text()
    for part in ("model", "6 of 16 configurations", "12.3 s", "Usable cores2", "CUDAno", "ImageFiles", "4,096 samples"):
        assert part in s, (part, s)
    m = page.app.find(id="tune-model").text()
    for part in ("400 \u00b5s", "2 ms", "95%", "10 \u00b5s", "1.9"):
        assert part in m, (part, m)


def test_screenshot(tmp, page):
    shot = Path(tmp) / "tuning.png"
    chromium(tmp, page.path, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars")
    assert png_size(shot) == WINDOW
    assert shot.stat().st_size > 40_000, shot.stat().st_size  # a drawn page, not a blank one


def test_no_baseline_and_nulls(tmp):
    doc = tuning_doc()
    doc["baseline"] = None
    doc["chosen"]["speedup_vs_baseline"] = None
    doc["model"] = None
    doc["strategy"] = "grid"
    for k in ("cores", "search_seconds", "cuda", "created"):
        doc[k] = None
    pg = Page(tmp, "tuning-nobase.html", doc)
    assert_clean(pg)
    assert pg.app.find(id="tune-title").text() == "Best: batch_size=128, num_workers=2 \u2014 2,100 samples/s"
    assert "No current loader was given" in pg.app.find(id="tune-verdict").text()
    assert not [g for g in bars(pg) if g.attrs.get("data-baseline")] and pg.app.find("g", cls="baseline") is None
    s = pg.app.find(id="tune-search").text()
    assert f"Search time{DASH}" in s and f"Usable cores{DASH}" in s and f"CUDA{DASH}" in s
    assert "No model: the grid strategy" in pg.app.find(id="tune-model").text()


def test_zero_workers_call_and_varying_pin_memory(tmp):
    """A grid over pin_memory too (CUDA): 32 bars, two per (batch size, workers),
    told apart in the legend; a zero-worker choice gets no worker-only keywords."""
    doc = tuning_doc()
    doc.update(cuda=True, grid_size=32, strategy="grid", model=None)
    more = []
    for c in doc["configurations"]:
        c2 = copy.deepcopy(c)
        c2.update(pin_memory=True, chosen=False, order=None, measured=False, samples_per_second=None, error=None,
                  predicted_samples_per_second=None)
        more.append(c2)
    doc["configurations"] += more
    for c in doc["configurations"]:
        c["chosen"] = (c["batch_size"], c["num_workers"], c["pin_memory"]) == (16, 0, False)
    doc["chosen"] = {"batch_size": 16, "num_workers": 0, "pin_memory": False, "persistent_workers": False,
                     "prefetch_factor": None, "samples_per_second": 900.0, "speedup_vs_baseline": 1.0}
    pg = Page(tmp, "tuning-pin.html", doc)
    assert_clean(pg)
    assert len(bars(pg)) == 32 and len(rows(pg)) == 32
    assert sum(g.attrs["data-state"] == "unknown" for g in bars(pg)) == 16
    assert pg.app.find("code", id="tune-code").text() == "DataLoader(dataset, batch_size=16, num_workers=0, pin_memory=False)"
    assert pg.app.find(id="tune-title").text().startswith("Best: keep the current loader (batch_size=16, num_workers=0)")
    legend = pg.app.find("figure", id="tune-chart").find("ul", cls="legend").text()
    assert "2 workers, pin_memory=True" in legend and "2 workers, pin_memory=False" in legend


@pytest.mark.parametrize("case", ["no_configurations", "empty_list", "all_failed", "chosen_null"])
def test_malformed_results_say_so(tmp, case):
    doc = tuning_doc()
    if case == "no_configurations":
        del doc["configurations"]
    elif case == "empty_list":
        doc["configurations"] = []
    elif case == "all_failed":
        for c in doc["configurations"]:
            c.update(error="RuntimeError: out of shared memory", chosen=False, samples_per_second=None, measured=True)
        doc["chosen"] = None
    else:
        doc["chosen"] = None
        for c in doc["configurations"]:
            c["chosen"] = False
    pg = Page(tmp, f"tuning-{case}.html", doc)
    problems = {"no_configurations": ['"configurations" is missing'], "empty_list": ["list of configurations is empty"],
                "all_failed": ["Every configuration failed (16 of 16)", "out of shared memory", '"chosen" is null'],
                "chosen_null": ['"chosen" is null']}[case]
    assert_clean(pg, problems=2 if case == "all_failed" else 1)
    box = pg.box.text()
    for p in problems:
        assert p in box, box
    # the box comes first in the body, above the page
    assert next(k for k in pg.dom.find("body").children if isinstance(k, Node)).attrs.get("id") == "page-errors"
    title = pg.app.find(id="tune-title").text()
    if case in ("all_failed", "chosen_null"):
        assert title == "No configuration to recommend"
        assert len(bars(pg)) == 16 and len(rows(pg)) == 16 and not [g for g in bars(pg) if g.attrs.get("data-chosen")]
    else:  # the chosen configuration is still named; nothing to chart or list
        assert title.startswith("Best: batch_size=128, num_workers=2")
        assert "No configurations to chart" in pg.app.find(id="tune-chart").text()
        assert pg.app.find(id="t-tune") is None


def test_other_schemas_unchanged(tmp):
    """A run report still renders its own page, without a data problem."""
    pg = Page(tmp, "report.html", {"schema": "stall.report/1", "bottlenecks": []})
    assert_clean(pg)
    assert pg.app.find("svg", data_tune_chart="1") is None
    assert pg.app.find("section", cls="verdict").find("h2").text() == "No bottleneck found"
