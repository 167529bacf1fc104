"""`stall report`: a report.json read back prints the same diagnosis `stall
run` printed and re-renders the same page; two reports are compared side by
side (text and page); files that are not stall reports are refused with
exit 2 and a message that says what is wrong."""
import json
import os
import subprocess
import textwrap

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("STALL_BUILD", os.path.join(REPO, "build"))
STALL = os.path.join(BUILD, "stall")
PY = "/usr/bin/python3"

TRAIN = textwrap.dedent("""
    import sys, time, torch
    from torch.utils.data import DataLoader, Dataset

    class DS(Dataset):
        def __len__(self):
            return 8 * 40
        def __getitem__(self, i):
            end = time.perf_counter() + 0.002
            while time.perf_counter() < end:
                pass
            return torch.full((16,), float(i)), i % 4

    if __name__ == "__main__":
        torch.set_num_threads(1)
        model = torch.nn.Linear(16, 4)
        for x, y in DataLoader(DS(), batch_size=8, num_workers=int(sys.argv[1])):
            torch.nn.functional.cross_entropy(model(x), y).backward()
            end = time.perf_counter() + 0.004
            while time.perf_counter() < end:
                pass
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    script = d / "train.py"
    script.write_text(TRAIN)
    out = {}
    for workers in (0, 2):
        o = d / ("w%d" % workers)
        r = subprocess.run([STALL, "run", "--quiet", "--out", str(o), "--", PY, str(script), str(workers)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        out[workers] = (o, r.stderr)
    return out


def report(*args):
    return subprocess.run([STALL, "report", *map(str, args)], capture_output=True, text=True, timeout=60)


def test_one_report_prints_the_diagnosis_stall_run_printed(runs):
    out, run_stderr = runs[0]
    r = report(out / "report.json")
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "report.json").read_text())
    first = rep["bottlenecks"][0]
    assert "1. %s (%s)" % (first["title"], first["type"]) in r.stdout
    assert first["summary"] in r.stdout
    # stall run printed its first three findings through the same printer
    shown = run_stderr[run_stderr.index("\nstall: "):run_stderr.index("\n  reports:")]
    assert r.stdout.startswith(shown)
    assert len(rep["bottlenecks"]) <= 3 or "4. " in r.stdout


def test_html_is_rendered_again_byte_for_byte(runs, tmp_path):
    out, _ = runs[0]
    page = tmp_path / "again.html"
    r = report(out / "report.json", "--html", page)
    assert r.returncode == 0, r.stderr
    assert page.read_bytes() == (out / "report.html").read_bytes()


def test_two_reports_side_by_side(runs, tmp_path):
    (a, _), (b, _) = runs[0], runs[2]
    ra = json.loads((a / "report.json").read_text())
    rb = json.loads((b / "report.json").read_text())
    page = tmp_path / "cmp.html"
    r = report(a / "report.json", b / "report.json", "--html", page)
    assert r.returncode == 0, r.stderr
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines() if ln.strip()}
    assert "batches/s" in lines and "data" in lines
    # the row says which way throughput went, from the two files' numbers
    ratio = rb["throughput"]["batches_per_s"] / ra["throughput"]["batches_per_s"]
    want = "same" if abs(ratio - 1) < 0.02 else ("better" if ratio > 1 else "worse")
    assert want in lines["batches/s"]
    assert "A: %s" % ra["bottlenecks"][0]["type"] in r.stdout
    assert "B: %s" % rb["bottlenecks"][0]["type"] in r.stdout
    html = page.read_text()
    assert '"schema":"stall.compare/1"' in html.replace(" ", "")
    assert str(a / "report.json") in html and str(b / "report.json") in html


@pytest.mark.parametrize("content, message", [
    ('{"schema": "something/2"}', 'its "schema" is "something/2"'),
    ('{"a": 1}', 'its "schema" is missing'),
    ('{"a": ', "is not valid JSON: unexpected end at byte 6"),
    ('[1, 2,]', "is not valid JSON"),
    ('{"schema": "stall.report/1"} x', "text after the value at byte"),
])
def test_files_that_are_not_reports_are_refused(tmp_path, content, message):
    f = tmp_path / "x.json"
    f.write_text(content)
    r = report(f)
    assert r.returncode == 2
    assert message in r.stderr and str(f) in r.stderr


@pytest.mark.parametrize("args, message", [
    ([], "no report given"),
    (["--bogus", "a.json"], "unknown option '--bogus'"),
    (["a.json", "b.json", "c.json"], "at most two reports"),
    (["a.json", "--html"], "--html needs a file name"),
])
def test_usage_errors(args, message):
    r = report(*args)
    assert r.returncode == 2
    assert message in r.stderr and "usage: stall report" in r.stderr


def test_missing_file(tmp_path):
    r = report(tmp_path / "nope.json")
    assert r.returncode == 2
    assert "cannot read" in r.stderr and "nope.json" in r.stderr


def test_unwritable_page(runs, tmp_path):
    out, _ = runs[0]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = report(out / "report.json", "--html", blocker / "sub" / "p.html")
    assert r.returncode == 1
    assert "cannot write" in r.stderr
