"""Tests of stall._native and the thin `stall` package over it.

Run from the repository root after building (see python/stall/meson.build):

    PYTHONPATH=build-py/python /usr/bin/python3 -m pytest tests/python -q

One process records into one session directory: the first Session of this
pytest process creates it and every later one joins it, so the in-process
tests share it (each uses its own span names and drains what it wrote).
Tests that need a fresh directory, or process-wide settings such as thread
CPU time, run a child interpreter. STALL_SKIP_PIP_TEST=1 skips the slow
`pip install .` test.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

import stall
from stall import SpanKind, _native

REPO = Path(__file__).resolve().parents[2]
# the folder that holds the `stall` package under test (build-py/python...)
PKG_PARENT = str(Path(stall.__file__).resolve().parents[1])
# a session directory this pytest process was started in (stall run...), if any
INHERITED_DIR = os.environ.get("STALL_SESSION_DIR")


# ------------------------------------------------------------- helpers


def unique(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def child_env(**extra):
    """Environment for a child interpreter: no inherited stall session or
    settings, the package under test importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALL_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PKG_PARENT, env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def run_py(code, *args, timeout=120, **env_extra):
    """Runs `code` in a fresh interpreter; returns the JSON of its last line."""
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        env=child_env(**env_extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, f"child failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def drain_mine(session_dir, names):
    """Drains the session; returns this process's records named in `names`."""
    with stall.Reader(session_dir) as r:
        recs = r.drain()
    return [x for x in recs if x.pid == os.getpid() and x.name in names]


@pytest.fixture(scope="module")
def session():
    s = stall.Session("pytest-native")
    yield s
    s.stop()


# ------------------------------------------------------ module surface


def test_version_matches_build_files():
    assert stall.__version__ == _native.version() == _native.__version__
    meson = (REPO / "meson.build").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    meson_v = re.search(r"project\([^)]*?version:\s*'([^']+)'", meson, re.S).group(1)
    pyproject_v = re.search(r"^version\s*=\s*['\"]([^'\"]+)['\"]", pyproject, re.M).group(1)
    assert stall.__version__ == meson_v == pyproject_v
    major, minor, patch = map(int, stall.__version__.split("."))
    assert _native.VERSION_NUMBER == major * 10000 + minor * 100 + patch


def test_kinds_and_flags_mirror_the_header():
    expected = [
        "other", "data_loading", "preprocessing", "cpu_compute", "gpu_compute",
        "transfer", "io", "data_wait", "step", "session",
    ]
    assert len(SpanKind) == _native.KIND_COUNT == len(expected)
    for value, name in enumerate(expected):
        kind = SpanKind(value)
        assert kind.name.lower() == name
        assert stall.kind_name(kind) == name
        assert getattr(_native, "KIND_" + kind.name) == value
    assert stall.kind_name(99) == "unknown"
    assert stall.kind_name(-1) == "unknown"
    assert (stall.REC_HAS_CPU, stall.REC_INSTANT, stall.REC_TRUNCATED, stall.REC_SESSION_BEGIN,
            stall.REC_SESSION_END, stall.REC_OPEN) == (1, 2, 4, 8, 16, 32)


def test_now_ns_is_monotonic_nanoseconds():
    a = stall.now_ns()
    time.sleep(0.01)
    b = stall.now_ns()
    assert isinstance(a, int) and 5_000_000 <= b - a < 5_000_000_000


# ------------------------------------------------- spans, in process


def test_spans_recorded_with_name_kind_depth_arg(session):
    name = unique("read")
    t0 = stall.now_ns()
    stall.begin(SpanKind.IO, name)
    stall.end(4096)
    stall.begin(SpanKind.TRANSFER, name)
    stall.end(arg=2**64 - 1)
    t1 = stall.now_ns()
    recs = drain_mine(session.dir, {name})
    assert len(recs) == 2
    first, second = recs
    assert (first.kind, first.depth, first.arg) == (SpanKind.IO, 0, 4096)
    assert (second.kind, second.arg) == (SpanKind.TRANSFER, 2**64 - 1)
    for rec in recs:
        assert rec.tid == threading.get_native_id()
        assert t0 <= rec.start_ns <= rec.end_ns <= t1
        assert rec.flags & (stall.REC_INSTANT | stall.REC_TRUNCATED | stall.REC_OPEN) == 0
    assert first.end_ns <= second.start_ns


def test_nested_spans(session):
    outer, mid, inner = unique("outer"), unique("mid"), unique("inner")
    with stall.span(outer, SpanKind.STEP):
        with stall.span(mid, SpanKind.DATA_LOADING):
            stall.begin(SpanKind.PREPROCESSING, inner)
            stall.end(7)
    recs = drain_mine(session.dir, {outer, mid, inner})
    # records come in the order the spans ended: innermost first
    assert [(x.name, x.depth, x.kind) for x in recs] == [
        (inner, 2, SpanKind.PREPROCESSING),
        (mid, 1, SpanKind.DATA_LOADING),
        (outer, 0, SpanKind.STEP),
    ]
    i, m, o = recs
    assert o.start_ns <= m.start_ns <= i.start_ns <= i.end_ns <= m.end_ns <= o.end_ns
    assert i.arg == 7 and m.arg == 0


def test_int_name_ids_and_intern(session):
    name = unique("by_id")
    nid = stall.intern(name)
    assert isinstance(nid, int) and nid > 0
    assert stall.intern(name) == nid
    assert stall.intern("".join([name])) == nid  # an equal str, another object

    class Sub(str):
        pass

    assert stall.intern(Sub(name)) == nid
    stall.begin(SpanKind.CPU_COMPUTE, nid)
    stall.end()
    stall.begin(SpanKind.CPU_COMPUTE, Sub(name))
    stall.end()
    recs = drain_mine(session.dir, {name})
    assert [x.kind for x in recs] == [SpanKind.CPU_COMPUTE] * 2


def test_long_and_unicode_names(session):
    uni = unique("décodage_画像")
    long = unique("x" * 200)
    for n in (uni, long):
        stall.begin(SpanKind.OTHER, n)
        stall.end()
    with stall.Reader(session.dir) as r:
        got = [x.name for x in r.drain() if x.pid == os.getpid()]
    assert uni in got
    # names are truncated to 87 bytes of UTF-8
    assert long.encode()[:87].decode() in got


def test_instant_events(session):
    name = unique("tick")
    stall.instant(SpanKind.DATA_WAIT, name, 99)
    stall.instant(SpanKind.OTHER, name)
    recs = drain_mine(session.dir, {name})
    assert [(x.kind, x.arg) for x in recs] == [(SpanKind.DATA_WAIT, 99), (SpanKind.OTHER, 0)]
    for x in recs:
        assert x.flags & stall.REC_INSTANT
        assert x.start_ns == x.end_ns


def test_threads_record_into_their_own_rings(session):
    name = unique("thread_span")
    tids = []

    def work():
        tids.append(threading.get_native_id())
        with stall.span(name, SpanKind.IO):
            pass

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recs = drain_mine(session.dir, {name})
    assert sorted(x.tid for x in recs) == sorted(tids)
    assert all(x.depth == 0 for x in recs)


def test_open_spans_show_what_runs_now(session):
    name = unique("still_open")
    stall.begin(SpanKind.GPU_COMPUTE, name)
    try:
        with stall.Reader(session.dir) as r:
            open_now = [x for x in r.open_spans() if x.name == name]
    finally:
        stall.end()
    assert len(open_now) == 1
    rec = open_now[0]
    assert rec.flags & stall.REC_OPEN
    assert rec.end_ns is None and rec.kind == SpanKind.GPU_COMPUTE
    assert rec.pid == os.getpid() and rec.tid == threading.get_native_id()
    assert len(drain_mine(session.dir, {name})) == 1  # and then recorded once, closed


def test_processes_and_label(session):
    stall.set_process_label("pytest-main")
    with stall.span(unique("for_label")):
        pass
    with stall.Reader(session.dir) as r:
        # a joined directory keeps the name its creator gave it
        assert r.session_name == ("pytest-native" if INHERITED_DIR is None else r.session_name)
        assert isinstance(r.session_name, str) and r.session_name
        recs = r.drain()
        procs = r.processes()
    me = [p for p in procs if p["pid"] == os.getpid()]
    assert len(me) == 1
    p = me[0]
    assert p["alive"] is True and p["closed"] is False
    assert p["label"] == "pytest-main"
    assert p["ppid"] == os.getppid()
    assert p["threads"] >= 1 and p["dropped"] == 0
    assert p["records_read"] >= len([x for x in recs if x.pid == os.getpid()]) > 0
    assert set(p) == {"index", "pid", "ppid", "alive", "closed", "start_ns", "dropped", "threads",
                      "comm", "label", "records_read"}


def test_session_dir_of_a_child_before_its_first_span(session):
    # a process started with STALL_SESSION_DIR names that directory at once
    code = "import stall; print(stall.session_dir())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == session.dir


def test_session_context_manager_in_process(session):
    name = unique("cm_session")
    with stall.Session(name) as s:
        assert isinstance(s, stall.Session)
        assert s.name == name and not s.stopped
        assert s.dir == session.dir == stall.session_dir()  # joined the process's directory
    assert s.stopped
    s.stop()  # stopping again does nothing
    with pytest.raises(ValueError, match="stopped"):
        with s:
            pass
    markers = drain_mine(session.dir, {name})
    assert [x.flags & (stall.REC_SESSION_BEGIN | stall.REC_SESSION_END) for x in markers] == [
        stall.REC_SESSION_BEGIN,
        stall.REC_SESSION_END,
    ]
    assert all(x.kind == SpanKind.SESSION and x.flags & stall.REC_INSTANT for x in markers)
    assert markers[0].arg == markers[1].arg > 0  # the session id


def test_session_stopped_when_collected(session):
    name = unique("gc_session")
    s = stall.Session(name)
    del s
    markers = drain_mine(session.dir, {name})
    assert [bool(x.flags & stall.REC_SESSION_END) for x in markers] == [False, True]


def test_reader_is_exclusive_and_closes(session):
    r = stall.Reader(session.dir)
    try:
        with pytest.raises(ValueError, match="already being read"):
            stall.Reader(session.dir)
    finally:
        r.close()
    assert r.closed
    r.close()
    with pytest.raises(ValueError, match="closed"):
        r.drain()
    with stall.Reader(session.dir) as r2:  # the lock went with the first reader
        assert not r2.closed
    assert r2.closed


# ------------------------------------------------------ span() helper


class Boom(Exception):
    pass


def test_span_exception_propagates_and_span_ends(session):
    name, after = unique("boom"), unique("after")
    err = Boom("user error")
    with pytest.raises(Boom) as info:
        with stall.span(name, SpanKind.PREPROCESSING):
            raise err
    assert info.value is err
    with stall.span(after):
        pass
    recs = drain_mine(session.dir, {name, after})
    assert [(x.name, x.depth) for x in recs] == [(name, 0), (after, 0)]
    assert recs[0].end_ns is not None and recs[0].end_ns >= recs[0].start_ns


def test_span_decorator(session):
    name = unique("decorated")

    @stall.span(name, SpanKind.CPU_COMPUTE)
    def f(x, *, fail=False):
        """doc of f"""
        if fail:
            raise Boom(x)
        return x * 2

    assert f.__name__ == "f" and f.__doc__ == "doc of f"
    assert f(21) == 42
    with pytest.raises(Boom):
        f(1, fail=True)
    recs = drain_mine(session.dir, {name})
    assert [(x.kind, x.depth) for x in recs] == [(SpanKind.CPU_COMPUTE, 0)] * 2

    def gen():
        yield 1

    async def coro():
        pass

    for fn in (gen, coro):
        with pytest.raises(TypeError, match="generator or coroutine"):
            stall.span(name)(fn)


def test_span_object_is_reusable_and_picklable(session):
    import pickle

    name = unique("reused")
    sp = stall.span(name, SpanKind.IO)
    with sp:
        with sp:
            pass
    assert sp.name == name and sp.kind is SpanKind.IO
    assert repr(sp) == f"stall.span({name!r}, SpanKind.IO)"
    copy = pickle.loads(pickle.dumps(sp))
    assert (copy.name, copy.kind) == (name, SpanKind.IO)
    recs = drain_mine(session.dir, {name})
    assert [x.depth for x in recs] == [1, 0]


# ------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "call, exc, message",
    [
        (lambda: stall.begin("io", "x"), TypeError, r"begin\(\): kind must be an int"),
        (lambda: stall.begin(True, "x"), TypeError, "kind"),
        (lambda: stall.begin(10, "x"), ValueError, r"kind must be a span kind in 0\.\.9"),
        (lambda: stall.begin(-1, "x"), ValueError, "kind"),
        (lambda: stall.begin(2**80, "x"), ValueError, "kind"),
        (lambda: stall.begin(0, 1.5), TypeError, r"begin\(\): name must be a str or an int name id"),
        (lambda: stall.begin(0, None), TypeError, "name"),
        (lambda: stall.begin(0, ""), ValueError, "name must be a non-empty str"),
        (lambda: stall.begin(0, "a\0b"), ValueError, "name must not contain NUL"),
        (lambda: stall.begin(0, -1), ValueError, "name id"),
        (lambda: stall.begin(0, 2**32), ValueError, "name id"),
        (lambda: stall.begin(0), TypeError, r"begin\(\) takes exactly 2 arguments"),
        (lambda: stall.begin(kind=0, name="x"), TypeError, "keyword"),
        (lambda: stall.instant(0, "x", "big"), TypeError, r"instant\(\): arg must be an int"),
        (lambda: stall.instant(0, "x", arg=-5), ValueError, r"arg must be in 0\.\.2\*\*64-1"),
        (lambda: stall.instant(0, "x", 1, arg=2), TypeError, "multiple values for argument 'arg'"),
        (lambda: stall.instant(0, "x", bogus=1), TypeError, "unexpected keyword argument 'bogus'"),
        (lambda: stall.instant(0), TypeError, "missing required argument 'name'"),
        (lambda: stall.intern(3), TypeError, r"intern\(\): name must be a str"),
        (lambda: stall.intern(""), ValueError, "non-empty"),
        (lambda: stall.kind_name("io"), TypeError, "kind must be an int"),
        (lambda: stall.set_process_label(5), TypeError, "label must be a str"),
        (lambda: stall.set_process_label("a\0"), ValueError, "label must not contain NUL"),
        (lambda: stall.Session(123), TypeError, r"Session\(\): name must be a str"),
        (lambda: stall.Session(""), ValueError, "name must be a non-empty str"),
        (lambda: stall.Session("s", "positional"), TypeError, "positional"),
        (lambda: stall.Session("s", base_dir=5), TypeError, "base_dir must be a str or os.PathLike"),
        (lambda: stall.Session("s", ring_records="many"), TypeError, "ring_records must be an int"),
        (lambda: stall.Session("s", ring_records=-1), ValueError, "ring_records"),
        (lambda: stall.Session("s", ring_records=100), ValueError, "ring_records must be a power of two"),
        (lambda: stall.Session("s", max_threads=5000), ValueError, "max_threads must be in 1..1024"),
        (lambda: stall.Session("s", bogus=1), TypeError, "bogus"),
        (lambda: stall.Reader(5), TypeError, r"Reader\(\): dir must be a str or os.PathLike"),
        (lambda: stall.Reader(""), ValueError, "dir must not be empty"),
        (lambda: stall.span(5), TypeError, r"span\(\): name must be a str"),
        (lambda: stall.span(""), ValueError, r"span\(\): name must be a non-empty str"),
        (lambda: stall.span("a\0"), ValueError, r"span\(\): name must not contain NUL"),
        (lambda: stall.span("x", True), TypeError, "kind must be a SpanKind or an int"),
        (lambda: stall.span("x", "io"), TypeError, "kind must be a SpanKind or an int"),
        (lambda: stall.span("x", 42), ValueError, "kind must be a span kind"),
        (lambda: stall.span("x")(42), TypeError, "can decorate a function"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(session, call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_end_with_bad_arg_still_closes_the_span(session):
    name, after = unique("bad_end"), unique("after_bad_end")
    stall.begin(SpanKind.IO, name)
    with pytest.raises(TypeError, match=r"end\(\): arg must be an int"):
        stall.end("not a number")
    stall.begin(SpanKind.IO, name)
    with pytest.raises(ValueError, match="arg must be in"):
        stall.end(-1)
    stall.begin(SpanKind.IO, after)
    stall.end()
    with pytest.raises(TypeError, match="unexpected keyword"):
        stall.end(argh=1)
    recs = drain_mine(session.dir, {name, after})
    assert [(x.name, x.depth, x.arg) for x in recs] == [(name, 0, 0), (name, 0, 0), (after, 0, 0)]


def test_reader_errors_carry_the_library_message(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="session directory") as info:
        stall.Reader(missing)
    assert info.value.filename == missing
    with pytest.raises(ValueError, match="not a stall session directory"):
        stall.Reader(tmp_path)


# --------------------------------------- fresh sessions, in a child


def test_session_creates_exports_and_removes_its_directory(tmp_path):
    out = run_py(
        """
        import json, os, sys, stall
        base = sys.argv[1]
        before = [stall.session_dir(), os.environ.get("STALL_SESSION_DIR")]
        with stall.Session("fresh one", base_dir=base) as s:
            with stall.span("work", stall.SpanKind.STEP):
                pass
            probe = __import__("subprocess").run(
                [sys.executable, "-c", "import os; print(os.environ.get('STALL_SESSION_DIR'))"],
                capture_output=True, text=True).stdout.strip()
            with stall.Reader(s.dir) as r:
                names = [x.name for x in r.drain()]
                sname = r.session_name
            info = dict(dir=s.dir, exists=os.path.isdir(s.dir), env=os.environ.get("STALL_SESSION_DIR"),
                        process_dir=stall.session_dir(), probe=probe)
        print(json.dumps(dict(before=before, names=names, sname=sname, **info)))
        """,
        tmp_path,
    )
    assert out["before"] == [None, None]
    assert out["dir"].startswith(str(tmp_path) + "/stall-") and out["exists"]
    assert out["env"] == out["dir"] == out["process_dir"] == out["probe"]
    assert out["sname"] == "fresh one"
    assert out["names"] == ["fresh one", "work"]  # begin marker, span (the end marker comes later)
    assert not os.path.exists(out["dir"])  # removed when its creator exited (keep=False)


def test_session_keep_lets_a_later_reader_drain(tmp_path):
    out = run_py(
        """
        import json, sys, stall
        s = stall.Session("kept", base_dir=sys.argv[1], keep=True, no_export=True)
        stall.set_process_label("gone")
        with stall.span("left_behind", stall.SpanKind.IO):
            pass
        s.stop()
        import os
        print(json.dumps(dict(dir=s.dir, env=os.environ.get("STALL_SESSION_DIR"))))
        """,
        tmp_path,
    )
    assert out["env"] is None  # no_export
    assert os.path.isdir(out["dir"])
    r = stall.Reader(out["dir"])
    try:
        recs = r.drain()
        procs = r.processes()
    finally:
        r.close(remove=True)
    assert [x.name for x in recs] == ["kept", "left_behind", "kept"]
    assert len(procs) == 1 and procs[0]["label"] == "gone"
    assert procs[0]["alive"] is False and procs[0]["closed"] is True
    assert not os.path.exists(out["dir"])


def test_session_name_with_quotes_and_control_characters_round_trips(tmp_path):
    name = 'tab\there "quoted" back\\slash'
    out = run_py(
        """
        import json, sys, stall
        s = stall.Session(sys.argv[2], base_dir=sys.argv[1], keep=True, no_export=True)
        s.stop()
        print(json.dumps(dict(dir=s.dir)))
        """,
        tmp_path,
        name,
    )
    r = stall.Reader(out["dir"])
    try:
        assert r.session_name == name
    finally:
        r.close(remove=True)


def test_session_start_failure_raises_value_error_with_library_message(tmp_path):
    out = run_py(
        """
        import json, sys, stall
        try:
            stall.Session("x", base_dir=sys.argv[1] + "/does/not/exist")
        except ValueError as e:
            print(json.dumps(str(e)))
        """,
        tmp_path,
    )
    assert out.startswith("Session(): base_dir") and "No such file or directory" in out


@pytest.mark.parametrize("cpu", [False, True])
def test_thread_cpu_time_only_when_asked(tmp_path, cpu):
    out = run_py(
        """
        import json, sys, stall
        with stall.Session("cpu", base_dir=sys.argv[1], thread_cpu_time=sys.argv[2] == "1") as s:
            with stall.span("busy", stall.SpanKind.CPU_COMPUTE):
                x = 0
                for i in range(300000):
                    x += i
            with stall.Reader(s.dir) as r:
                recs = [list(x) for x in r.drain() if x.name == "busy"]
        print(json.dumps(recs))
        """,
        tmp_path,
        int(cpu),
    )
    assert len(out) == 1
    rec = stall.Record(out[0])
    if cpu:
        assert rec.flags & stall.REC_HAS_CPU
        assert rec.cpu_ns is not None and 0 < rec.cpu_ns <= (rec.end_ns - rec.start_ns) * 1.05 + 1_000_000
    else:
        assert not rec.flags & stall.REC_HAS_CPU
        assert rec.cpu_ns is None


MP_SCRIPT = """
import json, multiprocessing as mp, os, sys
import stall


def child(role, q):
    stall.set_process_label(role)
    with stall.span(role + "_work", stall.SpanKind.DATA_LOADING):
        stall.instant(stall.SpanKind.OTHER, role + "_tick", 5)
    q.put(dict(role=role, pid=os.getpid(), dir=stall.session_dir(),
               env=os.environ.get("STALL_SESSION_DIR")))


if __name__ == "__main__":
    with stall.Session("mp", base_dir=sys.argv[1]) as s:
        stall.set_process_label("main")
        with stall.span("main_work"):
            pass
        out = dict(dir=s.dir, main_pid=os.getpid(), children=[], exitcodes=[])
        for method in ("fork", "spawn"):
            ctx = mp.get_context(method)
            q = ctx.Queue()
            p = ctx.Process(target=child, args=(method + "-child", q))
            p.start()
            out["children"].append(q.get(timeout=120))
            p.join(120)
            out["exitcodes"].append(p.exitcode)
        with stall.Reader(s.dir) as r:
            out["records"] = [[x.pid, x.name, x.kind, x.depth, x.arg, x.flags] for x in r.drain()]
            out["procs"] = r.processes()
    print(json.dumps(out))
"""


def test_fork_and_spawn_children_record_into_the_same_session(tmp_path):
    script = tmp_path / "mp_script.py"
    script.write_text(MP_SCRIPT)
    r = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["exitcodes"] == [0, 0]
    children = {c["role"]: c for c in out["children"]}
    assert set(children) == {"fork-child", "spawn-child"}
    for c in children.values():
        assert c["dir"] == out["dir"]
    # the spawn child is a new interpreter: it found the directory through the environment
    assert children["spawn-child"]["env"] == out["dir"]
    pids = {c["pid"] for c in children.values()}
    assert len(pids) == 2 and out["main_pid"] not in pids

    by_pid = {}
    for pid, name, kind, depth, arg, flags in out["records"]:
        by_pid.setdefault(pid, []).append((name, kind, depth, arg, flags & stall.REC_INSTANT))
    for role, c in children.items():
        assert by_pid[c["pid"]] == [
            (role + "_tick", SpanKind.OTHER, 1, 5, stall.REC_INSTANT),
            (role + "_work", SpanKind.DATA_LOADING, 0, 0, 0),
        ]
    assert ("main_work", SpanKind.OTHER, 0, 0, 0) in by_pid[out["main_pid"]]

    procs = {p["pid"]: p for p in out["procs"]}
    assert set(procs) >= pids | {out["main_pid"]}
    for role, c in children.items():
        p = procs[c["pid"]]
        assert p["label"] == role and p["ppid"] == out["main_pid"] and p["alive"] is False
    assert procs[children["spawn-child"]["pid"]]["closed"] is True  # exited through atexit
    assert procs[out["main_pid"]]["label"] == "main"


# ------------------------------------------------------- pip install


def _pip_test_skip_reason():
    if os.environ.get("STALL_SKIP_PIP_TEST") == "1":
        return "STALL_SKIP_PIP_TEST=1"
    for mod in ("venv", "ensurepip", "mesonpy"):
        if importlib.util.find_spec(mod) is None:
            return f"{sys.executable} has no {mod} module (install python3-venv / python3-mesonpy)"
    for tool in ("meson", "ninja"):
        if shutil.which(tool) is None:
            return f"{tool} is not on PATH"
    return None


def _copy_source(dst):
    skip = {".git", "dist", "stall-out", "__pycache__"}

    def ignore(folder, names):
        ignored = {n for n in names if n in skip or n.endswith(".pyc") or n.startswith(".mesonpy")}
        if Path(folder) == REPO:  # build trees live at the top
            ignored |= {n for n in names if n == "build" or n.startswith(("build-", ".venv"))}
        return ignored

    shutil.copytree(REPO, dst, ignore=ignore)


@pytest.mark.skipif(_pip_test_skip_reason() is not None, reason=str(_pip_test_skip_reason()))
def test_pip_install(tmp_path):
    src, venv = tmp_path / "src", tmp_path / "venv"
    _copy_source(src)  # meson-python writes .mesonpy-native-file.ini into the source tree
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("STALL_")}
    r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                       env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.skip(f"cannot create a venv with pip: {r.stdout}{r.stderr}".strip())
    r = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-build-isolation", "--no-index", str(src)],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert r.returncode == 0, f"pip install failed:\n{r.stdout[-5000:]}\n{r.stderr[-5000:]}"

    code = textwrap.dedent(
        """
        import json, stall
        with stall.Session("venv", base_dir=__import__("sys").argv[1]) as s:
            with stall.span("installed", stall.SpanKind.IO):
                pass
            with stall.Reader(s.dir) as rd:
                names = [x.name for x in rd.drain()]
        print(json.dumps([stall.__version__, stall.__file__, stall._native.__file__, names]))
        """
    )
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code, str(tmp_path)],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    version, init_file, native_file, names = json.loads(r.stdout)
    assert version == stall.__version__
    for f in (init_file, native_file):
        assert Path(f).resolve().is_relative_to(venv.resolve()), f
    assert names == ["venv", "installed"]

    cli = venv / "bin" / "stall"
    assert cli.exists(), "the stall executable was not installed into the venv's bin/"
    r = subprocess.run([str(cli), "version"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"stall {stall.__version__}", r.stdout + r.stderr
    # the installed `stall run` finds the installed site hook
    probe = "import sys; print('stall._autohook' in sys.modules)"
    r = subprocess.run([str(cli), "run", "--quiet", "--out", str(tmp_path / "out"), "--",
                        str(venv / "bin" / "python"), "-c", probe],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stdout + r.stderr
    assert "hook was not found" not in r.stderr
