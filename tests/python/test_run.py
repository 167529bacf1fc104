"""`stall run` end to end: real small PyTorch trainings (num_workers 0 and 2,
fork and spawn, an iterable dataset), a crash by SIGKILL, a non-Python
command, forwarded signals, the program's stdin/stdout/cwd/environment kept,
usage errors; the report.json contract, report.html and trace.json."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("STALL_BUILD", os.path.join(REPO, "build"))
STALL = os.path.join(BUILD, "stall")
PY = "/usr/bin/python3"
INPUT_TYPES = {"DATA_LOADING", "INSUFFICIENT_WORKERS", "PREPROCESSING_BOTTLENECK", "SLOW_DISK_IO",
               "COLLATE_FUNCTION_SLOW", "SAMPLER_OVERHEAD", "BATCH_SIZE_INEFFICIENCY", "PREPROCESSING"}

# a tiny training: FETCH_MS of work per sample (cpu: busy loop, io: sleep),
# STEP_MS of model compute per batch
TRAIN = textwrap.dedent("""
    import os, sys, time, torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset, IterableDataset
    torch.set_num_threads(1)
    FETCH_MS, STEP_MS, BATCHES, BS = {fetch_ms}, {step_ms}, {batches}, 8
    def busy(ms):
        end = time.perf_counter() + ms / 1000
        while time.perf_counter() < end:
            pass
    class Maps(Dataset):
        def __len__(self): return BATCHES * BS
        def __getitem__(self, i):
            {work}(FETCH_MS)
            return torch.full((16,), float(i)), i % 4
    class Stream(IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            n, k = (info.num_workers, info.id) if info else (1, 0)
            for i in range(k, BATCHES * BS, n):
                {work}(FETCH_MS)
                yield torch.full((16,), float(i)), i % 4
    def main():
        ds = {dataset}()
        kw = dict(num_workers={workers})
        if {workers} > 0 and "{ctx}":
            kw["multiprocessing_context"] = "{ctx}"
        loader = DataLoader(ds, batch_size=BS, **kw)
        model = nn.Linear(16, 4)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        n = 0
        for epoch in range({epochs}):
            for x, y in loader:
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                busy(STEP_MS)
                n += 1
                {after_batch}
        print("batches", n)
    if __name__ == "__main__":
        main()
""")


def train_script(tmp_path, name="train.py", fetch_ms=2.0, step_ms=2.0, batches=20, workers=0,
                 ctx="", dataset="Maps", work="busy", epochs=1, after_batch="pass"):
    src = TRAIN.format(fetch_ms=fetch_ms, step_ms=step_ms, batches=batches, workers=workers, ctx=ctx,
                       dataset=dataset, work="busy" if work == "busy" else "time.sleep_ms",
                       epochs=epochs, after_batch=after_batch)
    if work == "sleep":
        src = src.replace("time.sleep_ms(FETCH_MS)", "time.sleep(FETCH_MS / 1000)")
    p = tmp_path / name
    p.write_text(src)
    return str(p)


def stall_run(tmp_path, cmd, *opts, timeout=240, **kw):
    out = tmp_path / "out"
    r = subprocess.run([STALL, "run", "--out", str(out), *opts, "--", *cmd], capture_output=True, text=True,
                       timeout=timeout, **kw)
    rep = None
    if (out / "report.json").exists():
        rep = json.loads((out / "report.json").read_text())
    return r, rep, out


def check_contract(rep):
    assert rep["schema"] == "stall.report/1"
    for k in ("command", "exit_status", "duration_s", "bottlenecks", "breakdown", "loaders", "processes",
              "system", "dropped_events"):
        assert k in rep, k
    assert isinstance(rep["exit_status"], int) and rep["duration_s"] > 0
    sev = [b["severity"] for b in rep["bottlenecks"]]
    for b in rep["bottlenecks"]:
        assert set(("type", "severity", "summary", "evidence", "suggestions")) <= set(b)
        assert 0 <= b["severity"] <= 1 and b["summary"]
        for s in b["suggestions"]:
            assert set(("action", "params", "expected_speedup")) <= set(s)
            assert s["expected_speedup"] is None or s["expected_speedup"] > 1
    for ld in rep["loaders"]:
        for k in ("batch_size", "num_workers", "pin_memory", "batches", "wait_s", "fetch_s", "collate_s"):
            assert k in ld, k
    assert rep["dropped_events"] == 0


def check_trace(out):
    t = json.loads((out / "trace.json").read_text())
    ev = t["traceEvents"]
    names = {e.get("name") for e in ev if e.get("ph") == "X"}
    meta = {e["args"]["name"] for e in ev if e.get("ph") == "M" and e.get("name") == "process_name"}
    return names, meta


def test_num_workers_0_cpu_heavy_fetch_is_input_bound(tmp_path):
    script = train_script(tmp_path, fetch_ms=3.0, step_ms=2.0, batches=25)
    r, rep, out = stall_run(tmp_path, [PY, script])
    assert r.returncode == 0, r.stderr
    assert "batches 25" in r.stdout
    check_contract(rep)
    ld = rep["loaders"][0]
    assert ld["num_workers"] == 0 and ld["batch_size"] == 8 and ld["batches"] == 25
    assert ld["dataset_kind"] == "map" and ld["dataset_len"] == 200
    assert ld["fetch_s"] > 0.4  # 200 samples x 3 ms
    assert ld["fetch_cpu_frac"] > 0.4  # a busy loop: on-CPU unless other programs take the cores
    assert rep["breakdown"]["data_wait_frac"] > 0.5
    first = rep["bottlenecks"][0]
    assert first["type"] in INPUT_TYPES
    acts = [s for s in first["suggestions"] if "num_workers" in s["params"]]
    assert acts and acts[0]["params"]["num_workers"] >= 1
    # the diagnosis is printed, with the reports' paths
    assert first["type"] in r.stderr and "report.html" in r.stderr
    assert (out / "report.html").stat().st_size > 1000
    names, meta = check_trace(out)
    lid = ld["id"]
    assert {f"dl{lid}.wait", f"dl{lid}.fetch", "train.step", "train.backward"} <= names
    assert not list(out.glob(".stall-spool-*"))


def test_healthy_run_is_compute_bound(tmp_path):
    # fetch is tiny, compute dominates: under 5% waiting => CPU_BOUND first, no input finding
    script = train_script(tmp_path, fetch_ms=0.0, step_ms=30.0, batches=25, workers=0)
    r, rep, out = stall_run(tmp_path, [PY, script])
    assert r.returncode == 0, r.stderr
    check_contract(rep)
    assert rep["breakdown"]["data_wait_frac"] < 0.05
    assert rep["bottlenecks"][0]["type"] == "CPU_BOUND"
    assert not INPUT_TYPES & {b["type"] for b in rep["bottlenecks"]}


@pytest.mark.parametrize("ctx", ["fork", "spawn"])
def test_workers_fork_and_spawn(tmp_path, ctx):
    script = train_script(tmp_path, fetch_ms=1.0, step_ms=1.0, batches=16, workers=2, ctx=ctx)
    r, rep, out = stall_run(tmp_path, [PY, script])
    assert r.returncode == 0, r.stderr
    check_contract(rep)
    ld = rep["loaders"][0]
    assert ld["num_workers"] == 2 and ld["multiprocessing_context"] == ctx
    assert ld["batches"] == 16 and ld["fetches"] >= 16
    labels = sorted(p["label"] for p in rep["processes"] if p["label"].startswith("dl"))
    assert labels == [f"dl{ld['id']} worker 0", f"dl{ld['id']} worker 1"]
    fetch = [o for o in rep["ops"] if o["name"] == f"dl{ld['id']}.fetch"][0]
    assert fetch["processes"] == 2 and fetch["cpu_s"] is not None
    names, meta = check_trace(out)
    assert any("worker 1" in m for m in meta)


def test_iterable_dataset(tmp_path):
    script = train_script(tmp_path, fetch_ms=0.5, step_ms=1.0, batches=12, workers=0, dataset="Stream", epochs=2)
    r, rep, out = stall_run(tmp_path, [PY, script])
    assert r.returncode == 0, r.stderr
    ld = rep["loaders"][0]
    assert ld["dataset_kind"] == "iterable" and ld["dataset_len"] is None
    assert ld["batches"] == 24


def test_crash_by_sigkill_keeps_data(tmp_path):
    after = "if n == 10: os.kill(os.getpid(), 9)"
    script = train_script(tmp_path, fetch_ms=1.0, step_ms=1.0, batches=40, workers=2, after_batch=after)
    r, rep, out = stall_run(tmp_path, [PY, script])
    assert r.returncode == 128 + 9, r.stderr
    check_contract(rep)
    assert rep["exit_status"] == 137 and rep["signal"] == "SIGKILL"
    assert rep["loaders"][0]["batches"] >= 10
    assert "SIGKILL" in r.stderr


def test_non_python_command(tmp_path):
    r, rep, out = stall_run(tmp_path, ["sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exit 3"])
    assert r.returncode == 3
    check_contract(rep)
    assert rep["command"][0] == "sh" and rep["exit_status"] == 3
    assert rep["loaders"] == []
    assert any(p["comm"] == "sh" for p in rep["processes"])
    assert rep["bottlenecks"][0]["type"] == "CPU_BOUND"


def test_program_keeps_stdio_cwd_and_environment(tmp_path):
    code = ("import os, sys; print(input().upper()); print(os.getcwd()); print(os.environ['MY_VAR']); "
            "print(os.environ['PYTHONPATH'])")
    env = dict(os.environ, MY_VAR="kept", PYTHONPATH="/my/path:" + os.environ.get("PYTHONPATH", ""))
    work = tmp_path / "wd"
    work.mkdir()
    r = subprocess.run([STALL, "run", "--quiet", "--out", str(tmp_path / "o"), "--", PY, "-c", code],
                       input="hello\n", capture_output=True, text=True, cwd=work, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "HELLO" and lines[1] == str(work) and lines[2] == "kept"
    assert "/my/path" in lines[3].split(":")  # extended, not replaced


@pytest.mark.parametrize("sig, expect", [(signal.SIGTERM, 3), (signal.SIGINT, 130)])
def test_signals_are_forwarded(tmp_path, sig, expect):
    marker = tmp_path / "got"
    code = textwrap.dedent(f"""
        import signal, sys, time
        def term(s, f):
            open({str(marker)!r}, "w").write(str(s)); sys.exit(3)
        signal.signal(signal.SIGTERM, term)
        print("ready", flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen([STALL, "run", "--quiet", "--out", str(tmp_path / "o"), "--", PY, "-c", code],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == expect, err
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["exit_status"] == expect
    if sig == signal.SIGTERM:
        assert marker.read_text() == str(int(signal.SIGTERM))


@pytest.mark.parametrize("args, code, message", [
    (["--", ], 2, "no command given"),
    ([], 2, "no command given"),
    (["python3", "x.py"], 2, "put '--' before the command"),
    (["--bogus", "--", "true"], 2, "unknown option '--bogus'"),
    (["--level", "max", "--", "true"], 2, "--level must be basic, detailed or comprehensive"),
    (["--interval", "0", "--", "true"], 2, "--interval must be seconds"),
    (["--out"], 2, "--out needs a value"),
    (["--threshold", "speed=0.5", "--", "true"], 2, "--threshold takes NAME=SHARE"),
    (["--threshold", "bottleneck=1.5", "--", "true"], 2, "--threshold takes NAME=SHARE"),
    (["--threshold", "bottleneck", "--", "true"], 2, "--threshold takes NAME=SHARE"),
])
def test_usage_errors(args, code, message):
    r = subprocess.run([STALL, "run", *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == code
    assert message in r.stderr and "usage: stall run" in r.stderr


def test_threshold_decides_what_is_input_bound(tmp_path):
    # the same loop, waiting ~60% for data: input-bound by default, not with
    # a bottleneck threshold above its wait share
    script = train_script(tmp_path, fetch_ms=3.0, step_ms=2.0, batches=25)
    r, rep, _ = stall_run(tmp_path, [PY, str(script)], "--quiet")
    assert r.returncode == 0, r.stderr
    assert rep["bottlenecks"][0]["type"] in INPUT_TYPES
    wait = rep["breakdown"]["data_wait_frac"]
    r, rep, _ = stall_run(tmp_path, [PY, str(script)], "--quiet", "--threshold", "bottleneck=0.95")
    assert r.returncode == 0, r.stderr
    assert wait < 0.95
    assert not [b for b in rep["bottlenecks"] if b["type"] in INPUT_TYPES], rep["bottlenecks"]
    assert rep["bottlenecks"][0]["type"] == "CPU_BOUND"


def test_command_not_found(tmp_path):
    r = subprocess.run([STALL, "run", "--out", str(tmp_path / "o"), "--", "no-such-command-xyz"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 127
    assert "no-such-command-xyz: command not found" in r.stderr


def test_unwritable_out_dir_is_said_before_the_program_starts(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    marker = tmp_path / "ran"
    r = subprocess.run([STALL, "run", "--out", str(blocker / "sub"), "--", "touch", str(marker)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "cannot write reports into" in r.stderr and str(blocker / "sub") in r.stderr
    assert not marker.exists()


def test_status_line_on_a_terminal_only(tmp_path):
    import pty
    script = train_script(tmp_path, fetch_ms=1.0, step_ms=20.0, batches=120)
    for quiet in (False, True):
        master, slave = pty.openpty()
        opts = ["--quiet"] if quiet else []
        p = subprocess.Popen([STALL, "run", *opts, "--out", str(tmp_path / "o"), "--", PY, script],
                             stdout=subprocess.PIPE, stderr=slave, text=True)
        os.close(slave)
        chunks = []
        while True:
            try:
                b = os.read(master, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not b:
                break
            chunks.append(b)
        p.wait(timeout=120)
        os.close(master)
        err = b"".join(chunks).decode(errors="replace")
        assert p.returncode == 0, err
        status = [s for s in err.split("\r") if "batches/s" in s and "data wait" in s]
        if quiet:
            assert not status
        else:
            assert status, err[-2000:]
            assert "\x1b[K" in err  # each refresh clears the line it rewrites
        assert "reports:" in err  # the diagnosis is printed either way


def test_the_python_api_inside_stall_run(tmp_path):
    # a program that profiles itself with the API still runs, with its own results
    code = textwrap.dedent("""
        import torch, stall
        from torch.utils.data import DataLoader, TensorDataset
        prof = stall.BottleneckProfiler()
        sid = prof.start_profiling_session("mine")
        loader = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=8)
        for (x,) in loader:
            with prof.profile_operation("model", stall.BottleneckType.CPU_COMPUTATION):
                (x @ x.T).sum()
        s = prof.stop_profiling_session(sid)
        ops = prof.get_session_summary(sid)
        print("API OK", sorted(ops["operations"]))
    """)
    r, rep, out = stall_run(tmp_path, [PY, "-c", code], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "API OK" in r.stdout and "model" in r.stdout
    assert rep["loaders"][0]["batches"] == 8
    assert any(o["name"] == "model" and o["count"] == 8 for o in rep["ops"])


@pytest.mark.parametrize("util, expect", [(97, "GPU_BOUND"), (15, "GPU_UNDERUTILIZED")])
def test_gpu_findings_with_the_fake_nvml(tmp_path, util, expect):
    # no GPU here: the fake NVML library of tests/nvml stands in for the driver,
    # the training itself is a healthy (not input-bound) CPU loop
    lib = os.path.join(BUILD, "tests", "nvml", "libfake_nvml.so")
    if not os.path.exists(lib):
        pytest.skip("the fake NVML library is built with the tests (meson -Dtests=true)")
    nvml = tmp_path / "nvml.txt"
    nvml.write_text("count 1\nd0.name Fake GPU 80GB\nd0.uuid GPU-fake-0\nd0.util %d 30\n"
                    "d0.mem 85899345920 42949672960 42949672960\n" % util)
    env = dict(os.environ, STALL_NVML_LIBRARY=lib, FAKE_NVML_SCRIPT=str(nvml))
    script = train_script(tmp_path, fetch_ms=0.0, step_ms=30.0, batches=20)
    r, rep, out = stall_run(tmp_path, [PY, script], env=env)
    assert r.returncode == 0, r.stderr
    assert rep["system"]["gpus"][0]["name"] == "Fake GPU 80GB"
    first = rep["bottlenecks"][0]
    assert first["type"] == expect, rep["bottlenecks"]
    assert first["evidence"]["gpu_util_mean_pct"] == pytest.approx(util, abs=1)
    assert not INPUT_TYPES & {b["type"] for b in rep["bottlenecks"]}


def test_report_is_valid_json_for_any_argument_bytes(tmp_path):
    # arguments are bytes, not always UTF-8: the report must still parse
    out = tmp_path / "o"
    r = subprocess.run([STALL, "run", "--quiet", "--out", str(out), "--", "sh", "-c", "exit 0",
                        b"\xff\xfe odd \"quote\" \x01"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "report.json").read_bytes().decode("utf-8"))
    assert rep["command"][3] == "\ufffd\ufffd odd \"quote\" \x01"
