"""stall._autohook: PyTorch instrumentation for `stall run -- python train.py`.

Loaded by stall/_run/sitecustomize.py in every Python process of a run
(STALL_RUN set). It never imports torch itself: install() puts a finder on
sys.meta_path that lets `import torch` run normally and patches torch once
its package has executed (or patches at once when torch is already there).
The patches record spans into the session of STALL_SESSION_DIR through
stall._native; the names below are the contract with the analyzer (L is a
loader id "<pid>.<n>": the pid of the process that created the DataLoader
and a per-process counter):

  dl<L>.wait      DATA_WAIT      each __next__ of the loader's iterator, as the
                                 training loop sees it; arg = 1 for a batch
                                 delivered, 0 for the __next__ that raises
                                 StopIteration
  dl<L>.start     DATA_LOADING   creating a multi-process iterator (workers
                                 started); arg = num_workers
  dl<L>.warmup    DATA_LOADING   the first __next__ after workers started (in
                                 place of its wait span): start-up and filling
                                 the prefetch queue, not the steady-state wait;
                                 arg as for wait
  dl<L>.sampler   DATA_LOADING   the iterator's _next_index (main process)
  dl<L>.fetch     DATA_LOADING   the fetcher's fetch of one batch, with CPU time
                                 (workers, or the main process at num_workers=0)
  dl<L>.collate   PREPROCESSING  the collate_fn call nested in fetch, with CPU time
  dl<L>.pin       TRANSFER       pin_memory of one batch (pin thread or inline)
  train.step      STEP           from a __next__ returning to the next __next__
                                 of the same iterator (recorded with complete());
                                 one per thread, owned by the first iterator
                                 iterated, released at its StopIteration (or
                                 when it is garbage, or its loader iterated
                                 anew); dropped when the span depth changed
                                 (the user wrapped next() in a span of theirs)
  train.backward  GPU_COMPUTE / CPU_COMPUTE  torch.autograd.backward
  train.optimizer GPU_COMPUTE / CPU_COMPUTE  Optimizer.step of every class
  h2d.pageable / h2d.pinned  TRANSFER  Tensor.to / Tensor.cuda copying a CPU
                                 tensor to CUDA; arg = bytes

STALL_LEVEL=basic records only wait, warmup, start and step; detailed (the default)
and comprehensive record everything. Each DataLoader also gets a file
<session dir>/loader-<pid>-<n>.kv of key=value lines (see _KV_KEYS), written
atomically when it is created and again when its workers first start.

Nothing here raises into user code: a patch that cannot be applied is
skipped, and the hook's own failures are counted (status()).
"""

import os
import sys

import _functools
import _thread
import _weakref

try:
    _native = sys.modules["stall._native"]
except KeyError:  # imported the ordinary way (the stall package is there)
    from stall import _native

__all__ = ["install", "status"]

LEVELS = ("basic", "detailed", "comprehensive")

# the keys of a loader-<pid>-<n>.kv file, in the order written
_KV_KEYS = (
    "id", "pid", "n", "batch_size", "num_workers", "pin_memory", "persistent_workers", "prefetch_factor",
    "drop_last", "timeout", "dataset_type", "dataset_kind", "dataset_len", "sampler_type",
    "batch_sampler_type", "collate_fn", "multiprocessing_context", "created_ns",
)

_K_LOAD = _native.KIND_DATA_LOADING
_K_PRE = _native.KIND_PREPROCESSING
_K_CPU = _native.KIND_CPU_COMPUTE
_K_GPU = _native.KIND_GPU_COMPUTE
_K_XFER = _native.KIND_TRANSFER
_K_WAIT = _native.KIND_DATA_WAIT
_K_STEP = _native.KIND_STEP

_begin = _native.begin
_begin_cpu = _native.begin_cpu
_end = _native.end
_complete = _native.complete
_depth = _native.depth
_now = _native.now_ns
_intern = _native.intern

_lock = _thread.RLock()
_installed = False
_level = "detailed"
_detailed = True
_patched = []  # names of what was patched, for status()
_failures = 0
_last_failure = ""
_counter = 0  # loaders created by this process
_loaders = None  # WeakKeyDictionary loader -> _Loader (made at patch time)
_worker = None  # _Worker in a DataLoader worker process, else None
_orig_worker_loop = None  # torch's _worker_loop, saved at patch time
_worker_mod = None  # torch.utils.data._utils.worker
_pin_mod = None  # torch.utils.data._utils.pin_memory
_finder = None
_torch_done = False


class _Thread:
    """Per-thread state of the training loop: the iterator that owns the
    open train.step (a weak reference), when the step began (0: none open)
    and at what span depth, what the thread pins for (an _It or _PinOnly),
    a pin_memory re-entrancy flag, and the fetch names of a main-process
    iterator being made."""

    __slots__ = ("owner", "t0", "depth", "pin_it", "pinning", "creating")

    def __init__(self):
        self.owner = None
        self.t0 = 0
        self.depth = 0
        self.pin_it = None
        self.pinning = False
        self.creating = None


class _TLS(_thread._local):
    def __init__(self):
        self.s = _Thread()  # one attribute: a single thread-local lookup per use


_tls = _TLS()


def _fail(where):
    """Counts a failure of the hook itself (never raised to the user)."""
    global _failures, _last_failure
    _failures += 1
    e = sys.exc_info()[1]
    _last_failure = "%s: %s: %s" % (where, type(e).__name__ if e else "-", e)
    if os.environ.get("STALL_DEBUG"):
        try:
            sys.stderr.write("stall: autohook: %s\n" % _last_failure)
        except Exception:
            pass


def status():
    """Returns what the hook did in this process: a dict with installed,
    level, patched (names), failures (count), last_failure (str), worker (the
    loader id when this is a DataLoader worker, else None), torch (patched)."""
    return {
        "installed": _installed,
        "level": _level,
        "patched": list(_patched),
        "failures": _failures,
        "last_failure": _last_failure,
        "worker": _worker.L if _worker is not None else None,
        "torch": _torch_done,
    }


# ------------------------------------------------------------- per-loader state


class _Loader:
    """One DataLoader: its id, its interned span names, its .kv file."""

    __slots__ = ("L", "pid", "n", "wait", "warmup", "start", "sampler", "pin", "arg", "kv", "started", "created_ns",
                 "names", "__weakref__")

    def __init__(self, L, pid, n, arg):
        self.L = L
        self.pid = pid
        self.n = n
        self.arg = arg
        p = "dl" + L
        self.wait = _intern(p + ".wait")
        self.start = _intern(p + ".start")
        self.warmup = _intern(p + ".warmup")
        self.sampler = _intern(p + ".sampler") if _detailed else 0
        self.pin = _intern(p + ".pin") if _detailed else 0
        self.kv = None
        self.started = False
        self.created_ns = _now()
        self.names = None  # its _Worker (fetch, collate names), made on first use


def _fetch_names(st):
    if st.names is None:
        st.names = _Worker(st.L)
    return st.names


class _It:
    """What the patched iterator methods need, stored on the iterator as
    `_stall`: name ids and the loader's _Loader (no reference to the
    DataLoader or the iterator, so no cycle delays the workers' shutdown)."""

    __slots__ = ("loader", "wait", "warm", "arg", "sampler", "pin", "pin_inline", "inside")

    def __init__(self, st, pin_inline):
        self.loader = st
        self.wait = st.wait
        self.warm = 0  # the warmup name until the first batch of freshly started workers
        self.arg = st.arg
        self.sampler = st.sampler
        self.pin = st.pin
        self.pin_inline = pin_inline
        self.inside = False  # in a wrapped subclass __next__ that may call the base's


class _Worker:
    """The names a fetcher records under: of a worker's loader, or set on a
    main-process fetcher as `_stall_ids`."""

    __slots__ = ("L", "fetch", "collate")

    def __init__(self, L):
        self.L = L
        self.fetch = _intern("dl" + L + ".fetch")
        self.collate = _intern("dl" + L + ".collate")


def _one_line(v):
    s = "" if v is None else str(v)
    if "\n" in s or "\r" in s:
        s = s.replace("\r", " ").replace("\n", " ")
    return s


def _flag(v):
    return "1" if v else "0"


def _qualname(f):
    inner = getattr(f, "func", None)  # functools.partial
    if inner is not None and type(f).__name__ == "partial":
        return "functools.partial(%s)" % _qualname(inner)
    q = getattr(f, "__qualname__", None)
    m = getattr(f, "__module__", None)
    if not isinstance(q, str):
        t = type(f)
        q, m = t.__qualname__, t.__module__
    return "%s.%s" % (m, q) if m else q


def _start_method(loader):
    """The effective multiprocessing start method of a loader with workers,
    without fixing the process's default start method."""
    ctx = getattr(loader, "multiprocessing_context", None)
    if ctx is not None:
        name = getattr(ctx, "_name", None)
        if isinstance(name, str):
            return name
        if isinstance(ctx, str):
            return ctx
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        import multiprocessing as mp
    m = mp.get_start_method(allow_none=True)
    if m:
        return m
    dflt = getattr(getattr(mp, "context", None), "_default_context", None)
    dflt = getattr(dflt, "_default_context", None)
    return getattr(dflt, "_name", "") or ""


def _kv_values(st, loader):
    ds = getattr(loader, "dataset", None)
    nw = getattr(loader, "num_workers", 0) or 0
    bs = getattr(loader, "batch_size", None)
    pf = getattr(loader, "prefetch_factor", None)
    kind = getattr(loader, "_dataset_kind", None)
    if kind is None:
        kind = 1 if hasattr(ds, "__iter__") and not hasattr(ds, "__getitem__") else 0
    try:
        n = len(ds)
        ds_len = str(int(n))
    except Exception:
        ds_len = ""
    bsam = getattr(loader, "batch_sampler", None)
    try:
        mpc = _start_method(loader) if nw > 0 else ""
    except Exception:
        mpc = ""
    return {
        "id": st.L,
        "pid": st.pid,
        "n": st.n,
        "batch_size": "" if bs is None else bs,
        "num_workers": nw,
        "pin_memory": _flag(getattr(loader, "pin_memory", False)),
        "persistent_workers": _flag(getattr(loader, "persistent_workers", False)),
        "prefetch_factor": "" if nw == 0 or pf is None else pf,
        "drop_last": _flag(getattr(loader, "drop_last", False)),
        "timeout": getattr(loader, "timeout", 0),
        "dataset_type": type(ds).__name__,
        "dataset_kind": "iterable" if kind == 1 else "map",
        "dataset_len": ds_len,
        "sampler_type": type(getattr(loader, "sampler", None)).__name__,
        "batch_sampler_type": "" if bsam is None else type(bsam).__name__,
        "collate_fn": _qualname(getattr(loader, "collate_fn", None)),
        "multiprocessing_context": mpc,
        "created_ns": st.created_ns,
    }


def _write_kv(st, loader):
    """Writes <session dir>/loader-<pid>-<n>.kv atomically (tmp + rename)."""
    d = _native.session_dir()  # the inherited STALL_SESSION_DIR
    if not d or not os.path.isdir(d):
        return
    vals = _kv_values(st, loader)
    text = "".join("%s=%s\n" % (k, _one_line(vals[k])) for k in _KV_KEYS)
    name = "loader-%d-%d.kv" % (st.pid, st.n)
    path = os.path.join(d, name)
    tmp = os.path.join(d, ".%s.%d.tmp" % (name, _thread.get_ident()))
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    st.kv = path


def _register(loader):
    """Gives a DataLoader its id and .kv file (once); returns its _Loader."""
    global _counter
    st = _loader_state(loader)
    if st is not None:
        return st
    with _lock:
        _counter += 1
        n = _counter
    pid = os.getpid()
    # a wait's arg is 1 when it delivered a batch, 0 at StopIteration: the
    # arg sum counts batches (the batch size is in the .kv file)
    st = _Loader("%d.%d" % (pid, n), pid, n, 1)
    try:
        _loaders[loader] = st
    except TypeError:  # not weak-referenceable or unhashable
        object.__setattr__(loader, "_stall_loader", st)
    try:
        _write_kv(st, loader)
    except Exception:
        _fail("loader kv")
    return st


def _loader_state(loader):
    try:
        st = _loaders.get(loader)
    except TypeError:
        st = None
    if st is None:
        st = getattr(loader, "_stall_loader", None)
    return st


# ------------------------------------------------------------ the patches


def _wrap_init_register(orig):
    def __init__(self, *args, **kwargs):
        orig(self, *args, **kwargs)
        try:
            _register(self)
        except Exception:
            _fail("DataLoader.__init__")

    return _wraps(__init__, orig)


def _wrap_loader_iter(orig):
    """DataLoader.__iter__: a new pass over a loader whose iterator owns the
    step drops the step left open (a loop left with break)."""

    def __iter__(self):
        it = orig(self)
        try:
            t = _tls.s
            ref = t.owner
            if ref is not None:
                o = ref()
                if o is None or o is it or getattr(getattr(o, "_stall", None), "loader", 0) is _loader_state(self):
                    t.owner = None
                    t.t0 = 0
        except Exception:
            _fail("DataLoader.__iter__")
        return it

    return _wraps(__iter__, orig)


def _wrap_next(orig, subclass=False):
    """_BaseDataLoaderIter.__next__: the wait span and the training step.
    A subclass's own __next__ (none in torch 1.13..2.x) is wrapped too, with
    `subclass`: inside it the base's wrapper records nothing."""
    tls = _tls
    begin, end, complete, depth, now = _begin, _end, _complete, _depth, _now
    K_WAIT, K_STEP, K_LOAD = _K_WAIT, _K_STEP, _K_LOAD
    step_id = _intern("train.step")
    ref_of = _weakref.ref

    def __next__(self):
        try:
            it = self._stall
        except AttributeError:
            return orig(self)
        if it.inside:
            return orig(self)
        t = tls.s
        mine = False
        ref = t.owner
        if ref is not None:
            o = ref()
            if o is self:
                mine = True
                t0 = t.t0
                if t0:
                    t.t0 = 0
                    if depth() == t.depth:
                        complete(K_STEP, step_id, t0)
            elif o is None:
                t.owner = None
                t.t0 = 0
        pin = it.pin_inline
        if pin:
            t.pin_it = it
        if subclass:
            it.inside = True
        w = it.warm
        if w:  # workers just started: their start-up is not the loop's steady wait
            it.warm = 0
            begin(K_LOAD, w)
        else:
            begin(K_WAIT, it.wait)
        try:
            data = orig(self)
        except StopIteration:
            end(0)
            if mine:
                t.owner = None
            raise
        except BaseException:
            end(0)
            raise
        finally:
            if pin:
                t.pin_it = None
            if subclass:
                it.inside = False
        end(it.arg)
        if not mine and t.owner is None:
            t.owner = ref_of(self)
            mine = True
        if mine:
            t.depth = depth()
            t.t0 = now()
        return data

    return _wraps(__next__, orig)


def _wrap_next_index(orig):
    begin, end, K = _begin, _end, _K_LOAD

    def _next_index(self):
        it = getattr(self, "_stall", None)
        if it is None or not it.sampler:
            return orig(self)
        begin(K, it.sampler)
        try:
            return orig(self)
        finally:
            end()

    return _wraps(_next_index, orig)


def _iter_state(loader, pin_inline):
    st = _register(loader)
    return _It(st, pin_inline and _detailed)


def _wrap_single_init(orig):
    """_SingleProcessDataLoaderIter.__init__: the iterator's state, and the
    fetcher made inside it records under the loader's names."""

    def __init__(self, loader, *args, **kwargs):
        it = None
        try:
            it = _iter_state(loader, False)
            self._stall = it
        except Exception:
            _fail("single iter")
        t = _tls.s
        prev = t.creating
        t.creating = _fetch_names(it.loader) if (it is not None and _detailed) else None
        try:
            orig(self, loader, *args, **kwargs)
        finally:
            t.creating = prev
        if it is not None:
            try:
                it.pin_inline = bool(getattr(self, "_pin_memory", False)) and _detailed
            except Exception:
                _fail("single iter pin")

    return _wraps(__init__, orig)


def _wrap_multi_init(orig):
    """_MultiProcessingDataLoaderIter.__init__: the start span, and the
    workers started inside it run _worker_entry (which labels them) and the
    pin-memory thread _pin_entry."""
    begin, end, K = _begin, _end, _K_LOAD

    def __init__(self, loader, *args, **kwargs):
        try:
            it = _iter_state(loader, False)
            self._stall = it
        except Exception:
            _fail("multi iter")
            return orig(self, loader, *args, **kwargs)
        st = it.loader
        if not st.started:
            st.started = True
            try:
                _write_kv(st, loader)  # the start method is known for sure now
            except Exception:
                _fail("loader kv")
        nw = getattr(loader, "num_workers", 0) or 0
        with _lock:
            swapped = []
            try:
                if _worker_mod is not None and _orig_worker_loop is not None:
                    _worker_mod._worker_loop = _functools.partial(_worker_entry, st.L)
                    swapped.append((_worker_mod, "_worker_loop", _orig_worker_loop))
                if _detailed and _pin_mod is not None and _orig_pin_loop is not None:
                    _pin_mod._pin_memory_loop = _functools.partial(_pin_entry, st.pin, _orig_pin_loop)
                    swapped.append((_pin_mod, "_pin_memory_loop", _orig_pin_loop))
            except Exception:
                _fail("multi iter swap")
            begin(K, st.start)
            try:
                orig(self, loader, *args, **kwargs)
                it.warm = st.warmup
            finally:
                end(nw)
                for mod, attr, v in swapped:
                    setattr(mod, attr, v)

    return _wraps(__init__, orig)


def _worker_entry(L, *args, **kwargs):
    """The target of DataLoader worker processes (a functools.partial of it
    with the loader id pickles by reference under spawn): labels the process,
    makes its fetchers record under the loader's names, runs torch's loop."""
    global _worker
    orig = _orig_worker_loop
    try:
        if not _installed:
            install()
        if orig is None:
            from torch.utils.data._utils import worker as wmod

            orig = wmod._worker_loop
        _worker = _Worker(L)
        wid = kwargs.get("worker_id")
        if wid is None:
            code = orig.__code__
            i = code.co_varnames[: code.co_argcount].index("worker_id")
            wid = args[i] if i < len(args) else "?"
        _native.set_process_label("dl%s worker %s" % (L, wid))
    except Exception:
        _fail("worker entry")
        if orig is None:
            from torch.utils.data._utils import worker as wmod

            orig = wmod._worker_loop
    return orig(*args, **kwargs)


_orig_pin_loop = None


def _pin_entry(pin_id, orig, *args, **kwargs):
    """The pin-memory thread's target: its pin_memory calls record under
    the loader's pin name."""
    _tls.s.pin_it = _PinOnly(pin_id)
    return orig(*args, **kwargs)


class _PinOnly:
    __slots__ = ("pin",)

    def __init__(self, pin):
        self.pin = pin


def _wrap_pin_memory(orig):
    """_utils.pin_memory.pin_memory: one span per batch (it recurses through
    the module global into the batch's parts: only the outer call counts)."""
    tls = _tls
    begin, end, K = _begin, _end, _K_XFER

    def pin_memory(data, *args, **kwargs):
        t = tls.s
        it = t.pin_it
        if it is None or t.pinning:
            return orig(data, *args, **kwargs)
        t.pinning = True
        begin(K, it.pin)
        try:
            return orig(data, *args, **kwargs)
        finally:
            end()
            t.pinning = False

    return _wraps(pin_memory, orig)


def _wrap_create_fetcher(orig):
    """_DatasetKind.create_fetcher: the fetcher records fetch and collate
    under the names of the loader being iterated (main process) or served
    (worker)."""

    def create_fetcher(*args, **kwargs):
        f = orig(*args, **kwargs)
        try:
            ids = _tls.s.creating or _worker
            if ids is not None and getattr(f, "_stall_ids", None) is None:
                f._stall_ids = ids
                c = getattr(f, "collate_fn", None)
                if c is not None:
                    f.collate_fn = _wrap_collate(c, ids.collate)
        except Exception:
            _fail("create_fetcher")
        return f

    return create_fetcher


def _wrap_collate(fn, cid):
    begin_cpu, end, K = _begin_cpu, _end, _K_PRE

    def collate(*args, **kwargs):
        begin_cpu(K, cid)
        try:
            return fn(*args, **kwargs)
        finally:
            end()

    collate.__wrapped__ = fn
    return collate


def _wrap_fetch(orig):
    begin_cpu, end, K = _begin_cpu, _end, _K_LOAD

    def fetch(self, *args, **kwargs):
        ids = getattr(self, "_stall_ids", None)
        if ids is None:
            return orig(self, *args, **kwargs)
        begin_cpu(K, ids.fetch)
        try:
            return orig(self, *args, **kwargs)
        finally:
            end()

    return _wraps(fetch, orig)


def _check_step_depth(tls, depth):
    """Called inside the loop body (backward, optimizer step): a body running
    at a lower depth than the step began at means the user wrapped next() in
    a span of their own that has closed since; the step would cross it, so it
    is dropped."""
    t = tls.s
    if t.t0 and depth() < t.depth:
        t.t0 = 0


def _device_kind(t):
    try:
        if t.is_cuda:
            return _K_GPU
    except Exception:
        pass
    return _K_CPU


def _wrap_backward(orig):
    begin, end, tls, depth = _begin, _end, _tls, _depth
    name = _intern("train.backward")

    def backward(*args, **kwargs):
        kind = _K_CPU
        try:
            _check_step_depth(tls, depth)
            t = args[0] if args else kwargs.get("tensors")
            if not hasattr(t, "is_cuda") and isinstance(t, (list, tuple)) and t:
                t = t[0]
            kind = _device_kind(t)
        except Exception:
            _fail("backward kind")
        begin(kind, name)
        try:
            return orig(*args, **kwargs)
        finally:
            end()

    return _wraps(backward, orig)


def _wrap_opt_step(orig):
    begin, end, tls, depth = _begin, _end, _tls, _depth
    name = _intern("train.optimizer")

    def step(self, *args, **kwargs):
        kind = _K_CPU
        try:
            _check_step_depth(tls, depth)
            kind = _device_kind(self.param_groups[0]["params"][0])
        except Exception:
            pass
        begin(kind, name)
        try:
            return orig(self, *args, **kwargs)
        finally:
            end()

    w = _wraps(step, orig)
    w._stall_wrapped = True
    return w


_opt_classes = set()


def _hook_optimizer_class(cls):
    if cls in _opt_classes:
        return
    _opt_classes.add(cls)
    step = getattr(cls, "step", None)
    if step is None or getattr(step, "_stall_wrapped", False):
        return  # inherited from a class wrapped already
    cls.step = _wrap_opt_step(step)


def _wrap_opt_method(orig):
    """Optimizer.__init__ / __setstate__: afterwards, the instance's class has
    its step() wrapped (once per class)."""
    def method(self, *args, **kwargs):
        orig(self, *args, **kwargs)
        try:
            _hook_optimizer_class(type(self))
        except Exception:
            _fail("Optimizer step")

    return _wraps(method, orig)


def _wrap_h2d(orig):
    """Tensor.to / Tensor.cuda: a CPU tensor copied to CUDA records
    h2d.pinned or h2d.pageable (complete(): the span began before the call)."""
    now, complete, K = _now, _complete, _K_XFER
    pinned, pageable = _intern("h2d.pinned"), _intern("h2d.pageable")

    def to(self, *args, **kwargs):
        t0 = now()
        out = orig(self, *args, **kwargs)
        if out is self:
            return out
        try:
            if out.is_cuda and not self.is_cuda:
                complete(K, pinned if self.is_pinned() else pageable, t0, self.nelement() * self.element_size())
        except Exception:
            _fail("h2d")
        return out

    return _wraps(to, orig)


def _wraps(wrapper, orig):
    try:
        import functools

        functools.update_wrapper(wrapper, orig)
    except Exception:
        pass
    return wrapper


def _set(obj, attr, wrap, what, inherited=False):
    """Replaces obj.attr with wrap(obj.attr) when obj has it (a class: defined
    in the class itself, or also inherited with inherited=True); counts failures."""
    try:
        own = isinstance(obj, type) and not inherited
        cur = obj.__dict__.get(attr) if own else getattr(obj, attr, None)
        if cur is None:
            return False
        setattr(obj, attr, wrap(cur))
        _patched.append(what)
        return True
    except Exception:
        _fail(what)
        return False


def _patch_torch():
    """Applies every patch to an imported torch (once)."""
    global _torch_done, _loaders, _worker_mod, _pin_mod, _orig_worker_loop, _orig_pin_loop
    with _lock:
        if _torch_done:
            return
        _torch_done = True
    import weakref

    _loaders = weakref.WeakKeyDictionary()
    try:
        from torch.utils.data import dataloader as dl
    except Exception:
        _fail("import torch.utils.data.dataloader")
        dl = None
    if dl is not None:
        _patch_dataloader(dl)
    if not _detailed:
        return
    try:
        import torch

        ag = getattr(torch, "autograd", None)
        if ag is not None:
            _set(ag, "backward", _wrap_backward, "torch.autograd.backward")
        optim_mod = sys.modules.get("torch.optim.optimizer")
        if optim_mod is None:
            import torch.optim.optimizer as optim_mod
        Opt = getattr(optim_mod, "Optimizer", None)
        if Opt is not None:
            _set(Opt, "__init__", _wrap_opt_method, "Optimizer.__init__")
            _set(Opt, "__setstate__", _wrap_opt_method, "Optimizer.__setstate__")
        T = getattr(torch, "Tensor", None)
        if T is not None:  # to() and cuda() come from the C base class
            for meth in ("to", "cuda"):
                _set(T, meth, _wrap_h2d, "Tensor." + meth, inherited=True)
    except Exception:
        _fail("patch torch")


def _patch_dataloader(dl):
    global _worker_mod, _pin_mod, _orig_worker_loop, _orig_pin_loop
    DL = getattr(dl, "DataLoader", None)
    if DL is not None:
        _set(DL, "__init__", _wrap_init_register, "DataLoader.__init__")
        _set(DL, "__iter__", _wrap_loader_iter, "DataLoader.__iter__")
    Base = getattr(dl, "_BaseDataLoaderIter", None)
    if Base is not None:
        classes = [Base]
        todo = list(Base.__subclasses__())
        while todo:
            c = todo.pop()
            classes.append(c)
            todo.extend(c.__subclasses__())
        for c in classes:
            if "__next__" in c.__dict__:
                _set(c, "__next__", lambda f, sub=c is not Base: _wrap_next(f, sub), c.__name__ + ".__next__")
        if _detailed:
            _set(Base, "_next_index", _wrap_next_index, "_BaseDataLoaderIter._next_index")
    Single = getattr(dl, "_SingleProcessDataLoaderIter", None)
    if Single is not None:
        _set(Single, "__init__", _wrap_single_init, "_SingleProcessDataLoaderIter.__init__")
    utils = getattr(dl, "_utils", None)
    _worker_mod = getattr(utils, "worker", None)
    _orig_worker_loop = getattr(_worker_mod, "_worker_loop", None)
    if _detailed:
        _pin_mod = getattr(utils, "pin_memory", None)
        _orig_pin_loop = getattr(_pin_mod, "_pin_memory_loop", None)
        if _pin_mod is not None:
            _set(_pin_mod, "pin_memory", _wrap_pin_memory, "_utils.pin_memory.pin_memory")
    Multi = getattr(dl, "_MultiProcessingDataLoaderIter", None)
    if Multi is not None:
        _set(Multi, "__init__", _wrap_multi_init, "_MultiProcessingDataLoaderIter.__init__")
    if not _detailed:
        return
    Kind = getattr(dl, "_DatasetKind", None)
    if Kind is not None and "create_fetcher" in Kind.__dict__:
        try:
            cf = Kind.__dict__["create_fetcher"]
            fn = cf.__func__ if isinstance(cf, staticmethod) else None
            if fn is not None:
                Kind.create_fetcher = staticmethod(_wrap_create_fetcher(fn))
                _patched.append("_DatasetKind.create_fetcher")
        except Exception:
            _fail("_DatasetKind.create_fetcher")
    fetch_mod = getattr(utils, "fetch", None)
    BaseF = getattr(fetch_mod, "_BaseDatasetFetcher", None)
    if BaseF is not None:
        todo = list(BaseF.__subclasses__())
        while todo:
            c = todo.pop()
            todo.extend(c.__subclasses__())
            if "fetch" in c.__dict__:
                _set(c, "fetch", _wrap_fetch, c.__name__ + ".fetch")


# ------------------------------------------------------- the import hook


class _Finder:
    """A sys.meta_path finder that lets `torch` (and `stall`) import as usual
    and runs a callback once the module has executed."""

    def __init__(self):
        self.targets = {}
        self.busy = set()

    def find_spec(self, name, path=None, target=None):
        cb = self.targets.get(name)
        if cb is None or name in self.busy:
            return None
        self.busy.add(name)
        try:
            spec = None
            for f in sys.meta_path:
                if f is self:
                    continue
                fs = getattr(f, "find_spec", None)
                if fs is None:
                    continue
                spec = fs(name, path, target)
                if spec is not None:
                    break
        except Exception:
            _fail("find_spec " + name)
            return None
        finally:
            self.busy.discard(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _PostImportLoader(spec.loader, name, self)
        return spec

    def done(self, name):
        self.targets.pop(name, None)
        if not self.targets:
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass

    def invalidate_caches(self):
        pass


class _PostImportLoader:
    def __init__(self, loader, name, finder):
        self.loader = loader
        self.name = name
        self.finder = finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        loader = self.loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = loader
        loader.exec_module(module)
        cb = self.finder.targets.get(self.name)
        self.finder.done(self.name)
        if cb is not None:
            try:
                cb(module)
            except Exception:
                _fail("post-import " + self.name)

    def __getattr__(self, attr):
        return getattr(self.loader, attr)


def _after_torch(module):
    _patch_torch()


def _after_stall(module):
    try:
        me = sys.modules.get(__name__)
        if me is not None and getattr(module, "_autohook", None) is None:
            module._autohook = me
    except Exception:
        _fail("stall attribute")


# --------------------------------------------------------------- install


def _label_for_process():
    argv = getattr(sys, "orig_argv", None) or sys.argv or []
    if "--multiprocessing-fork" in argv:
        return "mp child"
    joined = " ".join(str(a) for a in argv[:4])
    if "multiprocessing.resource_tracker" in joined or "multiprocessing.forkserver" in joined:
        return "mp helper"
    me = str(os.getpid())
    first = os.environ.get("STALL_MAIN_PID")
    if not first:
        os.environ["STALL_MAIN_PID"] = me  # children know they are not the main process
        return "main"
    return "main" if first == me else "subprocess"


def _after_fork_child():
    global _lock
    try:
        _lock = _thread.RLock()  # the parent may have held it while forking (workers start under it)
        _tls.s = _Thread()
        if _worker is None:
            _native.set_process_label("fork child")
    except Exception:
        _fail("after fork")


def install(level=None):
    """Installs the instrumentation in this process (once): the process
    label, and the torch patches now (torch imported) or at `import torch`.
    level: basic, detailed or comprehensive; default $STALL_LEVEL, else
    detailed. Never raises for the hook's own failures."""
    global _installed, _level, _detailed, _finder
    with _lock:
        if _installed:
            return
        _installed = True
    lv = (level or os.environ.get("STALL_LEVEL") or "detailed").strip().lower()
    _level = lv if lv in LEVELS else "detailed"
    _detailed = _level != "basic"
    try:
        _native.set_process_label(_label_for_process())
    except Exception:
        _fail("label")
    try:
        os.register_at_fork(after_in_child=_after_fork_child)
    except Exception:
        _fail("register_at_fork")
    try:
        finder = _Finder()
        torch = sys.modules.get("torch")
        if torch is None:
            finder.targets["torch"] = _after_torch
        elif not getattr(getattr(torch, "__spec__", None), "_initializing", False):
            _patch_torch()
        else:
            _fail("torch is being imported: not patched")
        if "stall" not in sys.modules:
            finder.targets["stall"] = _after_stall
        if finder.targets:
            _finder = finder
            sys.meta_path.insert(0, finder)
    except Exception:
        _fail("install")
