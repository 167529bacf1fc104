"""Prometheus metrics, with real parts: a real Prometheus server (Debian's
/usr/bin/prometheus) scrapes `stall run --prometheus` while a small PyTorch
training with two DataLoader workers runs, and the values Prometheus stored
are read back through its HTTP API. Then the library call
(stall.serve_prometheus) over HTTP: every line in the exposition grammar,
every series under its HELP and TYPE, 404/405, rank labels from the
environment and from torch.distributed; _native.MetricsServer's argument
errors; the CLI's usage error for a bad address, the program running on
when the port is taken, and the port moved by LOCAL_RANK under torchrun."""
import json
import os
import re
import signal
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("STALL_BUILD", os.path.join(REPO, "build"))
STALL = os.path.join(BUILD, "stall")
PY = "/usr/bin/python3"
PROMETHEUS = "/usr/bin/prometheus"
HOST = socket.gethostname()

# a training that runs for DURATION seconds: two workers make batches slower
# than the step takes them (the loop waits), and are re-made every epoch
# (workers exit and start again: the CPU counters must not go down)
TRAIN = textwrap.dedent("""
    import sys, time, torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
    torch.set_num_threads(1)
    DURATION = float(sys.argv[1])
    def busy(ms):
        end = time.perf_counter() + ms / 1000
        while time.perf_counter() < end:
            pass
    class Slow(Dataset):
        def __len__(self): return 320
        def __getitem__(self, i):
            busy(1.5)
            time.sleep(0.002)
            return torch.full((16,), float(i)), i % 4
    def main():
        loader = DataLoader(Slow(), batch_size=8, num_workers=2)
        model = nn.Linear(16, 4)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        t0, n, epochs = time.monotonic(), 0, 0
        while time.monotonic() - t0 < DURATION:
            for x, y in loader:
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
                busy(2)
                n += 1
                if time.monotonic() - t0 >= DURATION:
                    break
            epochs += 1
        print("batches", n, "epochs", epochs, flush=True)
    if __name__ == "__main__":
        main()
""")


def clean_env(**extra):
    """The environment for a child: no STALL_* of this process (its session
    would be joined), the build's package on PYTHONPATH, no torchrun vars."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STALL_") and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.path.join(BUILD, "python")
    env.update(extra)
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, method="GET", timeout=10):
    req = urllib.request.Request(url, method=method, data=b"x" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


@pytest.fixture
def procs():
    """Processes a test starts; all are killed at the end, whatever happened."""
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        for f in (p.stdout, p.stderr, p.stdin):
            if f:
                f.close()


# ------------------------------------------------------ exposition grammar

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?\}})? (\S+)(?: -?\d+)?$")
_ONE_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_COMMENT = re.compile(rf"^# (HELP|TYPE) ({_NAME}) ?(.*)$")


def _unescape(v):
    return re.sub(r'\\([\\"n])', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse_exposition(text):
    """A tiny parser of text format 0.0.4: fails the test on any line out of
    the grammar, a sample whose family has no HELP or TYPE before it, or a
    family given twice. Returns {family: {"type", "help", "samples": [(labels, value)]}}."""
    fams, current = {}, None
    assert text.endswith("\n"), "the exposition must end with a line feed"
    for line in text.splitlines():
        m = _COMMENT.match(line)
        if m:
            kind, name, rest = m.groups()
            if name != current:
                assert name not in fams, f"family {name} given twice"
                fams[name] = {"samples": []}
                current = name
            key = "type" if kind == "TYPE" else "help"
            assert key not in fams[name] and not fams[name]["samples"], f"family {name}: {kind} again"
            if kind == "TYPE":
                assert rest in ("counter", "gauge", "histogram", "summary", "untyped"), line
                fams[name]["type"] = rest
            else:
                fams[name]["help"] = rest
            continue
        assert not line.startswith("#"), f"stray comment: {line!r}"
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.groups()
        assert name == current and "help" in fams[name] and "type" in fams[name], \
            f"sample without its HELP and TYPE: {line!r}"
        float(value)  # raises for a bad value
        lab = {k: _unescape(v) for k, v in _ONE_LABEL.findall(labels or "")}
        fams[name]["samples"].append((lab, float(value)))
    return fams


def test_parser_rejects_bad_expositions():
    # the checks above must be able to fail
    good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n"
    assert parse_exposition(good)["a_total"]["samples"] == [({"x": "1"}, 2.0)]
    for bad in ("a_total 1\n",                                                  # no HELP/TYPE
                "# HELP a A.\n# TYPE a gauge\na{x=\"1} 2\n",                   # unterminated value
                "# HELP a A.\n# TYPE a gauge\na{x=1} 2\n",                      # unquoted
                "# HELP a A.\n# TYPE a gauge\na 2 3 4\n",                       # junk
                "# HELP a A.\n# TYPE a gauge\na two\n",                         # not a number
                "# HELP a A.\n# TYPE a gauge\na 1\n# HELP a A.\n# TYPE a gauge\n",  # twice
                "# HELP a A.\n# TYPE a gauge\na 1"):                            # no final newline
        with pytest.raises((AssertionError, ValueError)):
            parse_exposition(bad)


# ------------------------------------------------- (a) a real Prometheus

def _prometheus_or_skip():
    if not os.path.exists(PROMETHEUS):
        if os.geteuid() != 0:
            pytest.skip(f"{PROMETHEUS} is missing (Debian package prometheus; `tools/ensure-deps test` "
                        "installs it as root)")
        pytest.fail(f"{PROMETHEUS} is missing: run tools/ensure-deps test")


def _query(web, q):
    url = f"http://127.0.0.1:{web}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.loads(r.read().decode())
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def start_prometheus(tmp_path, procs, target_port):
    web = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(textwrap.dedent(f"""
        global:
          scrape_interval: 1s
          scrape_timeout: 1s
        scrape_configs:
          - job_name: stall
            static_configs:
              - targets: ["127.0.0.1:{target_port}"]
    """))
    log = open(tmp_path / "prometheus.log", "w")
    p = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{web}", "--log.level=warn"],
                         stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    log.close()
    deadline = time.monotonic() + 60
    while True:
        assert p.poll() is None, "prometheus exited: " + (tmp_path / "prometheus.log").read_text()[-2000:]
        try:
            if http_get(f"http://127.0.0.1:{web}/-/ready", timeout=2)[0] == 200:
                return web
        except OSError:
            pass
        assert time.monotonic() < deadline, "prometheus not ready in 60 s"
        time.sleep(0.2)


def test_real_prometheus_scrapes_stall_run(tmp_path, procs):
    _prometheus_or_skip()
    port = free_port()
    web = start_prometheus(tmp_path, procs, port)
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    run = subprocess.Popen([STALL, "run", "--quiet", "--out", str(tmp_path / "out"), "--prometheus",
                            f"127.0.0.1:{port}", "--", PY, str(script), "8"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    procs.append(run)
    # while it runs: Prometheus sees the target up, and the batches it stored grow
    up_seen, live = False, []
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:
        for r in _query(web, 'up{job="stall"}'):
            up_seen |= r["value"][1] == "1"
        for r in _query(web, "stall_batches_total"):
            live.append(float(r["value"][1]))
        time.sleep(1)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert f"stall: metrics on http://127.0.0.1:{port}/metrics" in err
    assert "batches" in out
    assert up_seen, "Prometheus never scraped the target successfully (up == 1)"
    assert live and max(live) > 0, live

    # what Prometheus stored: every scrape's raw samples of the last minutes
    def stored(q):
        res = _query(web, q + "[5m]")
        assert res, f"Prometheus stored nothing for {q}"
        return res

    res = stored('up{job="stall"}')
    assert any(v == "1" for _, v in res[0]["values"])

    res = stored("stall_batches_total")
    assert len(res) == 1
    metric = res[0]["metric"]
    assert metric["job"] == "stall" and metric["instance"] == f"127.0.0.1:{port}"
    assert metric["host"] == HOST
    vals = [float(v) for _, v in res[0]["values"]]
    assert len(vals) >= 3, vals
    assert vals[-1] > 0 and vals[-1] > vals[0], vals
    assert all(b >= a for a, b in zip(vals, vals[1:])), f"batches went down: {vals}"
    assert len(set(vals)) >= 2, f"batches never increased across scrapes: {vals}"

    res = stored("stall_data_wait_seconds_total")
    assert max(float(v) for _, v in res[0]["values"]) > 0

    res = stored('stall_process_cpu_seconds_total{role="worker"}')
    wvals = [float(v) for _, v in res[0]["values"]]
    assert max(wvals) > 0, wvals
    assert all(b >= a for a, b in zip(wvals, wvals[1:])), f"worker CPU went down as workers came and went: {wvals}"
    res = stored('stall_process_cpu_seconds_total{role="main"}')
    assert max(float(v) for _, v in res[0]["values"]) > 0

    res = stored('stall_kind_seconds_total{kind="data_loading"}')
    assert max(float(v) for _, v in res[0]["values"]) > 0
    res = stored("stall_processes")
    roles = {r["metric"]["role"]: max(float(v) for _, v in r["values"]) for r in res}
    assert roles.get("main") == 1 and roles.get("worker", 0) >= 2, roles
    res = stored("stall_build_info")
    assert res[0]["metric"]["version"]
    # no counter reset in any stall counter Prometheus stored
    for name in ("stall_batches_total", "stall_data_wait_seconds_total", "stall_kind_seconds_total",
                 "stall_process_cpu_seconds_total", "stall_sampler_samples_total"):
        res = _query(web, f"resets({name}[5m])")
        assert res, name
        for r in res:
            assert r["value"][1] == "0", (name, r)


# ------------------------------------------------- (b) the library call

SERVE = textwrap.dedent("""
    import json, sys
    import stall
    labels = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
    if sys.argv[1] == "dist":
        import torch.distributed as dist
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%s" % sys.argv[3], rank=0, world_size=1)
    s = stall.serve_prometheus("127.0.0.1:0", labels=labels)
    print(json.dumps({"port": s.port, "url": s.url, "text": s.text()}), flush=True)
    sys.stdin.readline()  # serve until the test is done
    s.stop()
    print("stopped", flush=True)
""")


def serve_in_child(tmp_path, procs, mode="plain", labels=None, env=None):
    script = tmp_path / "serve.py"
    script.write_text(SERVE)
    args = [PY, str(script), mode, json.dumps(labels)]
    if mode == "dist":
        args.append(str(free_port()))
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=clean_env(**(env or {})))
    procs.append(p)
    line = p.stdout.readline()
    assert line, p.stderr.read()
    return p, json.loads(line)


def finish_child(p):
    out, err = p.communicate("\n", timeout=30)
    assert p.returncode == 0, err
    assert "stopped" in out


def test_serve_prometheus_over_http(tmp_path, procs):
    p, info = serve_in_child(tmp_path, procs)
    port, url = info["port"], info["url"]
    assert port > 0 and url == f"http://127.0.0.1:{port}/metrics"
    status, headers, body = http_get(url)
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    fams = parse_exposition(body)
    parse_exposition(info["text"])  # .text() renders the same way
    want = {
        "stall_build_info": "gauge", "stall_batches_total": "counter", "stall_data_wait_seconds_total": "counter",
        "stall_kind_seconds_total": "counter", "stall_process_cpu_seconds_total": "counter",
        "stall_process_resident_memory_bytes": "gauge", "stall_processes": "gauge",
        "stall_host_cpu_busy_ratio": "gauge", "stall_host_memory_available_bytes": "gauge",
        "stall_host_memory_total_bytes": "gauge", "stall_sampler_samples_total": "counter",
    }
    for name, kind in want.items():
        assert name in fams and fams[name]["type"] == kind, name
        assert fams[name]["samples"], name
    for name, fam in fams.items():
        if fam["type"] == "counter":
            assert name.endswith("_total"), name
        for lab, value in fam["samples"]:
            assert lab["host"] == HOST, (name, lab)
            assert "rank" not in lab and "world_size" not in lab
    kinds = {lab["kind"] for lab, _ in fams["stall_kind_seconds_total"]["samples"]}
    assert {"data_loading", "preprocessing", "data_wait", "io", "transfer"} <= kinds
    roles = {lab["role"]: v for lab, v in fams["stall_process_cpu_seconds_total"]["samples"]}
    assert set(roles) == {"main", "worker"} and roles["main"] > 0
    ratio = fams["stall_host_cpu_busy_ratio"]["samples"][0][1]
    assert 0 <= ratio <= 1
    mem = fams["stall_host_memory_total_bytes"]["samples"][0][1]
    assert mem > fams["stall_host_memory_available_bytes"]["samples"][0][1] > 0
    # no GPU here: no GPU series at all (never zeros)
    if not os.path.exists("/dev/nvidia0"):
        assert not [n for n in fams if n.startswith("stall_gpu_")]

    status, headers, body = http_get(url.replace("/metrics", "/"))
    assert status == 200 and "/metrics" in body
    assert http_get(url.replace("/metrics", "/nope"))[0] == 404
    status, headers, _ = http_get(url, method="POST")
    assert status == 405 and "GET" in headers.get("Allow", "")
    assert http_get(url, method="DELETE")[0] == 405
    status, headers, body = http_get(url, method="HEAD")
    assert status == 200 and body == ""
    # a second scrape: counters never lower
    fams2 = parse_exposition(http_get(url)[2])
    assert fams2["stall_sampler_samples_total"]["samples"][0][1] >= fams["stall_sampler_samples_total"]["samples"][0][1]
    finish_child(p)
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)  # stopped: nobody listens


def test_rank_labels_from_the_environment(tmp_path, procs):
    p, info = serve_in_child(tmp_path, procs, labels={"job_name": 'a "quoted"\\name\n2'},
                             env={"RANK": "3", "WORLD_SIZE": "8"})
    fams = parse_exposition(http_get(info["url"])[2])
    for fam in fams.values():
        for lab, _ in fam["samples"]:
            assert lab["rank"] == "3" and lab["world_size"] == "8" and lab["host"] == HOST
            assert lab["job_name"] == 'a "quoted"\\name\n2'  # escaped on the wire, intact once parsed
    finish_child(p)


def test_rank_labels_from_torch_distributed(tmp_path, procs):
    # torch.distributed initialized (gloo, one process): its rank wins over RANK
    p, info = serve_in_child(tmp_path, procs, mode="dist", env={"RANK": "0", "WORLD_SIZE": "1",
                                                                 "MASTER_ADDR": "127.0.0.1"})
    fams = parse_exposition(http_get(info["url"])[2])
    lab = fams["stall_batches_total"]["samples"][0][0]
    assert lab["rank"] == "0" and lab["world_size"] == "1"
    finish_child(p)


FORKS = textwrap.dedent("""
    import os, sys, time
    import stall
    s = stall.serve_prometheus("127.0.0.1:0")
    pid = os.fork()  # as a DataLoader worker is made
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    print(s.port, pid, flush=True)
    time.sleep(60)
""")


def test_forked_children_do_not_hold_the_port(tmp_path, procs):
    # the main process dies (OOM-killed, say) while a worker it forked lives
    # on: the worker must not keep the listening socket (the port would stay
    # taken and scrapes would hang instead of being refused)
    script = tmp_path / "forks.py"
    script.write_text(FORKS)
    p = subprocess.Popen([PY, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=clean_env())
    procs.append(p)
    port, child = map(int, p.stdout.readline().split())
    try:
        assert http_get(f"http://127.0.0.1:{port}/metrics")[0] == 200
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        assert os.path.exists(f"/proc/{child}")  # the forked child lives on
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        with socket.socket() as again:  # a new server could take the port (TIME_WAIT aside)
            again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            again.bind(("127.0.0.1", port))
            again.listen()
    finally:
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_forked_child_stopping_its_copy_leaves_the_server_alone(tmp_path):
    code = textwrap.dedent("""
        import os, time, urllib.request
        import stall
        s = stall.serve_prometheus("127.0.0.1:0")
        pid = os.fork()
        if pid == 0:  # a child (a DataLoader worker) that stops what it inherited
            s.stop()
            os._exit(7)
        deadline = time.monotonic() + 20
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            assert time.monotonic() < deadline, "the child hung stopping its copy"
            time.sleep(0.05)
        print(os.waitstatus_to_exitcode(status))
        with urllib.request.urlopen(s.url, timeout=10) as r:
            print(r.status, "stall_batches_total" in r.read().decode())
        s.stop()
    """)
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60, env=clean_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["7", "200", "True"]


def test_metrics_server_arguments(tmp_path, procs):
    code = textwrap.dedent("""
        import socket, stall
        from stall import _native, _engine
        e = _engine.engine()
        def err(fn):
            try:
                fn()
            except Exception as x:
                return type(x).__name__ + ": " + str(x)
            return "no error"
        print(err(lambda: _native.MetricsServer(e, "nope")))
        print(err(lambda: _native.MetricsServer(e, 9464)))
        print(err(lambda: _native.MetricsServer(e, ":0", labels=["a", "b"])))
        print(err(lambda: _native.MetricsServer(e, ":0", labels={"bad-name": "x"})))
        print(err(lambda: _native.MetricsServer(e, ":0", labels={"role": "x"})))
        print(err(lambda: _native.MetricsServer(e, ":0", labels={"a": 1.5})))
        print(err(lambda: _native.MetricsServer("engine", ":0")))
        print(err(lambda: stall.serve_prometheus(labels="rank=0")))
        with _native.MetricsServer(e, "127.0.0.1:0", labels={"rank": 2}) as s:
            print(err(lambda: _native.MetricsServer(e, "127.0.0.1:%d" % s.port)))
            print(err(lambda: e.close()))
            print('rank="2"' in s.text(), s.stopped)
        print(s.stopped, err(s.text))
        s.stop()
        print(repr(s))
    """)
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60, env=clean_env())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ValueError: MetricsServer(): address: metrics address 'nope': no port")
    assert lines[1].startswith("TypeError: MetricsServer(): address must be a str")
    assert lines[2].startswith("TypeError: MetricsServer(): labels must be a dict")
    assert lines[3].startswith("ValueError: MetricsServer(): labels: 'bad-name' is not a label name")
    assert lines[4].startswith("ValueError: MetricsServer(): labels: 'role'")
    assert lines[5].startswith("TypeError: MetricsServer(): labels['a'] must be a str or an int")
    assert lines[6].startswith("TypeError: MetricsServer(): engine must be a stall._native.Engine")
    assert lines[7].startswith("TypeError: serve_prometheus(): labels must be a dict")
    assert lines[8].startswith("OSError: MetricsServer(): cannot serve metrics on 127.0.0.1:") and "in use" in lines[8]
    assert lines[9].startswith("RuntimeError: Engine.close(): a monitor or metrics server")
    assert lines[10] == "True False"
    assert lines[11].startswith("True ValueError: MetricsServer.text(): the server is stopped")
    assert lines[12].endswith(" stopped>")


# ------------------------------------------------------------- (c) the CLI

@pytest.mark.parametrize("addr, says", [
    ("nope", "no port"),
    ("127.0.0.1:99999", "port must be a number"),
    ("::1:9464", "brackets"),
    ("", "empty"),
])
def test_bad_address_is_a_usage_error(tmp_path, addr, says):
    r = subprocess.run([STALL, "run", "--out", str(tmp_path / "out"), "--prometheus", addr, "--", PY, "-c", "pass"],
                       capture_output=True, text=True, timeout=60, env=clean_env())
    assert r.returncode == 2
    assert "stall run: --prometheus" in r.stderr and says in r.stderr
    assert "usage: stall run" in r.stderr and "--prometheus ADDRESS" in r.stderr


def test_port_in_use_the_program_runs_anyway(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([STALL, "run", "--quiet", "--out", str(tmp_path / "out"), "--prometheus",
                            f"127.0.0.1:{port}", "--", PY, "-c", "print('the program ran')"],
                           capture_output=True, text=True, timeout=120, env=clean_env())
    assert r.returncode == 0, r.stderr
    assert "the program ran" in r.stdout
    assert f"stall run: metrics off: cannot serve metrics on 127.0.0.1:{port}" in r.stderr
    assert "in use" in r.stderr
    assert (tmp_path / "out" / "report.json").exists()


def test_torchrun_ranks_get_their_own_port_and_labels(tmp_path, procs):
    base = free_port()
    while base + 1 > 65535 or not _port_free(base + 1):
        base = free_port()
    p = subprocess.Popen([STALL, "run", "--quiet", "--out", str(tmp_path / "out"), "--prometheus",
                          f"127.0.0.1:{base}", "--", PY, "-c", "import time; time.sleep(30)"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=clean_env(LOCAL_RANK="1", RANK="5", WORLD_SIZE="8"))
    procs.append(p)
    line = p.stderr.readline()
    assert line.strip() == f"stall: metrics on http://127.0.0.1:{base + 1}/metrics", line
    status, _, body = http_get(f"http://127.0.0.1:{base + 1}/metrics")
    assert status == 200
    fams = parse_exposition(body)
    for fam in fams.values():
        for lab, _ in fam["samples"]:
            assert lab["rank"] == "5" and lab["world_size"] == "8"


def _port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
