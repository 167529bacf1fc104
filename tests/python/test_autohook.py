"""Tests of `stall run`'s Python side: stall/_run/sitecustomize.py and
stall/_autohook.py (the PyTorch instrumentation).

Run from the repository root after building:

    PYTHONPATH=build/python /usr/bin/python3 -m pytest tests/python/test_autohook.py -q

The test process creates one session (one per process is the rule) and one
Reader on it; each test runs a small real PyTorch training script in a child
interpreter the way `stall run` starts it (STALL_RUN=1, STALL_SESSION_DIR,
PYTHONPATH=<pkg>/stall/_run:<pkg>), then drains what the child and its
DataLoader workers recorded and reads the loader-*.kv files it wrote. Tests
run one after another, so a drain after a child exited holds only its spans.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

import stall
from stall import _native

PKG_PARENT = str(Path(stall.__file__).resolve().parents[1])  # holds the package under test
RUN_DIR = os.path.join(PKG_PARENT, "stall", "_run")
PY = sys.executable
E = 2  # epochs
N = 8  # batches per epoch: 32 samples, batch_size 4
KV_KEYS = [
    "id", "pid", "n", "batch_size", "num_workers", "pin_memory", "persistent_workers", "prefetch_factor",
    "drop_last", "timeout", "dataset_type", "dataset_kind", "dataset_len", "sampler_type",
    "batch_sampler_type", "collate_fn", "multiprocessing_context", "created_ns",
]

torch_missing = subprocess.run([PY, "-c", "import torch"], capture_output=True).returncode != 0
needs_torch = pytest.mark.skipif(torch_missing, reason="torch is not installed for " + PY)

# ------------------------------------------------------------------ the script

TRAIN = r'''
import json, os, sys
cfg = json.loads(sys.argv[1])
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

class MapDS(Dataset):
    def __init__(self, n): self.n = n
    def __len__(self): return self.n
    def __getitem__(self, i): return torch.full((4,), float(i)), torch.tensor([float(i % 2)])

class IterDS(IterableDataset):
    def __init__(self, n): self.n = n
    def __iter__(self):
        info = get_worker_info()
        k, w = (info.id, info.num_workers) if info else (0, 1)
        for i in range(k, self.n, w):
            yield torch.full((4,), float(i)), torch.tensor([float(i % 2)])

def loader(n=32, iterable=False, **kw):
    kw.setdefault("batch_size", 4)
    nw = cfg.get("nw", 0)
    kw.setdefault("num_workers", nw)
    if nw and cfg.get("ctx"):
        kw.setdefault("multiprocessing_context", cfg["ctx"])
    if nw and cfg.get("persistent"):
        kw.setdefault("persistent_workers", True)
    if cfg.get("pin"):
        kw.setdefault("pin_memory", True)
    return DataLoader(IterDS(n) if iterable else MapDS(n), **kw)

def main():
    dev = cfg.get("device", "cpu")
    model = torch.nn.Linear(4, 1).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    nb = cfg.get("non_blocking", False)

    def step(x, y):
        x, y = x.to(dev, non_blocking=nb), y.to(dev, non_blocking=nb)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    E = cfg.get("epochs", 2)
    mode = cfg.get("mode", "single")
    if mode == "fakepin":
        # a batch type with its own pin_memory(): torch pins it without CUDA
        # when pin_memory_device is given (a tuple of two: pin_memory recurses)
        class Batch:
            def __init__(self, samples): self.samples = samples
            def pin_memory(self, *args): return self
        def collate(samples):
            return Batch(samples), Batch(samples)
        train = loader(pin_memory=True, pin_memory_device="fake", collate_fn=collate)
        pinning = iter(train)._pin_memory  # torch 2.x pins only with an accelerator
        for ep in range(E):
            for a, b in train:
                pass
        mode = "done"
    else:
        train = loader(iterable=cfg.get("iterable", False))
    if mode == "single":
        for ep in range(E):
            for x, y in train:
                step(x, y)
    elif mode == "zip":
        aux = loader(48, shuffle=True)
        for ep in range(E):
            for (x, y), (x2, y2) in zip(train, aux):
                step(x, y)
    elif mode == "nested":
        val = loader(16, batch_size=8)
        for ep in range(E):
            for i, (x, y) in enumerate(train):
                step(x, y)
                if i == 2:
                    with torch.no_grad():
                        for vx, vy in val:
                            model(vx)
            with torch.no_grad():
                for vx, vy in val:
                    model(vx)
    elif mode == "break":
        val = loader(16, batch_size=8)
        for i, (x, y) in enumerate(train):
            step(x, y)
            if i == 3:
                break
        for x, y in val:
            step(x, y)
    elif mode in ("wrapped", "epoch_span"):
        from stall import _native
        for ep in range(E):
            if mode == "epoch_span":
                _native.begin(_native.KIND_OTHER, "user.epoch")
                for x, y in train:
                    step(x, y)
                _native.end()
                continue
            it = iter(train)
            while True:
                _native.begin(_native.KIND_OTHER, "user.next")
                try:
                    x, y = next(it)
                except StopIteration:
                    _native.end()
                    break
                _native.end()
                step(x, y)
    hook = sys.modules.get("stall._autohook")
    print(json.dumps({
        "pid": os.getpid(),
        "pinning": locals().get("pinning"),
        "status": hook.status() if hook else None,
        "torch": "torch" in sys.modules,
        "stall_attr": hasattr(sys.modules["stall"], "_autohook") if "stall" in sys.modules else None,
    }))

if __name__ == "__main__":
    main()
'''


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sess():
    # a session of our own even when pytest itself runs under `stall run`
    os.environ.pop("STALL_SESSION_DIR", None)
    s = _native.Session("autohook")
    r = _native.Reader(s.dir)
    yield s, r
    r.close()
    s.stop()


class Run:
    """One child run: its output, the records of its process tree, the
    processes the reader saw, its loader .kv files (keyed by loader id)."""

    def __init__(self, proc, recs, procs, kvs):
        self.proc = proc
        self.out = proc.stdout
        self.err = proc.stderr
        self.recs = recs
        self.procs = procs
        self.kvs = kvs
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        self.info = json.loads(lines[-1]) if lines else {}
        self.pid = self.info.get("pid")

    def named(self, name):
        return [r for r in self.recs if r.name == name]

    def names(self):
        return Counter(r.name for r in self.recs)

    def label(self, pid):
        for p in self.procs:
            if p["pid"] == pid:
                return p["label"]
        return None


def child_env(extra_path=(), run=True, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALL_")}
    env["STALL_SESSION_DIR"] = _native.session_dir()
    if run:
        env["STALL_RUN"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([RUN_DIR, PKG_PARENT, *extra_path])
    env.update(extra)
    return env


def run_child(sess, tmp_path, cfg=None, script=TRAIN, args=None, timeout=300, check=True, **env):
    s, r = sess
    f = tmp_path / "train.py"
    f.write_text(script)
    argv = [PY, str(f)] + ([json.dumps(cfg or {})] if args is None else list(args))
    before = set(os.listdir(s.dir))
    proc = subprocess.run(argv, env=child_env(**env), capture_output=True, text=True, timeout=timeout,
                          cwd=str(tmp_path))
    if check:
        assert proc.returncode == 0, proc.stderr[-4000:]
    recs = [x for x in r.drain() if x.pid != os.getpid()]
    kvs = {}
    for name in sorted(set(os.listdir(s.dir)) - before):
        if name.startswith("loader-") and name.endswith(".kv"):
            text = (Path(s.dir) / name).read_text()
            kv = dict(line.split("=", 1) for line in text.splitlines())
            assert list(kv) == KV_KEYS, text
            assert name == "loader-%s-%s.kv" % (kv["pid"], kv["n"])
            kvs[kv["id"]] = kv
    return Run(proc, recs, r.processes(), kvs)


def loader_ids(run):
    """The loader ids in creation order (by n)."""
    return [k for k, _ in sorted(run.kvs.items(), key=lambda kv: int(kv[1]["n"]))]


def contains(outer, inner):
    return outer.start_ns <= inner.start_ns and inner.end_ns <= outer.end_ns


def check_nested(inner_recs, outer_recs, depth_step=1):
    """Each inner record lies within an outer record of the same thread,
    one level deeper."""
    by_thread = {}
    for o in outer_recs:
        by_thread.setdefault((o.pid, o.tid), []).append(o)
    for i in inner_recs:
        outs = by_thread.get((i.pid, i.tid), [])
        assert any(contains(o, i) and o.depth + depth_step == i.depth for o in outs), i


def check_steps(run, L, steps, waits):
    """The loop's spans: waits (DATA_WAIT) and steps (STEP) in the main
    process, steps between waits, backward and optimizer once per step."""
    wait = run.named("dl%s.wait" % L)
    # the first __next__ after workers start is a warmup span, not a wait
    warm = run.named("dl%s.warmup" % L)
    assert len(warm) == len(run.named("dl%s.start" % L))
    assert {w.kind for w in warm} <= {_native.KIND_DATA_LOADING} and {w.arg for w in warm} <= {1}
    assert {w.kind for w in wait} == {_native.KIND_DATA_WAIT}
    wait = wait + warm
    assert len(wait) == waits
    assert {w.pid for w in wait} == {run.pid}
    st = run.named("train.step")
    assert len(st) == steps
    assert {x.kind for x in st} == {_native.KIND_STEP}
    # a step never overlaps a wait of its loader
    for x in st:
        assert not any(w.start_ns < x.end_ns and x.start_ns < w.end_ns for w in wait), x
    return wait, st


# ------------------------------------------------------------------- tests


@needs_torch
def test_single_process_map_dataset(sess, tmp_path):
    run = run_child(sess, tmp_path, {"nw": 0})
    assert run.err == ""
    [L] = loader_ids(run)
    assert L == "%d.1" % run.pid
    wait, st = check_steps(run, L, steps=E * N, waits=E * (N + 1))
    assert sorted(w.arg for w in wait) == [0] * E + [1] * (E * N)  # 1 per batch; 0 at StopIteration
    fetch = run.named("dl%s.fetch" % L)
    collate = run.named("dl%s.collate" % L)
    assert len(fetch) == E * N and len(collate) == E * N
    assert {f.pid for f in fetch} == {run.pid}
    assert all(f.cpu_ns is not None and f.kind == _native.KIND_DATA_LOADING for f in fetch)
    assert all(c.cpu_ns is not None and c.kind == _native.KIND_PREPROCESSING for c in collate)
    check_nested(collate, fetch)
    check_nested(fetch, wait)
    sampler = run.named("dl%s.sampler" % L)
    assert len(sampler) == E * (N + 1)  # the last one raises StopIteration
    check_nested(sampler, wait)
    assert not run.named("dl%s.start" % L) and not run.named("dl%s.pin" % L)
    for name in ("train.backward", "train.optimizer"):
        recs = run.named(name)
        assert len(recs) == E * N, name
        assert {x.kind for x in recs} == {_native.KIND_CPU_COMPUTE}
    # backward and optimizer step run inside the steps
    for x in run.named("train.backward") + run.named("train.optimizer"):
        assert any(contains(s, x) for s in st), x
    assert not run.named("h2d.pageable") and not run.named("h2d.pinned")  # no CUDA copy
    assert run.label(run.pid) == "main"
    kv = run.kvs[L]
    assert kv == dict(kv, id=L, pid=str(run.pid), n="1", batch_size="4", num_workers="0", pin_memory="0",
                      persistent_workers="0", prefetch_factor="", drop_last="0", timeout="0",
                      dataset_type="MapDS", dataset_kind="map", dataset_len="32",
                      sampler_type="SequentialSampler", batch_sampler_type="BatchSampler",
                      collate_fn="torch.utils.data._utils.collate.default_collate", multiprocessing_context="")
    assert int(kv["created_ns"]) < min(w.start_ns for w in wait)
    info = run.info
    assert info["status"]["failures"] == 0, info["status"]
    assert info["status"]["level"] == "detailed"
    assert info["stall_attr"] is None  # the stall package's __init__ never ran: the hook loads alone


@needs_torch
@pytest.mark.parametrize("ctx", ["fork", "spawn"])
def test_two_workers(sess, tmp_path, ctx):
    run = run_child(sess, tmp_path, {"nw": 2, "ctx": ctx})
    [L] = loader_ids(run)
    check_steps(run, L, steps=E * N, waits=E * (N + 1))
    start = run.named("dl%s.start" % L)
    assert len(start) == E and {s.arg for s in start} == {2} and {s.pid for s in start} == {run.pid}
    fetch = run.named("dl%s.fetch" % L)
    collate = run.named("dl%s.collate" % L)
    assert len(fetch) == E * N and len(collate) == E * N
    workers = {f.pid for f in fetch}
    assert run.pid not in workers and len(workers) == 2 * E  # new workers each epoch
    assert all(f.cpu_ns is not None for f in fetch)
    check_nested(collate, fetch)
    labels = sorted(run.label(p) for p in workers)
    assert labels == sorted(["dl%s worker 0" % L, "dl%s worker 1" % L] * E)
    sampler = run.named("dl%s.sampler" % L)
    assert {s.pid for s in sampler} == {run.pid} and len(sampler) >= E * N
    assert run.kvs[L]["multiprocessing_context"] == ctx
    assert run.kvs[L]["num_workers"] == "2" and run.kvs[L]["prefetch_factor"] == "2"
    assert run.label(run.pid) == "main"


@needs_torch
def test_persistent_workers(sess, tmp_path):
    run = run_child(sess, tmp_path, {"nw": 2, "persistent": True, "epochs": 3})
    [L] = loader_ids(run)
    check_steps(run, L, steps=3 * N, waits=3 * (N + 1))
    assert len(run.named("dl%s.start" % L)) == 1  # workers started once
    fetch = run.named("dl%s.fetch" % L)
    assert len(fetch) == 3 * N and len({f.pid for f in fetch}) == 2
    assert run.kvs[L]["persistent_workers"] == "1"


@needs_torch
@pytest.mark.parametrize("nw", [0, 2])
def test_iterable_dataset(sess, tmp_path, nw):
    run = run_child(sess, tmp_path, {"nw": nw, "iterable": True})
    [L] = loader_ids(run)
    check_steps(run, L, steps=E * N, waits=E * (N + 1))
    fetch = run.named("dl%s.fetch" % L)
    collate = run.named("dl%s.collate" % L)
    # one more fetch per epoch and producer: the one that meets the end of the data
    assert len(fetch) == E * (N + max(nw, 1))
    assert len(collate) == E * N
    check_nested(collate, fetch)
    assert ({f.pid for f in fetch} == {run.pid}) == (nw == 0)
    kv = run.kvs[L]
    assert kv["dataset_kind"] == "iterable" and kv["dataset_len"] == "" and kv["dataset_type"] == "IterDS"
    assert kv["sampler_type"] == "_InfiniteConstantSampler"


@needs_torch
def test_two_loaders_zip(sess, tmp_path):
    run = run_child(sess, tmp_path, {"mode": "zip"})
    train, aux = loader_ids(run)
    # zip stops at train's StopIteration: aux never reaches its own
    wait, st = check_steps(run, train, steps=E * N, waits=E * (N + 1))
    aux_wait = run.named("dl%s.wait" % aux)
    assert len(aux_wait) == E * N
    for w in aux_wait:  # the other loader's waits lie inside the steps
        assert any(contains(s, w) for s in st), w
    assert len(run.named("dl%s.fetch" % aux)) == E * N
    assert run.kvs[aux]["sampler_type"] == "RandomSampler" and run.kvs[aux]["dataset_len"] == "48"


@needs_torch
def test_nested_and_sequential_validation(sess, tmp_path):
    run = run_child(sess, tmp_path, {"mode": "nested"})
    train, val = loader_ids(run)
    # val (2 batches) runs inside step 3 of each epoch, then once more after it:
    # there it owns the steps (train released them at its StopIteration)
    wait, st = check_steps(run, train, steps=E * N + E * 2, waits=E * (N + 1))
    vwait = run.named("dl%s.wait" % val)
    assert len(vwait) == 2 * E * 3
    inside = [w for w in vwait if any(contains(s, w) for s in st)]
    assert len(inside) == E * 3  # the nested passes (a step closes before the next wait begins)
    assert len(run.named("train.backward")) == E * N


@needs_torch
def test_break_releases_the_step(sess, tmp_path):
    run = run_child(sess, tmp_path, {"mode": "break"})
    train, val = loader_ids(run)
    assert len(run.named("dl%s.wait" % train)) == 4
    assert len(run.named("dl%s.wait" % val)) == 3
    # 3 steps of train (the 4th is left open by break), then val's 2
    assert len(run.named("train.step")) == 3 + 2


@needs_torch
def test_user_span_around_next_skips_steps(sess, tmp_path):
    run = run_child(sess, tmp_path, {"mode": "wrapped"})
    [L] = loader_ids(run)
    assert len(run.named("dl%s.wait" % L)) == E * (N + 1)
    assert len(run.named("user.next")) == E * (N + 1)
    assert run.named("train.step") == []  # they would cross the user's spans
    check_nested(run.named("dl%s.wait" % L), run.named("user.next"))


@needs_torch
def test_steps_inside_a_user_span(sess, tmp_path):
    run = run_child(sess, tmp_path, {"mode": "epoch_span"})
    [L] = loader_ids(run)
    wait, st = check_steps(run, L, steps=E * N, waits=E * (N + 1))
    assert {x.depth for x in st} == {1}
    assert run.info["stall_attr"] is True  # `from stall import _native` after the hook: the package is whole


@needs_torch
def test_basic_level(sess, tmp_path):
    run = run_child(sess, tmp_path, {"nw": 2}, STALL_LEVEL="basic")
    [L] = loader_ids(run)
    check_steps(run, L, steps=E * N, waits=E * (N + 1))
    assert set(run.names()) == {"dl%s.wait" % L, "dl%s.warmup" % L, "dl%s.start" % L, "train.step"}
    assert run.info["status"]["level"] == "basic"
    assert {r.pid for r in run.recs} == {run.pid}  # workers record nothing at basic
    assert run.kvs[L]["num_workers"] == "2"


@needs_torch
def test_pin_memory(sess, tmp_path, cuda):
    run = run_child(sess, tmp_path, {"nw": 2, "pin": True, "device": "cuda" if cuda else "cpu",
                                     "non_blocking": True})
    [L] = loader_ids(run)
    assert run.kvs[L]["pin_memory"] == "1"
    check_steps(run, L, steps=E * N, waits=E * (N + 1))
    pin = run.named("dl%s.pin" % L)
    if not cuda:
        # torch pins only when CUDA is available (1.13: pin_memory and
        # torch.cuda.is_available()): nothing is pinned, nothing recorded
        assert pin == []
        return
    assert len(pin) == E * N and {p.pid for p in pin} == {run.pid}
    assert {p.kind for p in pin} == {_native.KIND_TRANSFER}
    main_tid = run.named("dl%s.wait" % L)[0].tid
    assert main_tid not in {p.tid for p in pin}  # the pin-memory thread
    h2d = run.named("h2d.pinned")
    assert len(h2d) == 2 * E * N  # x and y of every batch, pinned by the loader
    assert {h.arg for h in h2d} == {4 * 4 * 4, 4 * 4}


@needs_torch
def test_inline_pin_without_cuda(sess, tmp_path):
    """The pin span on the inline path (num_workers=0), with a batch type
    torch pins by calling its pin_memory(): one span per batch though
    pin_memory recurses into the batch's parts."""
    run = run_child(sess, tmp_path, {"mode": "fakepin"})
    [L] = loader_ids(run)
    if not run.info["pinning"]:
        pytest.skip("this torch pins only with an accelerator")
    wait = run.named("dl%s.wait" % L)
    assert len(wait) == E * (N + 1)
    pin = run.named("dl%s.pin" % L)
    assert len(pin) == E * N
    assert {p.kind for p in pin} == {_native.KIND_TRANSFER}
    check_nested(pin, wait)
    assert run.kvs[L]["pin_memory"] == "1"
    assert run.kvs[L]["collate_fn"] == "__main__.main.<locals>.collate"
    assert run.named("train.step") != []


def test_wrappers_with_stand_in_tensors(sess, tmp_path):
    """The CUDA-dependent decisions (h2d copies, backward and optimizer kind,
    the pin-memory thread) on stand-in objects, so that they are checked on
    machines without a GPU too."""
    script = textwrap.dedent("""
        import functools, sys, threading
        h = sys.modules["stall._autohook"]
        h._patched  # loaded by sitecustomize
        class T:
            def __init__(s, cuda, pinned=False, n=10):
                s.is_cuda, s.pinned, s.n = cuda, pinned, n
            def is_pinned(s): return s.pinned
            def nelement(s): return s.n
            def element_size(s): return 4
        def fake_to(self, dev=None, non_blocking=False):
            return self if dev == "same" else T(dev == "cuda", n=self.n)
        to = h._wrap_h2d(fake_to)
        to(T(False), "cuda")                         # pageable, 40 bytes
        to(T(False, True, 5), "cuda", non_blocking=True)  # pinned, 20 bytes
        to(T(True), "cuda"); to(T(False), "cpu"); to(T(False), "same")  # no copy to CUDA
        bw = h._wrap_backward(lambda *a, **k: None)
        bw(T(True)); bw([T(False)]); bw(tensors=[T(True)]); bw(3)
        class Opt:
            def __init__(s, cuda): s.param_groups = [{"params": [T(cuda)]}]
            def step(s, closure=None): return 7
        Opt.step = h._wrap_opt_step(Opt.step)
        assert Opt(True).step() == 7 and Opt(False).step() == 7
        def pin_memory(data, device=None):  # recurses through the module global, like torch's
            return [pm(x, device) for x in data] if isinstance(data, list) else data
        pm = h._wrap_pin_memory(pin_memory)
        pm([1, [2]])  # no loader pins on this thread: nothing recorded
        def loop(batches, device):
            for b in batches:
                pm(b, device)
        t = threading.Thread(target=functools.partial(h._pin_entry, h._intern("dlX.pin"), loop),
                             args=([[1, [2, 3]], [4]], None))
        t.start(); t.join()
        print(h.status()["failures"], threading.get_native_id())
    """)
    run = run_child(sess, tmp_path, script=script, args=[])
    fails, main_tid = map(int, run.out.split())
    assert fails == 0
    assert [(h.arg, h.kind) for h in run.named("h2d.pageable")] == [(40, _native.KIND_TRANSFER)]
    assert [(h.arg, h.kind) for h in run.named("h2d.pinned")] == [(20, _native.KIND_TRANSFER)]
    G, C = _native.KIND_GPU_COMPUTE, _native.KIND_CPU_COMPUTE
    assert [b.kind for b in run.named("train.backward")] == [G, C, G, C]
    assert [o.kind for o in run.named("train.optimizer")] == [G, C]
    pin = run.named("dlX.pin")
    assert len(pin) == 2 and {p.depth for p in pin} == {0} and main_tid not in {p.tid for p in pin}


@pytest.fixture(scope="module")
def cuda():
    if torch_missing:
        return False
    r = subprocess.run([PY, "-c", "import torch; print(torch.cuda.is_available())"], capture_output=True,
                       text=True, env={k: v for k, v in os.environ.items() if not k.startswith("STALL_")})
    return r.stdout.strip() == "True"


@needs_torch
def test_cuda_training(sess, tmp_path, cuda):
    if not cuda:
        pytest.skip("no CUDA device")
    run = run_child(sess, tmp_path, {"nw": 0, "pin": True, "device": "cuda"})
    [L] = loader_ids(run)
    check_steps(run, L, steps=E * N, waits=E * (N + 1))
    pin = run.named("dl%s.pin" % L)
    assert len(pin) == E * N
    check_nested(pin, run.named("dl%s.wait" % L))  # inline, inside the wait
    for name in ("train.backward", "train.optimizer"):
        assert {x.kind for x in run.named(name)} == {_native.KIND_GPU_COMPUTE}, name
    assert len(run.named("h2d.pinned")) == 2 * E * N
    # the model's parameters (weight 4 floats, bias 1) went over pageable
    assert sorted(h.arg for h in run.named("h2d.pageable")) == [4, 16]


@needs_torch
def test_cuda_pageable_copies(sess, tmp_path, cuda):
    if not cuda:
        pytest.skip("no CUDA device")
    script = textwrap.dedent("""
        import torch
        a = torch.ones(1000)
        b = a.cuda()
        c = a.to("cuda", non_blocking=True)
        d = b.to("cuda")          # already there: no copy
        e = a.to(torch.float64)   # no device change
        f = a.pin_memory().to(torch.device("cuda"))
        print("{}")
    """)
    run = run_child(sess, tmp_path, script=script, args=[])
    assert sorted(h.arg for h in run.named("h2d.pageable")) == [4000, 4000]
    assert [h.arg for h in run.named("h2d.pinned")] == [4000]


def test_script_without_torch(sess, tmp_path):
    script = textwrap.dedent("""
        import json, sys
        hook = sys.modules["stall._autohook"]
        print(json.dumps({"torch": "torch" in sys.modules, "stall": "stall" in sys.modules,
                          "status": hook.status(), "argv": sys.argv[1:]}))
    """)
    run = run_child(sess, tmp_path, script=script, args=["a", "b"])
    info = json.loads(run.out)
    assert info["torch"] is False and info["stall"] is False  # neither torch nor the package __init__ ran
    assert info["status"]["installed"] and info["status"]["torch"] is False
    assert info["argv"] == ["a", "b"]
    assert run.err == ""
    assert run.recs == []


def test_not_run_without_stall_run(sess, tmp_path):
    script = "import sys; print('stall._autohook' in sys.modules)"
    f = tmp_path / "s.py"
    f.write_text(script)
    p = subprocess.run([PY, str(f)], env=child_env(run=False), capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "False" and p.stderr == ""


def fake_pkg(tmp_path, broken):
    """A copy of the package under test without a usable extension, as a
    Python of another version would see it."""
    root = tmp_path / "pkg"
    shutil.copytree(Path(PKG_PARENT) / "stall" / "_run", root / "stall" / "_run")
    shutil.copy(Path(PKG_PARENT) / "stall" / "_autohook.py", root / "stall" / "_autohook.py")
    shutil.copy(Path(PKG_PARENT) / "stall" / "__init__.py", root / "stall" / "__init__.py")
    if broken == "no_extension":
        (root / "stall" / "_native.cpython-399-x86_64-linux-gnu.so").write_bytes(b"")
    else:  # an extension that is not one
        for suffix in (".cpython-%d%d-x86_64-linux-gnu.so" % sys.version_info[:2], ".abi3.so", ".so"):
            (root / "stall" / ("_native" + suffix)).write_bytes(b"not an ELF file")
    return root


@pytest.mark.parametrize("broken", ["no_extension", "bad_extension"])
def test_interpreter_mismatch_runs_the_program(sess, tmp_path, broken):
    root = fake_pkg(tmp_path, broken)
    f = tmp_path / "prog.py"
    f.write_text("import sys\nprint('program output', sys.argv[1:])\nsys.exit(0)\n")
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(root / "stall" / "_run"), str(root)])
    p = subprocess.run([PY, str(f), "x"], env=env, capture_output=True, text=True)
    assert p.returncode == 0
    assert p.stdout == "program output ['x']\n"
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("stall: instrumentation off in this process: ")
    if broken == "no_extension":
        assert "no stall._native for Python %d.%d" % sys.version_info[:2] in lines[0]
        assert "cpython-399" in lines[0]


@pytest.mark.parametrize("stall_run", [True, False])
def test_chains_to_the_next_sitecustomize(sess, tmp_path, stall_run):
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text(
        "import os\nCHAINED = True\nos.environ['CHAINED_MARK'] = __name__ + ':' + __file__\n")
    f = tmp_path / "prog.py"
    f.write_text("import os, sys\nimport sitecustomize\n"
                 "print(os.environ.get('CHAINED_MARK'), getattr(sitecustomize, 'CHAINED', None),"
                 " 'stall._autohook' in sys.modules)\n")
    p = subprocess.run([PY, str(f)], env=child_env(extra_path=[str(other)], run=stall_run), capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    mark, chained, hooked = p.stdout.split()
    assert mark == "sitecustomize:" + str(other / "sitecustomize.py")
    assert chained == "True"
    assert hooked == str(stall_run)


def test_chained_sitecustomize_error_is_reported_like_site(sess, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("raise RuntimeError('boom')\n")
    f = tmp_path / "prog.py"
    f.write_text("print('still runs')\n")
    p = subprocess.run([PY, str(f)], env=child_env(extra_path=[str(other)]), capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout == "still runs\n"
    assert p.stderr == "Error in sitecustomize; set PYTHONVERBOSE for traceback:\nRuntimeError: boom\n"


def test_chains_to_the_distribution_sitecustomize(sess, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STALL_")}
    p = subprocess.run([PY, "-c", "import sitecustomize; print(sitecustomize.__file__)"], env=env,
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("this Python has no sitecustomize of its own")
    distro = p.stdout.strip()  # Debian: /usr/lib/python3.X/sitecustomize.py
    p = subprocess.run([PY, "-c", "import sitecustomize, sys; print(sitecustomize.__file__);"
                        " print('stall._autohook' in sys.modules)"],
                       env=child_env(), capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == ""
    assert p.stdout.split() == [distro, "True"]


def test_labels_of_main_and_python_subprocesses(sess, tmp_path):
    script = textwrap.dedent("""
        import os, subprocess, sys
        n = sys.modules["stall._native"]
        n.instant(n.KIND_OTHER, "main.ping")
        sub = ("import os, sys; n = sys.modules['stall._native']; n.instant(n.KIND_OTHER, 'sub.ping');"
               " print(os.getpid())")
        out = subprocess.run([sys.executable, "-c", sub], capture_output=True, text=True, check=True).stdout
        print(os.getpid(), out.strip(), os.environ["STALL_MAIN_PID"])
    """)
    run = run_child(sess, tmp_path, script=script, args=[])
    main, sub, main_env = map(int, run.out.split())
    assert main_env == main
    assert [r.pid for r in run.named("main.ping")] == [main]
    assert [r.pid for r in run.named("sub.ping")] == [sub]
    assert run.label(main) == "main" and run.label(sub) == "subprocess"
