"""Tests of stall._native's Profiler, OpSpan, FunctionSpan, register_kind and
Engine (python/stall/_native/ops.c and engine.c).

Run from the repository root after building:

    PYTHONPATH=build-nb/python /usr/bin/python3 -m pytest tests/python/test_native_engine.py -q

One process records into one session directory: the first Session of this
pytest process creates it, later ones join it. In-process tests use unique
span names and read back what they wrote with a Reader; Engine tests, which
need a directory of their own (one reader drains a directory at a time),
run in child interpreters.
"""

import enum
import functools
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

import stall
from stall import _native

PKG_PARENT = str(Path(stall.__file__).resolve().parents[1])


def unique(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def run_py(code, *args, timeout=120):
    """Runs `code` in a fresh interpreter with no inherited stall session;
    returns the JSON of its last line of output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALL_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PKG_PARENT, env.get("PYTHONPATH")) if p)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                       env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"child failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def drain_mine(session_dir, names):
    with _native.Reader(session_dir) as r:
        recs = r.drain()
    return [x for x in recs if x.pid == os.getpid() and x.name in names]


@pytest.fixture(scope="module")
def session():
    s = _native.Session("pytest-native-engine")
    yield s
    s.stop()


class Bottleneck(enum.Enum):
    DATA_LOADING = "data_loading"
    COMPUTE = "compute"
    UNREGISTERED = "nope"


_native.register_kind(Bottleneck.DATA_LOADING, _native.KIND_DATA_LOADING)
_native.register_kind(Bottleneck.COMPUTE, _native.KIND_CPU_COMPUTE)


class MyProfiler(_native.Profiler):
    def __init__(self, label):
        self.label = label


# ------------------------------------------------- profile_operation


def test_profile_operation_records_name_kind_depth(session):
    p = MyProfiler("x")
    assert p.label == "x"
    outer, inner, plain = unique("outer"), unique("inner"), unique("plain")
    with p.profile_operation(outer, Bottleneck.DATA_LOADING) as sp:
        assert isinstance(sp, _native.OpSpan)
        assert sp.kind == _native.KIND_DATA_LOADING
        with p.profile_operation(inner, type=_native.KIND_IO):
            pass
    with p.profile_operation(plain):
        pass
    recs = {r.name: r for r in drain_mine(session.dir, {outer, inner, plain})}
    assert set(recs) == {outer, inner, plain}
    assert (recs[outer].kind, recs[outer].depth) == (_native.KIND_DATA_LOADING, 0)
    assert (recs[inner].kind, recs[inner].depth) == (_native.KIND_IO, 1)
    assert (recs[plain].kind, recs[plain].depth) == (_native.KIND_OTHER, 0)
    assert recs[outer].start_ns <= recs[inner].start_ns <= recs[inner].end_ns <= recs[outer].end_ns


def test_deep_nesting_beyond_the_spares(session):
    p = MyProfiler("deep")
    names = [unique(f"d{i}") for i in range(8)]
    spans = []

    def nest(i):
        if i == len(names):
            return
        with p.profile_operation(names[i], Bottleneck.COMPUTE) as s:
            spans.append(s)
            nest(i + 1)

    nest(0)
    assert len({id(s) for s in spans}) == len(names)  # each level its own OpSpan
    recs = {r.name: r for r in drain_mine(session.dir, set(names))}
    assert [recs[n].depth for n in names] == list(range(8))
    assert all(recs[n].kind == _native.KIND_CPU_COMPUTE for n in names)


def test_opspan_is_reused_only_when_free(session):
    p = MyProfiler("reuse")
    a = p.profile_operation("reuse_a")
    b = p.profile_operation("reuse_b")
    assert a is not b  # a is still held here
    assert (a.name_id, b.name_id) == (_native.intern("reuse_a"), _native.intern("reuse_b"))
    del a, b
    with p.profile_operation("reuse_c", Bottleneck.COMPUTE) as c:
        assert c.kind == _native.KIND_CPU_COMPUTE


def test_exception_propagates_and_span_ends(session):
    p = MyProfiler("exc")
    name, after = unique("boom"), unique("after")
    with pytest.raises(KeyError, match="inside"):
        with p.profile_operation(name, Bottleneck.DATA_LOADING):
            raise KeyError("inside")
    with p.profile_operation(after):
        pass
    recs = {r.name: r for r in drain_mine(session.dir, {name, after})}
    assert recs[name].end_ns is not None and recs[name].end_ns >= recs[name].start_ns
    assert recs[after].depth == 0  # the failed block left nothing open


def test_exit_without_enter_does_not_close_an_outer_span(session):
    p = MyProfiler("unbalanced")
    outer, inner = unique("outer"), unique("inner")
    with p.profile_operation(outer):
        stray = p.profile_operation(unique("stray"))
        assert stray.__exit__(None, None, None) is False
        with p.profile_operation(inner):
            pass
    recs = {r.name: r for r in drain_mine(session.dir, {outer, inner})}
    assert recs[inner].depth == 1 and recs[outer].depth == 0


def test_profile_operation_bad_arguments_name_them(session):
    p = MyProfiler("bad")
    with pytest.raises(TypeError, match=r"profile_operation\(\): type must be None, an int span kind"):
        p.profile_operation("x", Bottleneck.UNREGISTERED)
    with pytest.raises(TypeError, match=r"type must be .* not list"):
        p.profile_operation("x", [1])
    with pytest.raises(TypeError, match=r"type must be .* not str"):
        p.profile_operation("x", "data_loading")
    with pytest.raises(ValueError, match=r"type must be a span kind in 0\.\.9, got 99"):
        p.profile_operation("x", 99)
    with pytest.raises(TypeError, match=r"profile_operation\(\): name must be a str, not int"):
        p.profile_operation(3)
    with pytest.raises(TypeError, match="missing required argument 'name'"):
        p.profile_operation()
    with pytest.raises(TypeError, match="unexpected keyword argument 'kind'"):
        p.profile_operation("x", kind=1)


def test_register_kind(session):
    class Mine(enum.IntEnum):
        LOAD = 100  # an int, but not a span kind: only the registration counts

    _native.register_kind(Mine.LOAD, _native.KIND_TRANSFER)
    p = MyProfiler("reg")
    with p.profile_operation("reg", Mine.LOAD) as s:
        assert s.kind == _native.KIND_TRANSFER
    key = ("a", "hashable", "tuple")
    _native.register_kind(key, _native.KIND_IO)
    assert p.profile_operation("reg", ("a", "hashable", "tuple")).kind == _native.KIND_IO  # equal, not identical
    _native.register_kind(key, _native.KIND_STEP)  # re-registering replaces the kind
    assert p.profile_operation("reg", key).kind == _native.KIND_STEP
    with pytest.raises(ValueError, match=r"register_kind\(\): kind must be a span kind"):
        _native.register_kind("x", 42)
    with pytest.raises(TypeError, match=r"register_kind\(\): kind must be an int"):
        _native.register_kind("x", "io")
    with pytest.raises(TypeError, match=r"register_kind\(\): obj must be hashable"):
        _native.register_kind([], 1)
    with pytest.raises(TypeError, match=r"register_kind\(\): obj must not be None"):
        _native.register_kind(None, 1)


# --------------------------------------------------------- FunctionSpan


def test_function_span_passes_args_kwargs_and_return(session):
    name = unique("fn")

    def add(a, b=2, *rest, scale=1, **kw):
        """Adds."""
        return (a + b + sum(rest)) * scale, kw

    add.custom = "kept"
    fs = _native.FunctionSpan(add, name, Bottleneck.COMPUTE)
    assert fs(1) == (3, {})
    assert fs(1, 2, 3, scale=10, extra=True) == (60, {"extra": True})
    assert fs.__wrapped__ is add
    assert (fs.__name__, fs.__qualname__, fs.__doc__, fs.__module__) == (
        "add", add.__qualname__, "Adds.", __name__)
    assert fs.custom == "kept"
    assert fs.span_name == name and fs.kind == _native.KIND_CPU_COMPUTE
    fs.other = 1  # a __dict__ like a function's
    assert fs.__dict__["other"] == 1
    assert functools.wraps(fs)(lambda: None).__wrapped__ is fs
    recs = drain_mine(session.dir, {name})
    assert len(recs) == 2 and all(r.kind == _native.KIND_CPU_COMPUTE and r.depth == 0 for r in recs)


def test_function_span_preserves_the_exception_and_ends(session):
    name, after = unique("raiser"), unique("after")
    err = ValueError("original")

    def f():
        raise err

    fs = _native.FunctionSpan(f, name)
    with pytest.raises(ValueError) as info:
        fs()
    assert info.value is err
    assert info.traceback[-1].name == "f"  # the traceback reaches into func
    _native.begin(_native.KIND_OTHER, after)
    _native.end()
    recs = {r.name: r for r in drain_mine(session.dir, {name, after})}
    assert recs[name].end_ns is not None
    assert recs[after].depth == 0


def test_function_span_binds_as_a_method(session):
    name = unique("method")

    class C:
        def __init__(self):
            self.v = 5

        def get(self, k, *, mul=1):
            return (self.v + k) * mul

        get = _native.FunctionSpan(get, name, _native.KIND_STEP)

        @staticmethod
        def st(x):
            return x

    c = C()
    assert c.get(1) == 6
    assert c.get(1, mul=2) == 12
    bound = c.get
    assert bound.__self__ is c and bound.__func__ is C.__dict__["get"]
    assert C.get(c, 2) == 7  # through the class: unbound, like a function
    assert getattr(c, "get")(0) == 5
    recs = drain_mine(session.dir, {name})
    assert len(recs) == 4 and {r.kind for r in recs} == {_native.KIND_STEP}


def test_function_span_bad_arguments(session):
    with pytest.raises(TypeError, match=r"FunctionSpan\(\): func must be callable, not int"):
        _native.FunctionSpan(3, "x")
    with pytest.raises(TypeError, match=r"FunctionSpan\(\): name must be a str"):
        _native.FunctionSpan(print, 3)
    with pytest.raises(TypeError, match=r"FunctionSpan\(\): type must be None"):
        _native.FunctionSpan(print, "x", object())
    fs = _native.FunctionSpan(len, "len", type=Bottleneck.DATA_LOADING)
    assert fs("abc") == 3 and fs.__name__ == "len"


def test_hot_path_allocates_nothing_per_block(session):
    import tracemalloc

    p = MyProfiler("alloc")
    T = Bottleneck.DATA_LOADING
    for _ in range(100):  # warm the caches
        with p.profile_operation("alloc_op", T):
            pass
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(10000):
        with p.profile_operation("alloc_op", T):
            pass
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert grown < 10000  # not one object per block
    with _native.Reader(session.dir) as r:
        r.drain()


# ------------------------------------------------------------- Engine

ENGINE_PRELUDE = """
import json, os, sys, time, enum
from stall import _native as n
"""


def test_engine_ops_values_after_spans():
    out = run_py(ENGINE_PRELUDE + """
class P(n.Profiler):
    pass
p = P()
s = n.Session("eng")
e = n.Engine(s.dir, no_sampler=True)
for _ in range(3):
    with p.profile_operation("sleepy", n.KIND_IO):
        time.sleep(0.02)
        with p.profile_operation("inner", n.KIND_PREPROCESSING):
            time.sleep(0.01)
f = n.FunctionSpan(lambda: time.sleep(0.005), "fs_call", n.KIND_DATA_LOADING)
for _ in range(4):
    f()
n.begin(n.KIND_TRANSFER, "with_arg"); n.end(1000)
taken = e.drain()
ops = {o["name"]: o for o in e.ops()}
order = [o["name"] for o in e.ops()]
e.close()
print(json.dumps({"taken": taken, "ops": ops, "order": order}))
""")
    ops = out["ops"]
    assert out["taken"] >= 11
    keys = {"name", "kind", "kind_name", "count", "total_ns", "self_ns", "min_ns", "max_ns", "p50_ns",
            "p95_ns", "p99_ns", "cpu_ns", "arg_sum", "truncated", "processes", "first_ns", "last_ns"}
    assert set(ops["sleepy"]) == keys
    s, i, f = ops["sleepy"], ops["inner"], ops["fs_call"]
    assert (s["count"], i["count"], f["count"], ops["with_arg"]["count"]) == (3, 3, 4, 1)
    assert (s["kind"], s["kind_name"]) == (_native.KIND_IO, "io")
    assert i["kind_name"] == "preprocessing" and f["kind_name"] == "data_loading"
    assert s["total_ns"] >= 3 * 30_000_000
    assert i["total_ns"] >= 3 * 10_000_000 and f["total_ns"] >= 4 * 5_000_000
    assert s["self_ns"] <= s["total_ns"] - i["total_ns"] + 1000
    assert s["min_ns"] >= 30_000_000 and s["max_ns"] >= s["min_ns"]
    assert s["min_ns"] * 0.99 <= s["p50_ns"] <= s["max_ns"] * 1.01
    assert s["cpu_ns"] is None  # thread CPU time was not asked for
    assert ops["with_arg"]["arg_sum"] == 1000
    assert s["processes"] == 1 and s["truncated"] == 0
    assert s["first_ns"] < s["last_ns"]
    assert out["order"][0] == "sleepy"  # largest total first


def test_engine_sessions_count_only_their_spans():
    out = run_py(ENGINE_PRELUDE + """
s = n.Session("eng")
e = n.Engine(s.dir, no_sampler=True)
n.begin(n.KIND_IO, "before"); time.sleep(0.01); n.end()
e.session_begin(7, "epoch 1", n.now_ns())
for _ in range(2):
    n.begin(n.KIND_IO, "during"); time.sleep(0.01); n.end()
n.begin(n.KIND_STEP, "step"); time.sleep(0.01); n.end()
e.session_end(7, n.now_ns())
n.begin(n.KIND_IO, "after"); n.end()
e.drain()
res = {
  "s7": sorted((o["name"], o["count"]) for o in e.ops(7)),
  "all": sorted((o["name"], o["count"]) for o in e.ops(session_id=0)),
  "wall": e.session_wall_ns(7),
  "kt": e.kind_time(7),
}
errs = {}
for label, call in [("ops", lambda: e.ops(99)), ("kt", lambda: e.kind_time(99)),
                    ("begin0", lambda: e.session_begin(0, "x", 1)),
                    ("dup", lambda: (e.session_begin(8, "x", 1), e.session_begin(8, "x", 2)))]:
    try:
        call()
        errs[label] = None
    except Exception as x:
        errs[label] = [type(x).__name__, str(x)]
res["errs"] = errs
e.close()
try:
    e.ops()
except ValueError as x:
    res["closed"] = str(x)
print(json.dumps(res))
""")
    assert out["s7"] == [["during", 2], ["step", 1]]
    assert out["all"] == [["after", 1], ["before", 1], ["during", 2], ["step", 1]]
    assert out["wall"] >= 30_000_000
    assert out["kt"]["io"] >= 20_000_000 and out["kt"]["step"] >= 10_000_000
    assert set(out["kt"]) == {_native.kind_name(k) for k in range(_native.KIND_COUNT)}
    assert out["errs"]["ops"][0] == "KeyError" and "99" in out["errs"]["ops"][1]
    assert out["errs"]["kt"][0] == "KeyError"
    assert out["errs"]["begin0"] == ["ValueError", "Engine.session_begin(): id must be > 0 (0 is the whole run)"]
    assert out["errs"]["dup"][0] == "ValueError"
    assert out["closed"] == "Engine.ops(): the engine is closed"


def test_engine_thread_and_sampler_shapes():
    out = run_py(ENGINE_PRELUDE + """
s = n.Session("eng")
e = n.Engine(s.dir, interval=0.01, drain_interval=0.01, no_gpu=True, max_samples=64)
res = {"latest0": e.latest(), "count0": e.sample_count(), "dir": e.dir == s.dir}
e.start()
for _ in range(5):
    n.begin(n.KIND_IO, "bg"); time.sleep(0.01); n.end()
time.sleep(0.2)
e.stop()
res["bg"] = [o["count"] for o in e.ops() if o["name"] == "bg"]
e.sample_now()
res["latest"] = e.latest()
res["procs"] = e.processes()
res["gpus"] = e.gpus()
res["cores"] = e.cores()
res["series"] = e.series("cpu_user_share")
res["count"] = e.sample_count()
res["mem"] = e.memory_bytes()
res["names"] = n.metric_names()
try:
    e.series("no_such_metric")
except ValueError as x:
    res["bad_metric"] = str(x)
e.close()
res["pid"] = os.getpid()
print(json.dumps(res))
""")
    assert out["latest0"] is None and out["count0"] == 0 and out["dir"]
    assert out["bg"] == [5]  # the engine thread drained them
    lt = out["latest"]
    for k in ("t_ns", "cpu_user", "cpu_system", "cpu_iowait", "cpu_steal", "cpu_idle", "ncpus",
              "usable_cores", "load1", "mem_total_bytes", "mem_available_bytes",
              "mem_usable_available_bytes", "swap_total_bytes", "psi_cpu_some_avg10", "disk_busy",
              "net_rx_bytes", "cpu_freq_mhz", "cgroup_version", "cg_cpu_quota_us", "cg_mem_limit_bytes"):
        assert k in lt, k
    assert "valid" not in lt
    assert lt["ncpus"] >= 1 and lt["mem_total_bytes"] > 0
    assert lt["cpu_user"] is None or 0 <= lt["cpu_user"] <= 1
    procs = out["procs"]
    assert procs[0]["pid"] == out["pid"] and procs[0]["depth"] == 0
    assert procs[0]["rss_bytes"] > 0 and procs[0]["state"] in ("R", "S", "D")
    assert {"pid", "ppid", "comm", "cpu_util", "pss_bytes", "read_bytes", "gpu_mem_bytes"} <= set(procs[0])
    assert procs[0]["gpu_mem_bytes"] is None  # no_gpu: unknown, not 0
    assert out["gpus"] == []
    assert len(out["cores"]) >= 1
    assert out["count"] >= 2
    assert out["series"] and all(len(p) == 6 for p in out["series"])
    t, span, lo, avg, hi, n = out["series"][-1]
    assert isinstance(t, int) and (avg is None or lo <= avg <= hi)
    assert out["mem"] > 0
    assert "cpu_user_share" in out["names"] and len(out["names"]) == len(set(out["names"]))
    assert "metric must be one of metric_names()" in out["bad_metric"]


def test_engine_without_sampler():
    out = run_py(ENGINE_PRELUDE + """
s = n.Session("eng")
e = n.Engine(s.dir, no_sampler=True)
res = [e.latest(), e.processes(), e.gpus(), e.cores(), e.series("load1" if "load1" in n.metric_names() else n.metric_names()[0]),
       e.sample_count(), e.memory_bytes()]
try:
    e.sample_now()
except ValueError as x:
    res.append(str(x))
e.close()
print(json.dumps(res))
""")
    assert out[:7] == [None, [], [], [], [], 0, 0]
    assert "no sampler" in out[7]


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"interval": 0.0005}, ValueError, "interval must be at least 0.001 s"),
    ({"interval": "fast"}, TypeError, "interval must be a number of seconds"),
    ({"drain_interval": 0}, ValueError, "drain_interval must be at least 0.001 s"),
    ({"max_samples": 3}, ValueError, "max_samples must be in 16..1000000"),
    ({"max_samples": -1}, ValueError, "max_samples"),
    ({"root_pid": -5}, ValueError, "root_pid"),
    ({"root_pid": "me"}, TypeError, "root_pid must be an int"),
    ({"bogus": 1}, TypeError, "bogus"),
])
def test_engine_bad_arguments_name_them(tmp_path, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        _native.Engine(str(tmp_path), **kwargs)


def test_engine_bad_dir(tmp_path):
    with pytest.raises(FileNotFoundError):
        _native.Engine(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"Engine\(\)"):
        _native.Engine(str(tmp_path))  # exists, but is no session
    with pytest.raises(TypeError, match="dir must be a str or os.PathLike"):
        _native.Engine(3)


def test_engine_close_remove_deletes_the_directory():
    out = run_py(ENGINE_PRELUDE + """
s = n.Session("eng", keep=True)
d = s.dir
n.begin(n.KIND_IO, "x"); n.end()
s.stop()
e = n.Engine(d, no_sampler=True)
e.drain()
existed = os.path.isdir(d)
e.close(remove=True)
e.close()  # a second close does nothing
print(json.dumps([existed, os.path.isdir(d), e.closed]))
""")
    assert out == [True, False, True]


def test_opspan_protocol_through_the_class_and_exitstack(session):
    import contextlib

    p = MyProfiler("stack")
    a, b = unique("stack_a"), unique("stack_b")
    with contextlib.ExitStack() as st:  # looks __enter__/__exit__ up on the type
        st.enter_context(p.profile_operation(a, Bottleneck.COMPUTE))
        st.enter_context(p.profile_operation(b))
    sp = p.profile_operation(unique("manual"))
    assert type(sp).__enter__(sp) is sp and type(sp).__exit__(sp, None, None, None) is False
    with pytest.raises(TypeError, match="needs an OpSpan"):
        type(sp).__enter__(object())
    with pytest.raises(TypeError, match="OpSpan takes no argument"):
        sp(1)
    recs = {r.name: r for r in drain_mine(session.dir, {a, b})}
    assert (recs[a].depth, recs[b].depth) == (0, 1)
    assert recs[b].end_ns <= recs[a].end_ns


def test_engine_devices_lists_disks_then_interfaces_with_unknown_rates_first(tmp_path):
    out = run_py(
        """
        import json, sys, time
        from stall import _native
        s = _native.Session("dev", base_dir=sys.argv[1], no_export=True)
        e = _native.Engine(s.dir)
        e.sample_now()
        first = e.devices()
        time.sleep(0.05)
        e.sample_now()
        second = e.devices()
        e.close(remove=True)
        print(json.dumps(dict(first=first, second=second)))
        """,
        tmp_path,
    )
    assert out["first"], "this machine has at least one disk or interface"
    kinds = [d["is_net"] for d in out["first"]]
    assert kinds == sorted(kinds)  # disks first
    assert all(d["name"] != "lo" for d in out["first"])
    assert all(d["read_bytes_per_s"] is None for d in out["first"])  # unknown, not 0
    assert all(d["read_bytes_per_s"] is not None and d["read_bytes_per_s"] >= 0 for d in out["second"])


# ------------------------------------------------------ observer engines


def test_observer_engine_beside_a_primary_reader(session):
    p = MyProfiler("observed")
    name = unique("observed")
    with _native.Reader(session.dir) as primary:
        primary.drain()
        with pytest.raises(ValueError, match="already being read"):
            _native.Engine(session.dir, no_sampler=True)  # one primary at a time
        e = _native.Engine(session.dir, no_sampler=True, observer=True)
        e2 = _native.Engine(session.dir, no_sampler=True, observer=True)  # observers do not exclude each other
        assert e.observer and not e.closed
        for _ in range(5):
            with p.profile_operation(name, Bottleneck.DATA_LOADING):
                pass
        assert len([r for r in primary.drain() if r.name == name]) == 5  # the primary takes them first
        e.drain()  # still in the ring: the observer gets them too
        assert {o["name"]: o["count"] for o in e.ops()}[name] == 5
        e.start()  # and on its own thread
        for _ in range(3):
            with p.profile_operation(name, Bottleneck.DATA_LOADING):
                pass
        deadline = time.monotonic() + 10
        while {o["name"]: o["count"] for o in e.ops()}[name] < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert {o["name"]: o["count"] for o in e.ops()}[name] == 8
        assert len([r for r in primary.drain() if r.name == name]) == 3
        e.close(remove=True)  # ignored by an observer
        e2.close(remove=True)
        assert os.path.isdir(session.dir) and e.closed


def test_stall_run_child_profiles_with_an_observer_engine(session, tmp_path):
    """Under `stall run` (STALL_RUN=1, the CLI reading the session as its
    primary: here this process), a program that uses stall's own API gets an
    observer engine and its own numbers back, and no exception."""
    code = textwrap.dedent("""
        import json, os, stall
        from stall import _engine
        p = stall.BottleneckProfiler()
        sid = p.start_profiling_session("child")
        for _ in range(25):
            with p.profile_operation("run_child_op", stall.BottleneckType.DATA_LOADING):
                pass
        p.stop_profiling_session(sid)
        ops = p.get_session_summary(sid)["operations"]
        e = _engine.engine()
        pid = os.fork()  # a fork of a process that has an engine still only records
        if pid == 0:
            try:
                _engine.engine()
                os._exit(1)
            except RuntimeError:
                os._exit(0)
        _, st = os.waitpid(pid, 0)
        print(json.dumps({"pid": os.getpid(), "count": ops["run_child_op"]["count"],
                          "type": ops["run_child_op"]["type"], "observer": e.observer,
                          "fork_raises": os.waitstatus_to_exitcode(st) == 0}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALL_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PKG_PARENT, env.get("PYTHONPATH")) if p)
    env.update(STALL_RUN="1", STALL_SESSION_DIR=session.dir)
    seen = []
    with _native.Reader(session.dir) as primary:
        primary.drain()
        child = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path,  # it saves profiles there
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while child.poll() is None:  # drain as `stall run` does, while the child runs
            seen += [r for r in primary.drain() if r.name == "run_child_op"]
            time.sleep(0.005)
        out, err = child.communicate(timeout=120)
        seen += [r for r in primary.drain() if r.name == "run_child_op"]
    assert child.returncode == 0, f"child failed:\n{out}\n{err}"
    assert "Traceback" not in err
    res = json.loads(out.strip().splitlines()[-1])
    assert res == {"pid": res["pid"], "count": 25, "type": "data_loading", "observer": True, "fork_raises": True}
    assert len([r for r in seen if r.pid == res["pid"]]) == 25  # the primary lost nothing


def test_forked_child_exits_while_the_engine_monitor_and_metrics_server_run():
    """A program that forks (os.fork, child ends with sys.exit: the
    interpreter tears its modules down, dropping its copies of the engine, the
    monitor and the metrics server) must not hang: the child's copies leave
    the parent's threads, locks and records alone."""
    out = run_py("""
import json, os, sys, time
import stall
mon = stall.PerformanceMonitor(stall.ProfilingConfig(monitoring_interval=0.05))
mon.start_monitoring()
srv = stall.serve_prometheus("127.0.0.1:0")
time.sleep(0.3)  # every thread is running, or waiting on its condition
pid = os.fork()
if pid == 0:
    sys.exit(7)
t0 = time.monotonic()
status = None
while time.monotonic() - t0 < 15:
    got, st = os.waitpid(pid, os.WNOHANG)
    if got:
        status = os.waitstatus_to_exitcode(st)
        break
    time.sleep(0.02)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
alive = mon.get_monitoring_summary()["is_monitoring"]
mon.stop_monitoring()
print(json.dumps([status, round(time.monotonic() - t0, 2), alive]))
""", timeout=60)
    assert out[0] == 7, f"the forked child did not exit by itself: {out}"
    assert out[2] is True  # the parent's monitor still runs
