"""stall.preprocessing: the preprocessing profiler and optimizer (issue 8).

PreprocessingProfiler's three methods, CodeOptimizer.optimize_preprocessing
and AdvancedProfiler/DataLoadingProfiler.profile_preprocessing's memory of
what they profiled are thin calls into this module. Everything here is
measured: a finding never comes from a function's name or source.

Data. `data` is a collection of items along its first axis: a torch.Tensor
or numpy array (item i is data[i]) or a list/tuple (or any object with
len() and slicing). A batch of size b is the slice data[i:i+b]. Empty data,
a 0-dim tensor, a str/bytes/dict or an unsliceable object is refused with a
ValueError/TypeError naming `data`; the profiled function's own exceptions
propagate unchanged.

What is measured, and how:
- Time: every timed call is a span of the profiler (`profile_operation`,
  type PREPROCESSING) inside a session of its own, so the C engine's
  statistics (count, total, p50 within 0.78%) are the timings and the
  session shows up in the profiler's summaries and saved results. CPU time
  is time.process_time_ns() around the calls: the whole process, so torch's
  intra-op threads count (cpu_share can exceed 1 on several cores; other
  busy threads of the process inflate it). runqueue_share is the wait of
  the process' threads for a CPU (the sum over /proc/self/task/*/schedstat;
  None where unreadable). cpu_demand_share = cpu_share + runqueue_share is
  what the function wanted, not only what a busy machine gave it (the
  engine's CPU_BOUND counts the same way); off_cpu_share = 1 -
  cpu_demand_share (clamped to 0..1) is the time it was blocked: sleeping,
  reading, waiting on a lock, a pipe or another process.
- Peak memory (enable_memory_tracking): the native peak is measured on a
  call after the warm-up (one-time initialisations stay out): the C heap's
  free memory is first given back (glibc malloc_trim), so that memory the
  call reuses shows again, then writing "5" to /proc/self/clear_refs resets
  VmHWM, and VmHWM - VmRSS(before) afterwards is the resident memory the
  call added at its peak (tensors included). The Python peak is
  tracemalloc's peak over one more call (numpy arrays included).
  peak_memory_bytes is the larger of the two (RSS already holds the Python
  heap, so they are not added; both are lower bounds). Unknown (None) where
  unreadable, never 0.
- profile_preprocessing_function(fn, data, n): one warm-up call, then
  fn(data) n times; per-item cost = per-call time / len(data).
- profile_batch_preprocessing(fn, data): for each b of batch_size_range
  (b > len(data) skipped and listed), one warm-up call, then consecutive
  batches (wrapping around) for about min(0.3 s, profiling_duration / number
  of sizes) and at least 3 calls; per-item seconds and items/s come from
  the median call's wall time (the span's p50). The growth exponent and
  the per-item ratio are judged on a cost: the median call's process CPU
  time for on-CPU functions (cost_basis "cpu": on a busy machine, long
  calls are preempted more often than short ones, which makes wall time
  grow faster than the work), the wall time for off-CPU ones. If fn raises on a batch of 2 but works on one item, it
  does not take batches (accepts_batches=False): every batch is then a
  loop of fn(item) calls. Returns a dict (documented on profile_batches)
  with a "batch_profiles" list, one entry per batch size, smallest first.
- Caching: each item is keyed by its content (dtype, shape and a blake2b
  digest of the bytes for tensors/arrays; type and value for Python
  scalars, str, bytes; recursively for lists, tuples and dicts);
  repeat_ratio = 1 - distinct / items. When it is >= 0.2 the function is
  called on a repeated item and on its repeat (and on the first again):
  deterministic when the outputs are exactly equal (NaN equal to NaN) and
  the input was not changed by the call. The unit of a call is an item
  (fn(data[i])) or, when fn refuses items, a batch of one (fn(data[i:i+1])).

Findings (the table _DETECTORS, one small function per type) have the shape
of the C diagnosis' findings: type (BottleneckType value), title, severity
in 0..1, summary/message, evidence (the numbers), suggestions
({action, params, expected_speedup, why}), operation (the function). The
thresholds, and why:
- CPU_INTENSIVE: cpu_demand_share >= 0.8 and >= 100 us of CPU per item:
  one core then makes at most 10k items/s, the rate a GPU step consumes
  small samples at, so the function needs workers or vectorising.
  Severity: cpu_demand_share (capped at 1).
- I_O_BOUND: off_cpu_share >= 0.5 (more than half the call blocked) and a
  call of >= 100 us (shorter calls are timer noise). Severity: the share.
- MEMORY_INTENSIVE: peak >= 32 MiB and >= 4x (input + output bytes): a
  function that returns a result as large as its input plus a temporary or
  two (x.float() / 255 on uint8 reaches 2 x its 4x output) stays below;
  large transient temporaries do not. Severity: the transient share of
  the peak, 1 - (input + output) / peak.
- VECTORIZATION_INEFFICIENT: the function takes batches, the per-item cost
  at the largest batch size is >= 0.5x that at the smallest (a vectorised
  function's falls toward 0 as the per-call overhead is shared; range
  spanning >= 8x), its time is on-CPU (off_cpu_share < 0.5), its growth is
  not super-linear (that is ALGORITHM_INEFFICIENT), and it runs Python
  code for every item: python_events_per_item >= 1, the extra interpreter
  events (sys.settrace: calls, lines, returns) of a batch of 8 over a
  batch of 1, per extra item. That is a count, not a time: exactly 0 for
  a function vectorised over the batch, >= 1 for any per-item loop (each
  iteration is a line event). The count is what keeps a vectorised
  function on large items (whose per-item cost cannot fall with batching
  either) from being flagged; the ratio is what makes the finding cost
  something. Severity: the ratio (capped at 1).
- ALGORITHM_INEFFICIENT: the exponent k of cost ~ batch_size^k, a least-
  squares fit in log-log over the batch sizes >= max(2, largest/8) (the
  fixed per-call cost of small batches would bias k down); needs >= 2 sizes
  spanning >= 4x, and batches. Flagged at k >= 1.4: n log n gives <= 1.3
  over such ranges from n >= 8, a quadratic 2, noise on a linear function
  stays below 1.2. Severity: the share of the largest batch's time above
  linear growth, 1 - (b_hi / b_lo)^(1 - k).
- BATCH_SIZE_INEFFICIENT: the best batch size's items/s >= 1.25x the
  smallest size's (the baseline, 1 in the default range); a 25% margin is
  well above the run-to-run noise of medians. Severity: 1 - base / best.
- CACHING_MISSED: repeat_ratio >= 0.2, deterministic, enable_caching and
  cache_size >= 1. Severity: repeat_ratio (the share of calls a cache
  saves); expected speedup 1 / (1 - repeat_ratio).
- GPU_UNDERUTILIZED: CUDA available (an input of the decision: detect()
  takes cuda_available; the profilers pass torch.cuda.is_available() when
  enable_gpu_tracking), tensors in and out, all on the CPU, cpu_demand_share >= 0.5,
  >= 1 ms of CPU per call (enough work to pay for the transfer), and the
  work in native code (python_events_per_item < 1: an interpreter-bound
  loop needs vectorising before a GPU helps). Severity: cpu_demand_share
  (capped at 1).

optimize(fn, data, config, profile) returns (new_fn, entry). Candidates,
each verified on the profiled data against [fn(u) for u in units] before it
is timed: a bounded, thread-safe LRU cache of config.cache_size entries
keyed by content (deterministic functions whose inputs recur; hits return
clones so callers cannot corrupt it), and batching (new_fn.map(items) runs
fn over stacked batches of the best batch size and splits the result;
outputs equal, torch.allclose/numpy.allclose for floats), or both. The
workload timed is the per-unit pass over the data, repeats included (best
of several runs, cache cold at the start of each); the fastest candidate is
applied if it gains >= 5%. new_fn has fn's signature (functools wraps) plus
map(), cache_info(), cache_clear(). When nothing applies, fn itself comes
back and entry["reason"] says why. Results are JSON-ready dicts except the
"optimized_function" that auto_optimize adds.
"""

import collections as _collections
import copy as _copy
import functools as _functools
import hashlib as _hashlib
import logging as _logging
import math as _math
import os as _os
import sys as _sys
import threading as _threading
import time as _time
import tracemalloc as _tracemalloc

from . import profilers as _profilers
from .types import BottleneckType

__all__ = ["profile_function", "profile_batches", "detect", "optimal_config", "optimize", "content_key",
           "outputs_equal", "THRESHOLDS"]

log = _logging.getLogger("stall")

_T = BottleneckType
_MIB = 1 << 20

THRESHOLDS = {
    "cpu_demand_share": 0.8,       # CPU_INTENSIVE
    "cpu_per_item_s": 100e-6,
    "off_cpu_share": 0.5,          # I_O_BOUND (and VECTORIZATION's on-CPU guard)
    "io_min_call_s": 100e-6,
    "memory_peak_bytes": 32 * _MIB,  # MEMORY_INTENSIVE
    "memory_ratio": 4.0,
    "vector_ratio": 0.5,           # VECTORIZATION_INEFFICIENT
    "vector_span": 8,
    "python_events_per_item": 1.0,  # VECTORIZATION (>=) and GPU_UNDERUTILIZED (<)
    "exponent": 1.4,               # ALGORITHM_INEFFICIENT
    "exponent_span": 4,
    "batch_gain": 1.25,            # BATCH_SIZE_INEFFICIENT
    "repeat_ratio": 0.2,           # CACHING_MISSED
    "gpu_cpu_demand_share": 0.5,   # GPU_UNDERUTILIZED
    "gpu_cpu_per_call_s": 1e-3,
    "optimize_gain": 1.05,         # optimize(): least measured gain applied
}

_BATCH_BUDGET_S = 0.3   # per batch size
_MIN_CALLS = 3
_MAX_CALLS = 20000
_NAME_MAX = 72          # span names are interned in 96-byte slots


# -- arguments -----------------------------------------------------------
def _is_tensor(x):
    torch = _sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_array(x):
    np = _sys.modules.get("numpy")
    return np is not None and isinstance(x, np.ndarray)


def _check_fn(fn, where):
    if not callable(fn):
        raise TypeError(f"{where}: fn must be callable, not {type(fn).__name__}")


def _check_iterations(n, where):
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{where}: num_iterations must be an int >= 1, not {type(n).__name__} ({n!r})")
    if n < 1:
        raise ValueError(f"{where}: num_iterations must be an int >= 1, got {n}")


def _check_data(data, where):
    """len(data) after checking that data is a collection of items that
    slices into batches; TypeError/ValueError naming `data` otherwise."""
    kind = ("data must be a torch.Tensor, a numpy array, a list or a tuple of items "
            "(items along the first axis, sliced into batches)")
    if isinstance(data, (str, bytes, bytearray, dict)) or data is None:
        raise TypeError(f"{where}: {kind}, not {type(data).__name__}")
    if _is_tensor(data) or _is_array(data):
        if data.ndim == 0:
            raise TypeError(f"{where}: {kind}; a 0-dim {type(data).__name__} has no items")
        n = int(data.shape[0])
    else:
        try:
            n = len(data)
            data[0:1]
        except Exception:
            raise TypeError(f"{where}: {kind}, not {type(data).__name__}") from None
    if n == 0:
        raise ValueError(f"{where}: data is empty (it needs at least one item)")
    return n


def _fn_name(fn):
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return str(name)


def _span(name, suffix=""):
    return name[:_NAME_MAX] + suffix


def _flag(cfg, name, default=True):
    v = getattr(cfg, name, default) if cfg is not None else default
    return bool(v)


def _cuda(cfg):
    if not _flag(cfg, "enable_gpu_tracking", _flag(cfg, "enable_gpu_profiling")):
        return False
    return _profilers._torch_cuda() is not None


# -- content, sizes, equality -------------------------------------------
def _digest(buf):
    return _hashlib.blake2b(buf, digest_size=16).digest()


_SCALARS = (str, bytes, int, float, complex, bool, type(None))


def content_key(x):
    """A hashable key equal for inputs of equal content (tensors and arrays:
    dtype, shape, bytes; Python scalars, str, bytes: type and value; lists,
    tuples, dicts: recursively), or None when x cannot be keyed."""
    if _is_tensor(x):
        try:
            t = x.detach() if x.requires_grad else x
            if t.device.type != "cpu":
                t = t.cpu()
            if t.is_sparse or t.is_quantized:
                return None
            if not t.is_contiguous():
                t = t.contiguous()
            try:
                b = t.numpy()
            except (TypeError, RuntimeError):   # bfloat16 and other types numpy lacks
                b = t.reshape(-1).view(_sys.modules["torch"].uint8).numpy()
            return ("tensor", x.dtype, x.shape, _digest(b) if t.numel() else b"")
        except Exception:
            return None
    if _is_array(x):
        if x.dtype.hasobject:
            return None
        np = _sys.modules["numpy"]
        return ("ndarray", x.dtype.str, tuple(x.shape), _digest(np.ascontiguousarray(x).view(np.uint8).reshape(-1)
                                                                 if x.size else b""))
    if isinstance(x, _SCALARS):
        return (type(x).__name__, x)
    if isinstance(x, (list, tuple)):
        ks = []
        for v in x:
            k = content_key(v)
            if k is None:
                return None
            ks.append(k)
        return (type(x).__name__, tuple(ks))
    if isinstance(x, dict):
        ks = []
        for k0, v in x.items():
            a, b = content_key(k0), content_key(v)
            if a is None or b is None:
                return None
            ks.append((a, b))
        return ("dict", tuple(ks))
    return None


def _nbytes(x):
    """Bytes of tensors/arrays/bytes in x (recursively); sys.getsizeof for
    other Python objects (an approximation)."""
    if _is_tensor(x):
        return int(x.element_size() * x.numel())
    if _is_array(x):
        return int(x.nbytes)
    if isinstance(x, (bytes, bytearray)):
        return len(x)
    if isinstance(x, (list, tuple)):
        return _sys.getsizeof(x) + sum(_nbytes(v) for v in x)
    if isinstance(x, dict):
        return _sys.getsizeof(x) + sum(_nbytes(v) for v in x.values())
    try:
        return _sys.getsizeof(x)
    except Exception:
        return 0


def _devices(x, out):
    if _is_tensor(x):
        out.add(x.device.type)
    elif isinstance(x, (list, tuple)):
        for v in x:
            _devices(v, out)
    elif isinstance(x, dict):
        for v in x.values():
            _devices(v, out)
    return out


def outputs_equal(a, b, exact=True):
    """True when a and b hold equal values: tensors/arrays of one dtype and
    shape, equal exactly (NaN equal to NaN) or, with exact=False, allclose
    for floating types; recursively through lists, tuples and dicts; == for
    the rest."""
    if _is_tensor(a) or _is_tensor(b):
        if not (_is_tensor(a) and _is_tensor(b)) or a.dtype != b.dtype or a.shape != b.shape:
            return False
        torch = _sys.modules["torch"]
        a, b = a.detach().cpu(), b.detach().cpu()
        if a.is_floating_point() or a.is_complex():
            if not exact:
                return bool(torch.allclose(a, b, equal_nan=True))
            return bool(torch.equal(a, b) or ((a == b) | (torch.isnan(a) & torch.isnan(b))).all())
        return bool(torch.equal(a, b))
    if _is_array(a) or _is_array(b):
        np = _sys.modules["numpy"]
        if not (_is_array(a) and _is_array(b)) or a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.kind in "fc":
            if not exact:
                return bool(np.allclose(a, b, equal_nan=True))
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(np.array_equal(a, b))
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(outputs_equal(x, y, exact) for x, y in zip(a, b)))
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(outputs_equal(a[k], b[k], exact) for k in a))
    try:
        return bool(a == b)
    except Exception:
        return False


def _clone(x):
    """A copy that shares no mutable memory with x (tensors cloned, arrays
    copied, containers rebuilt, immutable scalars as they are)."""
    if _is_tensor(x):
        return x.clone()
    if _is_array(x):
        return x.copy()
    if isinstance(x, _SCALARS):
        return x
    if isinstance(x, list):
        return [_clone(v) for v in x]
    if isinstance(x, tuple):
        vals = [_clone(v) for v in x]
        return type(x)(*vals) if hasattr(x, "_fields") else tuple(vals)
    if isinstance(x, dict):
        return type(x)((k, _clone(v)) for k, v in x.items())
    return _copy.deepcopy(x)


# -- clocks -------------------------------------------------------------
def _runqueue_ns():
    """{thread id: time waiting for a CPU (ns)} of this process's threads,
    or None where /proc does not say."""
    out = {}
    try:
        tids = _os.listdir("/proc/self/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
                out[tid] = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue      # a thread that just ended
    return out or None


class _Clock:
    """Wall, process CPU and the threads' run-queue wait over a stretch."""

    def __init__(self):
        self.rq0 = _runqueue_ns()
        self.cpu0 = _time.process_time_ns()
        self.w0 = _time.perf_counter_ns()

    def stop(self):
        w = _time.perf_counter_ns() - self.w0
        cpu = _time.process_time_ns() - self.cpu0
        rq1 = _runqueue_ns()
        rq = None
        if self.rq0 is not None and rq1 is not None:
            rq = sum(max(0, v - self.rq0.get(tid, 0)) for tid, v in rq1.items())
        return max(1, w), max(0, cpu), rq


def _shares(wall_ns, cpu_ns, rq_ns):
    """cpu_share, runqueue_share, cpu_demand_share, off_cpu_share."""
    cpu_share = cpu_ns / wall_ns
    rq_share = None if rq_ns is None else rq_ns / wall_ns
    demand = cpu_share + (rq_share or 0.0)
    return cpu_share, rq_share, demand, min(1.0, max(0.0, 1.0 - demand))


def _status_bytes(*keys):
    out = {}
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                k, _, v = line.partition(b":")
                k = k.decode()
                if k in keys:
                    out[k] = int(v.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return out if len(out) == len(keys) else None


class _RssPeak:
    """Resident memory a stretch added at its peak (VmHWM reset through
    /proc/self/clear_refs); None where Linux does not let us read it."""

    def start(self):
        self.base = None
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            return
        st = _status_bytes("VmRSS", "VmHWM")
        if st is not None:
            self.base = st["VmRSS"]

    def stop(self):
        if self.base is None:
            return None
        st = _status_bytes("VmHWM")
        return None if st is None else max(0, st["VmHWM"] - self.base)


def _malloc_trim():
    """Give the C heap's free memory back to the system (glibc), so that a
    call reusing it shows in RSS again; a no-op elsewhere."""
    try:
        import ctypes
        ctypes.CDLL(None).malloc_trim(0)
    except Exception:
        pass


def _python_peak(fn, arg):
    """tracemalloc's peak (bytes above the start) over one call of fn(arg)."""
    started = not _tracemalloc.is_tracing()
    if started:
        _tracemalloc.start()
    try:
        _tracemalloc.reset_peak()
        base = _tracemalloc.get_traced_memory()[0]
        fn(arg)
        return max(0, _tracemalloc.get_traced_memory()[1] - base)
    finally:
        if started:
            _tracemalloc.stop()


def _python_events(fn, arg):
    """Python-level events (calls, lines, returns) one call of fn(arg) runs
    in this thread (sys.settrace; a tracer already set is restored)."""
    n = [0]

    def local(frame, event, a):
        n[0] += 1
        return local

    def top(frame, event, a):
        n[0] += 1
        return local

    old = _sys.gettrace()
    _sys.settrace(top)
    try:
        fn(arg)
    finally:
        _sys.settrace(old)
    return n[0]


def _events_per_item(fn, data, n):
    """Extra Python events per extra item between batches of 1 and of
    min(n, 8): 0 for a function vectorised over the batch (its Python code
    runs once per call), >= 1 when it runs Python code for every item. A
    count, not a time: the same on any machine. None for one-item data or
    when fn refuses those batches."""
    b = min(n, 8)
    if b < 2:
        return None
    try:
        e1 = _python_events(fn, data[0:1])
        e2 = _python_events(fn, data[0:b])
    except Exception:
        return None
    return round(max(0.0, (e2 - e1) / (b - 1)), 3)


# -- items and units ------------------------------------------------------
def _item(data, i):
    return data[i]


def _unit(data, i, mode):
    return data[i] if mode == "item" else data[i:i + 1]


def _caching_probe(fn, data, n, cfg):
    """repeat_ratio, distinct_items, deterministic, unit and a note."""
    res = {"repeat_ratio": None, "distinct_items": None, "deterministic": None, "unit": None,
           "caching_note": None}
    keys = []
    for i in range(n):
        k = content_key(_item(data, i))
        if k is None:
            res["caching_note"] = f"items of type {type(_item(data, i)).__name__} cannot be keyed by content"
            return res
        keys.append(k)
    first = {}
    pair = None
    for i, k in enumerate(keys):
        j = first.setdefault(k, i)
        if j != i and pair is None:
            pair = (j, i)
    r = 1.0 - len(first) / n
    res["repeat_ratio"], res["distinct_items"] = round(r, 4), len(first)
    if r < THRESHOLDS["repeat_ratio"]:
        res["caching_note"] = f"inputs do not recur (repeat ratio {r:.2f} < {THRESHOLDS['repeat_ratio']})"
        return res
    if not _flag(cfg, "enable_caching") or getattr(cfg, "cache_size", 1) < 1:
        res["caching_note"] = "caching is disabled in the config (enable_caching / cache_size)"
        return res
    mode = _unit_mode(fn, data)
    if mode is None:
        res["caching_note"] = "fn fails on a single item and on a batch of one"
        return res
    res["unit"] = mode
    res["deterministic"] = _deterministic(fn, data, pair, mode)
    if not res["deterministic"]:
        res["caching_note"] = "fn is not deterministic on equal inputs (or changes its input)"
    return res


def _unit_mode(fn, data):
    """'item' when fn takes data[0], 'batch_of_1' when only data[0:1]."""
    for mode in ("item", "batch_of_1"):
        try:
            fn(_unit(data, 0, mode))
            return mode
        except Exception:
            continue
    return None


def _deterministic(fn, data, pair, mode):
    i, j = pair
    a, b = _unit(data, i, mode), _unit(data, j, mode)
    ka = content_key(a)
    try:
        o1, o2, o3 = fn(a), fn(b), fn(a)
        _clone(o1)
    except Exception:
        return False
    return bool(content_key(a) == ka and outputs_equal(o1, o2) and outputs_equal(o1, o3))


# -- findings -----------------------------------------------------------
def _finding(t, sev, summary, ev, suggestions, m):
    return {"type": t.value, "title": t.name, "severity": round(float(max(0.0, min(1.0, sev))), 4),
            "summary": summary, "message": summary, "evidence": ev, "suggestions": suggestions,
            "operation": m.get("function"), "metric": "preprocessing", "detector": f"preprocessing.{t.name.lower()}"}


def _sg(action, why, expected=None, **params):
    return {"action": action, "params": params, "expected_speedup": expected, "why": why}


def _us(s):
    return f"{s * 1e6:.1f} us"


def _d_cpu(m, ctx):
    cs, per = m.get("cpu_demand_share"), m.get("per_item_cpu_s")
    if cs is None or per is None or not ctx["cpu"]:
        return None
    if cs < THRESHOLDS["cpu_demand_share"] or per < THRESHOLDS["cpu_per_item_s"]:
        return None
    rate = 1.0 / per
    pe = m.get("python_events_per_item")
    sg = [_sg(f"Run it in DataLoader workers (num_workers > 0): {_us(per)} CPU per item caps one core at "
              f"{rate:,.0f} items/s", "CPU-bound preprocessing scales with cores", per_item_cpu_s=per)]
    if pe is not None and pe >= THRESHOLDS["python_events_per_item"]:
        sg.insert(0, _sg("Vectorise it: it runs Python code for every item; tensor ops over the whole batch "
                         "run that work in native code", f"{pe:g} interpreter events per item",
                         python_events_per_item=pe))
    return (min(1.0, cs),
            f"{m['function']} wants the CPU {cs:.0%} of its time (running or waiting to run) and costs "
            f"{_us(per)} of CPU per item (one core makes at most {rate:,.0f} items/s).",
            {"cpu_demand_share": cs, "cpu_share": m.get("cpu_share"), "per_item_cpu_s": per,
             "items_per_cpu_second": rate, "python_events_per_item": pe},
            sg)


def _d_io(m, ctx):
    off, call = m.get("off_cpu_share"), m.get("median_s_per_call") or m.get("wall_s_per_call")
    if off is None or call is None or not ctx["io"]:
        return None
    if off < THRESHOLDS["off_cpu_share"] or call < THRESHOLDS["io_min_call_s"]:
        return None
    return (off,
            f"{m['function']} is blocked (off-CPU, not waiting for a CPU) {off:.0%} of its time: "
            f"it waits for I/O, a sleep, a lock or another process.",
            {"off_cpu_share": off, "cpu_share": m.get("cpu_share"), "runqueue_share": m.get("runqueue_share"),
             "cpu_demand_share": m.get("cpu_demand_share"),
             "wall_s_per_call": call},
            [_sg(f"Overlap the waits: load in DataLoader workers (num_workers > 0, prefetch_factor) or a thread "
                 f"pool; cache or copy the data locally ({off:.0%} of each call is waiting)",
                 "waiting time overlaps across workers", expected=round(1.0 / max(1e-3, 1.0 - off), 2),
                 off_cpu_share=off)])


def _d_mem(m, ctx):
    peak = m.get("peak_memory_bytes")
    if peak is None or not ctx["memory"]:
        return None
    base = (m.get("input_bytes") or 0) + (m.get("output_bytes") or 0)
    if peak < THRESHOLDS["memory_peak_bytes"] or peak < THRESHOLDS["memory_ratio"] * base:
        return None
    ratio = peak / base if base else None
    return (1.0 - base / peak,
            f"{m['function']} reaches {peak / _MIB:.1f} MiB at its peak per call"
            + (f", {ratio:.0f}x its input and output ({base / _MIB:.2f} MiB)" if ratio else "") + ".",
            {"peak_bytes": peak, "python_peak_bytes": m.get("python_peak_bytes"),
             "native_peak_bytes": m.get("native_peak_bytes"), "input_bytes": m.get("input_bytes"),
             "output_bytes": m.get("output_bytes"), "peak_over_io": ratio},
            [_sg(f"Avoid large temporaries: use in-place ops (x.mul_(), out=...), reduce before expanding, "
                 f"or call it on smaller batches ({peak / _MIB:.0f} MiB peak per call)",
                 "transient memory above the result is avoidable", peak_bytes=peak)])


def _d_vector(m, ctx):
    ratio, acc = m.get("per_item_ratio"), m.get("accepts_batches")
    if ratio is None or acc is not True:
        return None
    sizes = [r["batch_size"] for r in m.get("batch_profiles", ())]
    lo, hi = min(sizes), max(sizes)
    if hi < THRESHOLDS["vector_span"] * lo or ratio < THRESHOLDS["vector_ratio"]:
        return None
    if (m.get("off_cpu_share") or 0.0) >= THRESHOLDS["off_cpu_share"]:
        return None
    k = m.get("exponent")
    if k is not None and k >= THRESHOLDS["exponent"]:
        return None
    pe = m.get("python_events_per_item")
    if pe is None or pe < THRESHOLDS["python_events_per_item"]:
        return None
    per = {str(r["batch_size"]): r["cost_s_per_item"] * 1e6 for r in m["batch_profiles"]}
    return (min(1.0, ratio),
            f"{m['function']}'s cost per item at batch {hi} is {ratio:.2f}x its cost at batch {lo}: batching "
            f"does not amortise it, because it runs Python code for every item ({pe:g} interpreter events "
            f"per item).",
            {"per_item_ratio": ratio, "cost_us_per_item_by_batch_size": per, "python_events_per_item": pe,
             "batch_sizes": [lo, hi], "cost_basis": m.get("cost_basis")},
            [_sg("Replace the per-item Python loop by tensor operations over the whole batch "
                 "(torch ops on dim 0, torch.vmap / broadcasting)",
                 f"per-item cost at batch {hi} is {ratio:.2f}x that at batch {lo}", per_item_ratio=ratio)])


def _d_algo(m, ctx):
    k = m.get("exponent")
    if k is None or k < THRESHOLDS["exponent"]:
        return None
    lo, hi = m["exponent_sizes"][0], m["exponent_sizes"][-1]
    sev = 1.0 - (hi / lo) ** (1.0 - k)
    best = m.get("best_batch_size")
    return (sev,
            f"{m['function']}'s time grows as batch_size^{k:.2f} (fitted over batch sizes {lo}..{hi}): "
            f"faster than linear, so each item costs more in larger batches.",
            {"exponent": k, "exponent_sizes": m["exponent_sizes"], "cost_basis": m.get("cost_basis"),
             "cost_s_by_batch_size": {str(r["batch_size"]): r["cost_s_per_call"] for r in m["batch_profiles"]}},
            [_sg(f"Replace the all-pairs/nested work (O(n^{k:.1f})) by a vectorised or sorted/hashed algorithm "
                 f"(torch.cdist, torch.sort, dict lookups); until then call it on batches of {best}",
                 f"time ~ size^{k:.2f}", exponent=k, batch_size=best)])


def _d_batch(m, ctx):
    gain, acc = m.get("batching_gain"), m.get("accepts_batches")
    if gain is None or acc is False or gain < THRESHOLDS["batch_gain"]:
        return None
    best, base = m["best_batch_size"], m["baseline_batch_size"]
    if best == base:
        return None
    return (1.0 - 1.0 / gain,
            f"{m['function']} makes {gain:.1f}x more items/s on batches of {best} than of {base}.",
            {"best_batch_size": best, "baseline_batch_size": base, "batching_gain": gain,
             "items_per_second_by_batch_size": {str(r["batch_size"]): r["items_per_second"]
                                                for r in m["batch_profiles"]}},
            [_sg(f"Call it on batches of {best}: {gain:.1f}x items/s vs batches of {base}",
                 "measured items/s by batch size", expected=round(gain, 2), batch_size=best)])


def _d_cache(m, ctx):
    r = m.get("repeat_ratio")
    if r is None or not m.get("deterministic") or not ctx["caching"] or ctx["cache_size"] < 1:
        return None
    if r < THRESHOLDS["repeat_ratio"]:
        return None
    size = min(ctx["cache_size"], m.get("distinct_items") or ctx["cache_size"])
    return (r,
            f"{r:.0%} of {m['function']}'s inputs repeat ({m.get('distinct_items')} distinct of {m.get('items')}) "
            f"and it returns equal outputs for equal inputs: those calls could be served from a cache.",
            {"repeat_ratio": r, "distinct_items": m.get("distinct_items"), "items": m.get("items"),
             "deterministic": True},
            [_sg(f"Cache its results keyed by input content in an LRU of {ctx['cache_size']} entries "
                 f"(CodeOptimizer.optimize_preprocessing does it; functools.lru_cache(maxsize={size}) "
                 f"works for hashable inputs, not tensors)",
                 f"{r:.0%} of the calls repeat an input", expected=round(1.0 / max(1e-3, 1.0 - r), 2),
                 cache_size=ctx["cache_size"], repeat_ratio=r)])


def _d_gpu(m, ctx):
    if not ctx["cuda_available"] or not ctx["gpu"]:
        return None
    cs, cpu_call = m.get("cpu_demand_share"), m.get("cpu_s_per_call")
    if cs is None or cpu_call is None or m.get("tensor_devices") != ["cpu"]:
        return None
    if cs < THRESHOLDS["gpu_cpu_demand_share"] or cpu_call < THRESHOLDS["gpu_cpu_per_call_s"]:
        return None
    pe = m.get("python_events_per_item")
    if pe is not None and pe >= THRESHOLDS["python_events_per_item"]:
        return None   # interpreter-bound: vectorise first, a GPU would not help
    return (min(1.0, cs),
            f"CUDA is available but {m['function']} does its tensor work on the CPU "
            f"({cpu_call * 1e3:.1f} ms of CPU per call, CPU wanted {cs:.0%} of its time).",
            {"cuda_available": True, "tensor_devices": m.get("tensor_devices"), "cpu_s_per_call": cpu_call,
             "cpu_demand_share": cs, "cpu_share": m.get("cpu_share")},
            [_sg("Move the batch to the GPU first (x.cuda(non_blocking=True) from pinned memory) and run this "
                 "step there", f"{cpu_call * 1e3:.1f} ms of CPU tensor work per call", cpu_s_per_call=cpu_call)])


_DETECTORS = (
    (_T.CPU_INTENSIVE, _d_cpu),
    (_T.I_O_BOUND, _d_io),
    (_T.MEMORY_INTENSIVE, _d_mem),
    (_T.VECTORIZATION_INEFFICIENT, _d_vector),
    (_T.ALGORITHM_INEFFICIENT, _d_algo),
    (_T.BATCH_SIZE_INEFFICIENT, _d_batch),
    (_T.CACHING_MISSED, _d_cache),
    (_T.GPU_UNDERUTILIZED, _d_gpu),
)


def detect(m, config=None, cuda_available=None):
    """The findings of a measurement (the dict profile_function or
    profile_batches returned), most severe first. cuda_available: whether a
    GPU could take the work (default: the one the measurement recorded);
    config: the enable_* flags and cache_size (default: all on, 1000)."""
    if cuda_available is None:
        cuda_available = bool(m.get("cuda_available"))
    ctx = {"cpu": _flag(config, "enable_cpu_tracking"), "io": _flag(config, "enable_io_tracking"),
           "memory": _flag(config, "enable_memory_tracking"), "gpu": _flag(config, "enable_gpu_tracking"),
           "caching": _flag(config, "enable_caching"),
           "cache_size": getattr(config, "cache_size", 1000) if config is not None else 1000,
           "cuda_available": bool(cuda_available)}
    out = []
    for t, fn in _DETECTORS:
        r = fn(m, ctx)
        if r is not None:
            out.append(_finding(t, *r, m))
    out.sort(key=lambda f: -f["severity"])
    return out


def _attach(prof, s, m, cuda_available):
    """Findings and suggestions into m and into the session's summary."""
    m["bottlenecks"] = detect(m, prof.config, cuda_available)
    m["suggestions"] = _profilers.suggestions_for(m["bottlenecks"])
    summ = s.summary
    if summ is not None:
        summ["bottlenecks"] = sorted(list(summ["bottlenecks"]) + m["bottlenecks"], key=lambda f: -f["severity"])
        summ["suggestions"] = _profilers.suggestions_for(summ["bottlenecks"])
        if getattr(prof.config, "save_profiles", False):
            prof._autosave(s)


# -- the profiler's memory ------------------------------------------------
_KEEP = 8


def remember(prof, fn, data, result, kind):
    """Keep (fn, data, result) on the profiler (the last few) for
    CodeOptimizer.optimize_preprocessing and get_optimal_preprocessing_config."""
    lst = getattr(prof, "_preprocessing_inputs", None)
    if lst is None:
        lst = []
        prof._preprocessing_inputs = lst
    lst.append({"fn": fn, "data": data, "result": result, "kind": kind})
    del lst[:-_KEEP]


def _recall(prof, fn=None, kind=None):
    for e in reversed(getattr(prof, "_preprocessing_inputs", None) or ()):
        if (fn is None or e["fn"] is fn or e["fn"] == fn) and (kind is None or e["kind"] == kind):
            return e
    return None


# -- profile_preprocessing_function ---------------------------------------
def profile_function(prof, fn, data, num_iterations=10, cuda_available=None):
    """Time fn(data) num_iterations times (after one warm-up call) in a
    session of prof; returns a JSON-ready dict: function, session_id,
    num_iterations, items, wall_s_per_call (mean), median_s_per_call,
    cpu_s_per_call, cpu_share, runqueue_share, cpu_demand_share,
    off_cpu_share, per_item_s,
    per_item_cpu_s, items_per_second, peak_memory_bytes (python_/native_),
    input_bytes, output_bytes, tensor_devices, python_events_per_item,
    repeat_ratio, distinct_items,
    deterministic, unit, caching_note, cuda_available, timing (the span's
    statistics), bottlenecks, suggestions."""
    where = "profile_preprocessing_function()"
    _check_fn(fn, where)
    n = _check_data(data, where)
    _check_iterations(num_iterations, where)
    cfg = prof.config
    name = _fn_name(fn)
    mem_on = _flag(cfg, "enable_memory_tracking")
    out = fn(data)                       # warm-up: one-time initialisations stay out
    native_peak = python_peak = None
    if mem_on:
        _malloc_trim()
        rss = _RssPeak()
        rss.start()
        fn(data)
        native_peak = rss.stop()
        python_peak = _python_peak(fn, data)
    span = _span(name)
    sid = prof.start_profiling_session("preprocessing_function")
    op = prof.profile_operation(span, BottleneckType.PREPROCESSING)
    clock = _Clock()
    try:
        for _ in range(num_iterations):
            with op:
                out = fn(data)
    finally:
        wall_ns, cpu_ns, rq_ns = clock.stop()
        s = prof.stop_profiling_session(sid)
    timing = dict(s.summary["operations"].get(span) or {})
    wall = timing.get("mean_time") or wall_ns * 1e-9 / num_iterations
    median = timing.get("p50_time") or wall
    cpu = cpu_ns * 1e-9 / num_iterations
    cpu_share, rq_share, demand, off = _shares(wall_ns, cpu_ns, rq_ns)
    peaks = [p for p in (python_peak, native_peak) if p is not None]
    m = {
        "function": name, "session_id": s.session_id, "num_iterations": num_iterations, "items": n,
        "wall_s_per_call": wall, "median_s_per_call": median, "cpu_s_per_call": cpu,
        "cpu_share": round(cpu_share, 4), "runqueue_share": None if rq_share is None else round(rq_share, 4),
        "cpu_demand_share": round(demand, 4),
        "off_cpu_share": round(off, 4), "per_item_s": wall / n, "per_item_cpu_s": cpu / n,
        "items_per_second": n / wall if wall > 0 else None,
        "peak_memory_bytes": max(peaks) if peaks else None, "python_peak_bytes": python_peak,
        "native_peak_bytes": native_peak, "input_bytes": _nbytes(data), "output_bytes": _nbytes(out),
        "tensor_devices": sorted(_devices(out, _devices(data, set()))),
        "cuda_available": _cuda(cfg) if cuda_available is None else bool(cuda_available),
        "timing": timing,
    }
    del out
    m["python_events_per_item"] = _events_per_item(fn, data, n)
    m.update(_caching_probe(fn, data, n, cfg))
    _attach(prof, s, m, m["cuda_available"])
    remember(prof, fn, data, m, "function")
    return m


# -- profile_batch_preprocessing ------------------------------------------
def _accepts_batches(fn, data, n):
    """(accepts, output): True when fn takes a batch of 2, False when it
    fails on one but takes a single item, None for one-item data. fn's
    exception on the batch propagates when it fails on the item too."""
    if n < 2:
        return None, fn(data[0:1])
    err = None
    try:
        return True, fn(data[0:2])
    except Exception as e:
        err = e
    try:
        out = fn(_item(data, 0))
    except Exception:
        out = None
    else:
        return False, out
    raise err


def _time_size(fn, data, n, b, op, per_item, budget_s):
    def call(batch):
        if per_item:
            items = [batch[i] for i in range(len(batch))]
            with op:
                for x in items:
                    fn(x)
        else:
            with op:
                fn(batch)

    call(data[0:b])                       # warm-up at this size
    pos, calls = 0, 0
    cpus = []
    cpu_now = _time.process_time_ns
    clock = _Clock()
    deadline = _time.perf_counter() + budget_s
    while True:
        if pos + b > n:
            pos = 0
        batch = data[pos:pos + b]
        c0 = cpu_now()
        call(batch)
        cpus.append(cpu_now() - c0)
        pos += b
        calls += 1
        if calls >= _MIN_CALLS and (calls >= _MAX_CALLS or _time.perf_counter() >= deadline):
            break
    cpus.sort()
    return clock.stop() + (cpus[len(cpus) // 2],)


def _fit_exponent(rows):
    """(k, sizes) of cost ~ size^k over the sizes >= max(2, largest/8)."""
    if not rows:
        return None, []
    hi = rows[-1]["batch_size"]
    pts = [(r["batch_size"], r["cost_s_per_call"]) for r in rows
           if r["batch_size"] >= max(2, hi / 8) and r["cost_s_per_call"] > 0]
    if len(pts) < 2 or pts[-1][0] < THRESHOLDS["exponent_span"] * pts[0][0]:
        return None, [p[0] for p in pts]
    xs = [_math.log(b) for b, _ in pts]
    ys = [_math.log(t) for _, t in pts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    k = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return round(k, 3), [p[0] for p in pts]


def profile_batches(prof, fn, data, batch_sizes=None, budget_s=None, cuda_available=None):
    """Time fn on batches of each size of batch_sizes (default: the config's
    batch_size_range) in a session of prof; returns a JSON-ready dict:
    function, session_id, items, accepts_batches, batch_profiles (one dict
    per size, smallest first: batch_size, calls, items, median_s_per_call,
    mean_s_per_call, per_item_s, items_per_second, median_cpu_s_per_call,
    cpu_share, cpu_s_per_item, cost_s_per_call, cost_s_per_item),
    skipped_batch_sizes (larger than data), best_batch_size,
    best_items_per_second, baseline_batch_size, batching_gain, cost_basis,
    per_item_ratio (cost per item, largest size over smallest), exponent,
    exponent_sizes, python_events_per_item, cpu_share, runqueue_share,
    cpu_demand_share, off_cpu_share, the caching probe's keys, bottlenecks,
    suggestions; with
    config.auto_optimize also "optimization" (optimize()'s entry) and
    "optimized_function"."""
    where = "profile_batch_preprocessing()"
    _check_fn(fn, where)
    n = _check_data(data, where)
    cfg = prof.config
    if batch_sizes is None:
        batch_sizes = getattr(cfg, "batch_size_range", None) or [1, 8, 16, 32, 64]
    sizes = sorted(set(batch_sizes))
    used = [b for b in sizes if b <= n]
    if not used:
        raise ValueError(f"{where}: data has {n} items, fewer than every batch size of {sizes}")
    if budget_s is None:
        budget_s = min(_BATCH_BUDGET_S, float(getattr(cfg, "profiling_duration", 60)) / (len(used) + 1))
    name = _fn_name(fn)
    accepts, out = _accepts_batches(fn, data, n)
    devices = sorted(_devices(out, _devices(data[0:1], set())))
    del out
    per_item = accepts is False
    sid = prof.start_profiling_session("batch_preprocessing")
    clocks = {}
    try:
        for b in used:
            op = prof.profile_operation(_span(name, f" [batch {b}]"), BottleneckType.PREPROCESSING)
            clocks[b] = _time_size(fn, data, n, b, op, per_item, budget_s)
    finally:
        s = prof.stop_profiling_session(sid)
    rows = []
    tw = tc = trq = 0
    rq_known = True
    for b in used:
        w, c, rq, cmed = clocks[b]
        o = s.summary["operations"].get(_span(name, f" [batch {b}]")) or {}
        calls = o.get("count") or 1
        med = o.get("p50_time") or (w * 1e-9 / calls)
        mean = o.get("mean_time") or med
        rows.append({"batch_size": b, "calls": calls, "items": calls * b, "median_s_per_call": med,
                     "mean_s_per_call": mean, "per_item_s": med / b, "items_per_second": b / med,
                     "median_cpu_s_per_call": cmed * 1e-9, "cpu_share": round(c / w, 4),
                     "cpu_s_per_item": c * 1e-9 / (calls * b)})
        tw, tc = tw + w, tc + c
        if rq is None:
            rq_known = False
        else:
            trq += rq
    cpu_share, rq_share, demand, off = _shares(tw, tc, trq if rq_known else None)
    # the cost that the growth and the per-item ratio are judged on: CPU time
    # for on-CPU work (a busy machine's preemptions do not count), else wall
    basis = "cpu" if off < THRESHOLDS["off_cpu_share"] else "wall"
    for r in rows:
        r["cost_s_per_call"] = r["median_cpu_s_per_call"] if basis == "cpu" else r["median_s_per_call"]
        r["cost_s_per_item"] = r["cost_s_per_call"] / r["batch_size"]
    base, best = rows[0], max(rows, key=lambda r: r["items_per_second"])
    k, ksizes = _fit_exponent(rows) if accepts is not False else (None, [])
    last = rows[-1]
    m = {
        "function": name, "session_id": s.session_id, "items": n, "accepts_batches": accepts,
        "batch_profiles": rows, "skipped_batch_sizes": [b for b in sizes if b > n],
        "best_batch_size": best["batch_size"], "best_items_per_second": best["items_per_second"],
        "baseline_batch_size": base["batch_size"],
        "batching_gain": round(best["items_per_second"] / base["items_per_second"], 4),
        "cost_basis": basis,
        "per_item_ratio": (round(last["cost_s_per_item"] / base["cost_s_per_item"], 4)
                           if len(rows) > 1 and base["cost_s_per_item"] > 0 else None),
        "exponent": k, "exponent_sizes": ksizes,
        "python_events_per_item": _events_per_item(fn, data, n) if accepts else None,
        "cpu_share": round(cpu_share, 4), "runqueue_share": None if rq_share is None else round(rq_share, 4),
        "cpu_demand_share": round(demand, 4),
        "off_cpu_share": round(off, 4), "per_item_cpu_s": best["cpu_s_per_item"],
        "cpu_s_per_call": best["cpu_s_per_item"] * best["batch_size"],
        "median_s_per_call": best["median_s_per_call"],
        "tensor_devices": devices,
        "cuda_available": _cuda(cfg) if cuda_available is None else bool(cuda_available),
    }
    m.update(_caching_probe(fn, data, n, cfg))
    _attach(prof, s, m, m["cuda_available"])
    remember(prof, fn, data, m, "batch")
    if getattr(cfg, "auto_optimize", False):
        new_fn, entry = optimize(fn, data, cfg, m)
        m["optimization"] = entry
        m["optimized_function"] = new_fn
        log.info("stall: optimize_preprocessing(%s): %s", name, _entry_line(entry))
    return m


def _entry_line(e):
    if e.get("applied"):
        return (f"applied {' + '.join(e['optimizations'])} ({e['measured_speedup']:.2f}x measured on "
                f"{e['items']} items, outputs verified)")
    return f"nothing applied: {e.get('reason')}"


def _entry(name):
    """optimize()'s report entry, in the shape of CodeOptimizer's entries."""
    return {"kind": "preprocessing", "method": "optimize_preprocessing", "target": name, "function": name,
            "applied": False, "optimizations": [], "changes": {}, "verified": False, "measured_speedup": None,
            "baseline_s": None, "optimized_s": None, "items": None, "unit": None, "repeat_ratio": None,
            "cache_size": None, "batch_size": None, "candidates": {}, "reason": None, "note": None}


def _why(entry, text):
    entry["reason"] = entry["note"] = text
    return entry


# -- get_optimal_preprocessing_config ---------------------------------------
def optimal_config(prof):
    """The best settings from the latest batch profile of prof: batch_size,
    items_per_second, use_cache, cache_size, accepts_batches,
    expected_speedup (the measured batching gain, times 1 / (1 - repeat
    ratio) when caching applies: an estimate), function, repeat_ratio."""
    e = _recall(prof, kind="batch")
    if e is None:
        raise RuntimeError("get_optimal_preprocessing_config(): nothing profiled yet "
                           "(call profile_batch_preprocessing(fn, data) first)")
    m = e["result"]
    cfg = prof.config
    r = m.get("repeat_ratio")
    use_cache = bool(_flag(cfg, "enable_caching") and getattr(cfg, "cache_size", 0) >= 1 and m.get("deterministic")
                     and r is not None and r >= THRESHOLDS["repeat_ratio"])
    gain = m["batching_gain"] if m.get("accepts_batches") is not False else 1.0
    speedup = gain * (1.0 / (1.0 - r) if use_cache else 1.0)
    return {"function": m["function"], "batch_size": m["best_batch_size"],
            "items_per_second": m["best_items_per_second"], "use_cache": use_cache,
            "cache_size": getattr(cfg, "cache_size", 0) if use_cache else 0,
            "accepts_batches": m.get("accepts_batches"), "repeat_ratio": r,
            "expected_speedup": round(speedup, 3)}


# -- optimize -----------------------------------------------------------
_MISS = object()


class OptimizedFunction:
    """fn with a content-keyed LRU cache and/or batched map(); made by
    optimize(). Calling it with one positional argument goes through the
    cache; other calls go straight to fn. map(items) equals
    [fn(x) for x in items]. Thread-safe; cached values are returned as
    clones."""

    def __init__(self, fn, cache_size=0, batch_size=None, unit="item"):
        _functools.update_wrapper(self, fn)
        self.fn = fn
        self.cache_size = int(cache_size)
        self.batch_size = batch_size
        self.unit = unit
        self.applied = (["cache"] if self.cache_size > 0 else []) + (["batching"] if batch_size else [])
        self._lock = _threading.Lock()
        self._cache = _collections.OrderedDict()
        self._hits = self._misses = 0

    def __repr__(self):
        return f"<stall optimized {getattr(self.fn, '__qualname__', self.fn)!r}: {' + '.join(self.applied)}>"

    def __get__(self, obj, objtype=None):
        return self if obj is None else _functools.partial(self, obj)

    def __getstate__(self):
        # a copy sent to a DataLoader worker starts with an empty cache of its own
        d = dict(self.__dict__)
        d.pop("_lock", None)
        d["_cache"] = _collections.OrderedDict()
        d["_hits"] = d["_misses"] = 0
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)
        self._lock = _threading.Lock()

    # cache
    def _get(self, k):
        with self._lock:
            v = self._cache.get(k, _MISS)
            if v is not _MISS:
                self._cache.move_to_end(k)
                self._hits += 1
            return v

    def _put(self, k, out):
        c = _clone(out)
        with self._lock:
            self._misses += 1
            self._cache[k] = c
            self._cache.move_to_end(k)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def __call__(self, *args, **kwargs):
        if self.cache_size < 1 or len(args) != 1 or kwargs:
            return self.fn(*args, **kwargs)
        k = content_key(args[0])
        if k is None:
            return self.fn(*args)
        v = self._get(k)
        if v is not _MISS:
            return _clone(v)
        out = self.fn(args[0])
        self._put(k, out)
        return out

    def cache_info(self):
        with self._lock:
            return {"hits": self._hits, "misses": self._misses, "size": len(self._cache),
                    "maxsize": self.cache_size}

    def cache_clear(self):
        with self._lock:
            self._cache.clear()
            self._hits = self._misses = 0

    # batching
    def map(self, items):
        """[self(x) for x in items], computed on batches of batch_size when
        batching applies (cache hits first, each distinct miss once)."""
        items = list(items)
        if not self.batch_size:
            return [self(x) for x in items]
        res = [None] * len(items)
        pending = {}                  # key (or index) -> indices waiting for it
        order = []
        for i, x in enumerate(items):
            k = content_key(x) if self.cache_size > 0 else None
            if k is not None:
                v = self._get(k)
                if v is not _MISS:
                    res[i] = _clone(v)
                    continue
            kk = k if k is not None else ("#", i)
            if kk not in pending:
                pending[kk] = []
                order.append(kk)
            pending[kk].append(i)
        b = self.batch_size
        for s in range(0, len(order), b):
            chunk = order[s:s + b]
            xs = [items[pending[kk][0]] for kk in chunk]
            outs = _split(self.fn(_join(xs, self.unit)), len(xs), self.unit)
            for kk, o in zip(chunk, outs):
                idx = pending[kk]
                res[idx[0]] = o
                for j in idx[1:]:
                    res[j] = _clone(o)
                if kk[0] != "#":
                    self._put(kk, o)
        return res


def _join(xs, unit):
    if _is_tensor(xs[0]):
        torch = _sys.modules["torch"]
        return torch.stack(xs) if unit == "item" else torch.cat(xs)
    np = _sys.modules["numpy"]
    return np.stack(xs) if unit == "item" else np.concatenate(xs)


def _split(out, n, unit):
    if _is_tensor(out) or _is_array(out):
        if out.ndim == 0 or out.shape[0] != n:
            raise ValueError(f"the batched output's first axis is {tuple(out.shape)[:1]}, not {n}")
        return [out[i] for i in range(n)] if unit == "item" else [out[i:i + 1] for i in range(n)]
    if isinstance(out, (list, tuple)) and out and all(_is_tensor(v) or _is_array(v) for v in out):
        parts = [_split(v, n, unit) for v in out]
        return [type(out)(p[i] for p in parts) for i in range(n)]
    raise ValueError(f"a batched output of type {type(out).__name__} cannot be split per item")


def _best_time(run, reset, min_total_s=0.3, max_runs=7):
    """The fastest of a few runs of run() (reset() before each): runs until
    min_total_s is spent (at least one, at most max_runs)."""
    best, total, runs = None, 0.0, 0
    while runs < 1 or (runs < max_runs and total < min_total_s):
        reset()
        t0 = _time.perf_counter()
        run()
        dt = _time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
        total += dt
        runs += 1
    return best


def optimize(fn, data, config=None, profile=None):
    """(new_fn, entry): a verified faster equivalent of fn on data, or fn
    itself with entry["reason"] saying why not. config: cache_size,
    enable_caching, batch_size_range (defaults 1000, True, [1, 8, 16, 32,
    64]); profile: a profile_batches result for fn (its best batch size).
    entry (the shape of CodeOptimizer's entries): kind "preprocessing",
    method, target/function, applied (bool), optimizations ("cache",
    "batching"), changes ({setting: [old, new]}), verified,
    measured_speedup, baseline_s, optimized_s (the workload's seconds),
    items, unit, repeat_ratio, cache_size, batch_size, candidates (each
    candidate's measured speedup, or why it was dropped), reason (= note)."""
    where = "optimize_preprocessing()"
    _check_fn(fn, where)
    n = _check_data(data, where)
    name = _fn_name(fn)
    cache_size = int(getattr(config, "cache_size", 1000)) if config is not None else 1000
    caching = _flag(config, "enable_caching")
    sizes = list(getattr(config, "batch_size_range", None) or [1, 8, 16, 32, 64])
    entry = _entry(name)
    entry.update(items=n, workload="fn on each item of the profiled data, repeats included "
                                   "(new_fn.map(items) batches; new_fn(x) is one cached call)")
    mode = _unit_mode(fn, data)
    if mode is None:
        return fn, _why(entry, "fn fails on a single item and on a batch of one: per-item optimizations do not apply")
    entry["unit"] = mode
    units = [_unit(data, i, mode) for i in range(n)]
    keys0 = [content_key(u) for u in units]
    ref = [fn(u) for u in units]
    baseline = _best_time(lambda: [fn(u) for u in units], lambda: None)
    entry["baseline_s"] = baseline
    cands = {}
    # the cache
    if not caching or cache_size < 1:
        cands["cache"] = "caching is disabled in the config (enable_caching / cache_size)"
    elif any(k is None for k in keys0):
        cands["cache"] = f"inputs of type {type(units[0]).__name__} cannot be keyed by content"
    else:
        r = 1.0 - len(set(keys0)) / n
        entry["repeat_ratio"] = round(r, 4)
        first = {}
        det = all(content_key(u) == k for u, k in zip(units, keys0))
        for i, k in enumerate(keys0):
            j = first.setdefault(k, i)
            if j != i and not outputs_equal(ref[i], ref[j]):
                det = False
        if det:
            try:
                det = outputs_equal(fn(units[0]), ref[0])
                _clone(ref[0])
            except Exception:
                det = False
        if r < THRESHOLDS["repeat_ratio"]:
            cands["cache"] = f"inputs do not recur (repeat ratio {r:.2f} < {THRESHOLDS['repeat_ratio']})"
        elif not det:
            cands["cache"] = "fn is not deterministic on equal inputs (or changes its input)"
        else:
            cands["cache"] = None
    # batching
    b = None
    if profile is not None and profile.get("best_batch_size"):
        b = profile["best_batch_size"]
    else:
        fit = [s for s in sizes if s <= n]
        b = max(fit) if fit else n
    if b < 2:
        cands["batching"] = "the best batch size is 1"
    elif profile is not None and profile.get("accepts_batches") is False:
        cands["batching"] = "fn does not accept batches"
    elif not all(_is_tensor(u) for u in units) and not all(_is_array(u) for u in units):
        cands["batching"] = "items are not tensors or arrays: they cannot be stacked into batches"
    elif len({(tuple(u.shape), str(u.dtype)) for u in units}) != 1:
        cands["batching"] = "items differ in shape or dtype: they cannot be stacked into batches"
    else:
        try:
            _split(fn(_join(units[:2], mode)), min(2, n), mode)
            cands["batching"] = None
        except Exception as e:
            cands["batching"] = f"fn rejects a stacked batch ({type(e).__name__}: {e})"
    # verify and time each candidate
    options = []
    use_c, use_b = cands["cache"] is None, cands["batching"] is None
    for c, bb in ((True, False), (False, True), (True, True)):
        if (c and not use_c) or (bb and not use_b):
            continue
        w = OptimizedFunction(fn, cache_size if c else 0, b if bb else None, mode)
        label = " + ".join(w.applied)
        try:
            got = w.map(units)
        except Exception as e:
            entry["candidates"][label] = f"failed ({type(e).__name__}: {e})"
            continue
        if not all(outputs_equal(x, y, exact=not bb) for x, y in zip(got, ref)):
            entry["candidates"][label] = "outputs differ from fn's on the profiled data"
            continue
        t = _best_time(lambda: w.map(units), w.cache_clear)
        w.cache_clear()
        entry["candidates"][label] = round(baseline / t, 3)
        options.append((t, w))
    for k, v in cands.items():
        if v is not None:
            entry["candidates"][k] = v
    if not options:
        bad = {k: v for k, v in entry["candidates"].items() if isinstance(v, str)}
        return fn, _why(entry, "; ".join(f"{k}: {v}" for k, v in bad.items()) or "no candidate")
    t, w = min(options, key=lambda o: o[0])
    speedup = baseline / t
    entry.update(verified=True, measured_speedup=round(speedup, 3), optimized_s=t)
    if speedup < THRESHOLDS["optimize_gain"]:
        return fn, _why(entry, f"no measured gain: the best candidate ({' + '.join(w.applied)}) ran at "
                               f"{speedup:.2f}x on the profiled data")
    ch = {}
    if w.cache_size:
        ch["cache_size"] = [0, w.cache_size]
    if w.batch_size:
        ch["batch_size"] = [1, w.batch_size]
    entry.update(applied=True, optimizations=list(w.applied), changes=ch, cache_size=w.cache_size or None,
                 batch_size=w.batch_size)
    _why(entry, f"{' + '.join(w.applied)}: {speedup:.2f}x on the profiled data ({n} items, outputs equal to fn's)")
    w.optimization = entry
    return w, entry


def optimize_for(profiler, fn, data=None):
    """CodeOptimizer.optimize_preprocessing's work: optimize(fn, data) with
    the data (and batch profile) profiler last profiled fn with, unless data
    is given."""
    _check_fn(fn, "optimize_preprocessing()")
    profile = None
    cfg = getattr(profiler, "config", None)
    if profiler is not None:
        e = _recall(profiler, fn, "batch")
        profile = e["result"] if e is not None else None
        if data is None:
            e = e or _recall(profiler, fn)
            if e is not None:
                data = e["data"]
    if data is None:
        return fn, _why(_entry(_fn_name(fn)), "fn was not profiled by this optimizer's profiler: call "
                        "profile_preprocessing(fn, data) or profile_batch_preprocessing(fn, data) first, or pass data=")
    return optimize(fn, data, cfg, profile)
