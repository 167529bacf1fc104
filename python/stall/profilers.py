"""stall.profilers: the profiler classes of the seeds, as glue over C.

BottleneckProfiler, AdvancedProfiler, DataLoadingProfiler and
PreprocessingProfiler subclass `_native.Profiler`, so `profile_operation`
is C's span context manager. Sessions map to the process-wide engine
(_engine.py); every statistic (count, total, self, min/max, percentiles,
CPU time, processes) comes from engine.ops() and is only converted to
seconds here. Findings come from the C detector table (Engine.diagnose, the
same as `stall run`'s) with the config's thresholds; custom detectors join
that table. The DataLoader search is stall.tuner, the preprocessing analysis
stall.preprocessing; monitoring arrives with issue 9.
"""

import dataclasses as _dc
import enum as _enum
import json as _json
import logging as _logging
import os as _os
import sys as _sys
import time as _time
import tracemalloc as _tracemalloc
import weakref as _weakref
from typing import Any, Dict, List, Optional

from . import _engine, _native
from . import tuner as _tuner
from . import preprocessing as _pre  # imports this module back; uses it only at call time
from .config import (
    BottleneckProfilerConfig,
    DataLoadingProfilerConfig,
    PreprocessingProfilerConfig,
    ProfilingConfig,
)
from .types import BottleneckType, PerformanceMetrics, ProfilingLevel

__all__ = [
    "ProfilingSession",
    "BottleneckProfiler",
    "AdvancedProfiler",
    "CPUMemoryProfiler",
    "GPUProfiler",
    "DataLoadingProfiler",
    "PreprocessingProfiler",
    "CodeOptimizer",
    "PerformanceMonitor",
    "profile_function",
    "profile_context",
]

log = _logging.getLogger("stall")

RESULTS_FORMAT = "stall.profiling_results"
RESULTS_VERSION = 1
_NS = 1e-9
_GB = float(1 << 30)
_T = BottleneckType


def _tv(t):
    """A finding/operation type as the str stored in results."""
    if t is None:
        return None
    return t.value if isinstance(t, _enum.Enum) else str(t)


# The optimization texts of the seeds, keyed by finding type (first version:
# fixed text; advisors with concrete values and expected speedups: issue 6).
_DATA_TEXT = [
    "Increase `num_workers` for parallel loading",
    "Enable `pin_memory=True` for faster GPU transfer",
    "Use `persistent_workers=True` to avoid initialization overhead",
    "Implement data prefetching with `prefetch_factor`",
    "Use memory-mapped files for large datasets",
    "Optimize batch sizes for memory efficiency",
]
_PRE_TEXT = [
    "Move preprocessing to GPU using `torch.cuda.amp`",
    "Cache preprocessed data for repeated operations",
    "Use `torch.jit.script` for preprocessing functions",
    "Implement batch preprocessing operations",
    "Use vectorized operations instead of loops",
    "Consider specialized preprocessing libraries",
]
_MEM_TEXT = ["Reduce batch sizes", "Enable gradient checkpointing", "Use mixed precision training"]
_GPU_UNDER_TEXT = ["Move preprocessing to GPU", "Increase batch sizes", "Use GPU-optimized operations"]
_CPU_TEXT = ["Vectorize operations", "Use GPU acceleration", "Implement caching"]
_SUGGESTIONS = {}
for _t in (_T.DATA_LOADING, _T.SLOW_DISK_IO, _T.INSUFFICIENT_WORKERS, _T.GPU_TRANSFER_OVERHEAD,
           _T.BATCH_SIZE_INEFFICIENCY, _T.SAMPLER_OVERHEAD, _T.COLLATE_FUNCTION_SLOW, _T.IO_BOUND,
           _T.I_O_BOUND, _T.IO_OPERATIONS, _T.DATA_TRANSFER):
    _SUGGESTIONS[_t.value] = _DATA_TEXT
for _t in (_T.PREPROCESSING, _T.PREPROCESSING_BOTTLENECK, _T.VECTORIZATION_INEFFICIENT, _T.CACHING_MISSED,
           _T.BATCH_SIZE_INEFFICIENT, _T.ALGORITHM_INEFFICIENT, _T.CPU_INTENSIVE):
    _SUGGESTIONS[_t.value] = _PRE_TEXT
for _t in (_T.MEMORY_PRESSURE, _T.MEMORY_INTENSIVE, _T.MEMORY_BOUND, _T.MEMORY_ALLOCATION):
    _SUGGESTIONS[_t.value] = _MEM_TEXT
for _t in (_T.GPU_UNDERUTILIZED,):
    _SUGGESTIONS[_t.value] = _GPU_UNDER_TEXT
for _t in (_T.CPU_BOUND, _T.CPU_COMPUTATION, _T.MODEL_FORWARD, _T.MODEL_BACKWARD, _T.OPTIMIZER_STEP):
    _SUGGESTIONS[_t.value] = _CPU_TEXT


def suggestions_for(findings):
    """Each finding's own suggestions (concrete values and the expected
    speedup of the diagnosis' model), then the seeds' optimization texts for
    its type; most severe finding first."""
    out, seen = [], set()
    for f in sorted(findings, key=lambda f: -f.get("severity", 0.0)):
        for sg in f.get("suggestions") or ():
            if isinstance(sg, dict) and sg.get("action") and (f.get("type"), sg["action"]) not in seen:
                seen.add((f.get("type"), sg["action"]))
                out.append({"type": f.get("type"), "suggestion": sg["action"], "params": sg.get("params", {}),
                            "expected_speedup": sg.get("expected_speedup"), "why": sg.get("why"),
                            "source": "diagnosis"})
        for text in _SUGGESTIONS.get(f.get("type"), ()):
            if (f.get("type"), text) not in seen:
                seen.add((f.get("type"), text))
                out.append({"type": f.get("type"), "suggestion": text, "source": "seed text"})
    return out


@_dc.dataclass
class ProfilingSession:
    """One named profiling session. `summary` is filled when it stops."""

    session_id: str
    name: str
    engine_id: int
    start_ns: int
    start_time: float
    end_ns: Optional[int] = None
    end_time: Optional[float] = None
    summary: Optional[Dict[str, Any]] = None
    loaded: bool = False

    @property
    def active(self):
        return self.end_ns is None and not self.loaded

    @property
    def duration(self):
        if self.summary is not None:
            return self.summary.get("duration")
        end = self.end_ns if self.end_ns is not None else _native.now_ns()
        return (end - self.start_ns) * _NS

    @property
    def operations(self):
        return (self.summary or {}).get("operations", {})

    @property
    def bottlenecks(self):
        return (self.summary or {}).get("bottlenecks", [])

    def to_dict(self):
        return dict(self.summary) if self.summary is not None else {"session_id": self.session_id, "name": self.name}


def _thresholds(cfg):
    """The config's thresholds as Engine.diagnose() takes them: shares in
    (0, 1] (ProfilingConfig gives percents; a threshold of 0, which the
    configs allow, means "always" and becomes the smallest share)."""
    if isinstance(cfg, ProfilingConfig):
        b, m, g, c = cfg.bottleneck_threshold, cfg.memory_threshold / 100.0, cfg.gpu_threshold / 100.0, cfg.cpu_threshold
    elif isinstance(cfg, BottleneckProfilerConfig):
        b, m, g, c = cfg.bottleneck_threshold, cfg.memory_threshold, cfg.gpu_threshold, cfg.cpu_threshold
    else:
        b, m, g, c = 0.05, 0.8, 0.9, 90.0
    share = lambda v: min(1.0, max(v, 1e-9))  # noqa: E731
    return {"bottleneck": share(b), "memory": share(m), "gpu": share(g), "cpu": share(c / 100.0)}


def _torch_cuda():
    torch = _sys.modules.get("torch")  # never import torch for the user
    try:
        if torch is not None and torch.cuda.is_available():
            return torch
    except Exception:
        pass
    return None


def gpu_memory(eng):
    """dict allocated/reserved/total/fragmentation/util from torch, else NVML."""
    out = dict(allocated=None, reserved=None, total=None, fragmentation=None, util=None, share=None)
    gpus = []
    try:
        gpus = eng.gpus() if eng is not None else []
    except Exception:
        gpus = []
    utils = [g.get("util_sm_pct") for g in gpus if g.get("util_sm_pct") is not None]
    if utils:
        out["util"] = sum(utils) / len(utils)
    torch = _torch_cuda()
    if torch is not None:
        try:
            out["allocated"] = int(torch.cuda.memory_allocated())
            out["reserved"] = int(torch.cuda.memory_reserved())
            out["total"] = int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)
            if out["reserved"]:
                out["fragmentation"] = 1.0 - out["allocated"] / out["reserved"]
            if out["total"]:
                out["share"] = out["reserved"] / out["total"]
            return out
        except Exception:
            pass
    used = [g.get("mem_used_bytes") for g in gpus if g.get("mem_used_bytes") is not None]
    total = [g.get("mem_total_bytes") for g in gpus if g.get("mem_total_bytes")]
    if used and total:
        out["allocated"], out["total"] = sum(used), sum(total)
        out["share"] = max(
            (g["mem_used_bytes"] / g["mem_total_bytes"]) for g in gpus
            if g.get("mem_used_bytes") is not None and g.get("mem_total_bytes")
        )
    return out


def _cpu_pct(latest):
    if not latest or latest.get("cpu_user") is None or latest.get("cpu_system") is None:
        return None
    return 100.0 * (latest["cpu_user"] + latest["cpu_system"])


def _mem_share(latest):
    if not latest:
        return None
    avail, total = latest.get("mem_usable_available_bytes"), latest.get("mem_total_bytes")
    if avail is None or not total:
        return None
    return 1.0 - avail / total


def _root_proc(eng):
    try:
        procs = eng.processes()
    except Exception:
        return None
    return procs[0] if procs else None


def live_metrics(eng, max_age_s=None, start_ns=None):
    """PerformanceMetrics from the sampler's latest sample (C); when the
    latest is older than max_age_s, one sample is taken now (in C)."""
    latest = eng.latest()
    now = _native.now_ns()
    if max_age_s is not None and (latest is None or (now - latest["t_ns"]) * _NS > max_age_s):
        try:
            eng.sample_now()
            latest = eng.latest()
        except Exception:
            pass
    root = _root_proc(eng)
    g = gpu_memory(eng)
    m = PerformanceMetrics(
        execution_time=((now - start_ns) * _NS) if start_ns is not None else 0.0,
        cpu_usage=_cpu_pct(latest),
        memory_usage=(root["rss_bytes"] / _GB) if root and root.get("rss_bytes") is not None else None,
        gpu_usage=g["util"],
        process_cpu_usage=(100.0 * root["cpu_util"]) if root and root.get("cpu_util") is not None else None,
        memory_used_share=_mem_share(latest),
        gpu_memory_allocated=g["allocated"],
        gpu_memory_reserved=g["reserved"],
        gpu_memory_total=g["total"],
        gpu_memory_fragmentation=g["fragmentation"],
        io_read_bytes_per_s=(latest or {}).get("disk_read_bytes_per_s"),
        io_write_bytes_per_s=(latest or {}).get("disk_write_bytes_per_s"),
        timestamp=_time.time(),
    )
    if _tracemalloc.is_tracing():
        m.python_memory_current, m.python_memory_peak = _tracemalloc.get_traced_memory()
    return m


class _SessionCore:
    """Sessions, summaries, findings, save/load: shared by the profilers."""

    _default_config = BottleneckProfilerConfig
    _config_types = (BottleneckProfilerConfig, ProfilingConfig)

    def _setup(self, config):
        if config is None:
            config = self._default_config()
        if not isinstance(config, self._config_types):
            names = " or ".join(c.__name__ for c in self._config_types)
            raise TypeError(f"{type(self).__name__}(): config must be a {names}, not {type(config).__name__}")
        config.validate()
        self.config = config
        self._op_types = {}
        self._sessions = {}
        self._order = []          # session ids, in start order
        self._detectors = []
        self._user_metrics = {}
        self._started_tracemalloc = False
        self._loader_tunings = _weakref.WeakKeyDictionary()  # DataLoader -> (space, TuningResult, make_loader)
        level = getattr(config, "level", None) or getattr(config, "profiling_level", None)
        self._thread_cpu = bool(level is not None and level.thread_cpu_time)
        _engine.transport(self._thread_cpu)

    # -- engine -----------------------------------------------------------
    def _eng(self):
        cfg = self.config
        interval = getattr(cfg, "effective_sampling_interval", 0.1)
        return _engine.engine(interval, getattr(cfg, "max_samples", 1200), self._thread_cpu)

    def __reduce__(self):
        # a spawned DataLoader worker gets a recording-only copy
        return (_rebuild, (type(self), self.config))

    # -- sessions ---------------------------------------------------------
    def start_profiling_session(self, name="session"):
        """Start a named session; returns its id (a str). Sessions may overlap."""
        if not isinstance(name, str):
            raise TypeError(f"start_profiling_session(): name must be a str, not {type(name).__name__}")
        if not name or "\0" in name:
            raise ValueError("start_profiling_session(): name must be a non-empty str without NUL")
        eng = self._eng()
        eid = _engine.new_session_id()
        t = _native.now_ns()
        eng.session_begin(eid, name, t)
        sid = f"{name}-{eid}"
        self._sessions[sid] = ProfilingSession(sid, name, eid, t, _time.time())
        self._order.append(sid)
        if getattr(self.config, "tracemalloc_on", False) and not _tracemalloc.is_tracing():
            _tracemalloc.start()
            self._started_tracemalloc = True
        return sid

    def _session(self, session_id):
        if session_id is None:
            for sid in reversed(self._order):
                if self._sessions[sid].active:
                    return self._sessions[sid]
            raise RuntimeError("stop_profiling_session(): no active session (call start_profiling_session first)")
        try:
            return self._sessions[session_id]
        except KeyError:
            raise KeyError(f"unknown session id {session_id!r}") from None

    def stop_profiling_session(self, session_id=None):
        """Stop a session (the latest active one by default) and return it,
        its summary computed once."""
        s = self._session(session_id)
        if not s.active:
            return s
        eng = self._eng()
        s.end_ns = _native.now_ns()
        s.end_time = _time.time()
        eng.session_end(s.engine_id, s.end_ns)
        s.summary = self._summarize(s)
        for f in s.summary["bottlenecks"]:
            log_finding(f, s.session_id)
        if self._started_tracemalloc and not any(x.active for x in self._sessions.values()):
            _tracemalloc.stop()
            self._started_tracemalloc = False
        if getattr(self.config, "save_profiles", False):
            self._autosave(s)
        return s

    def _autosave(self, s):
        try:
            d = self.config.profile_output_dir
            _os.makedirs(d, exist_ok=True)
            _write_json(_os.path.join(d, f"{s.session_id}.json"), self._results_doc([s]))
        except OSError as e:
            log.warning("stall: could not save the profile of %s: %s", s.session_id, e)

    def get_session_summary(self, session_id=None):
        """The summary of a session, live while it runs (stats in seconds)."""
        if session_id is None:
            s = self._current()
            if s is None:
                raise RuntimeError("get_session_summary(): no session yet")
        else:
            s = self._session(session_id)
        return s.summary if s.summary is not None else self._summarize(s)

    def _current(self):
        for sid in reversed(self._order):
            if self._sessions[sid].active:
                return self._sessions[sid]
        return self._sessions[self._order[-1]] if self._order else None

    def get_bottleneck_summary(self, session_id=None):
        """Findings of the current session (the latest active, else the last
        stopped): bottlenecks, counts per type, the most severe, suggestions."""
        s = self._current() if session_id is None else self._session(session_id)
        if s is None:
            return {"session_id": None, "bottlenecks": [], "bottleneck_counts": {}, "most_severe": None,
                    "suggestions": [], "total_bottlenecks": 0}
        summ = self.get_session_summary(s.session_id)
        b = summ["bottlenecks"]
        counts = {}
        for f in b:
            counts[f["type"]] = counts.get(f["type"], 0) + 1
        return {
            "session_id": s.session_id,
            "name": s.name,
            "active": s.active,
            "bottlenecks": b,
            "bottleneck_counts": counts,
            "most_severe": max(b, key=lambda f: f["severity"]) if b else None,
            "suggestions": summ["suggestions"],
            "total_bottlenecks": len(b),
        }

    # -- summaries --------------------------------------------------------
    def _ops(self, eng, s, wall_ns):
        eng.drain()
        out = {}
        for o in eng.ops(s.engine_id):
            if o["kind"] == _native.KIND_SESSION:
                continue
            name = o["name"]
            if name in out:
                name = f"{name} [{o['kind_name']}]"
            t = self._op_types.get(o["name"]) or _engine.TYPE_OF_KIND.get(o["kind"], _T.UNKNOWN)
            n = o["count"]
            out[name] = {
                "type": _tv(t),
                "kind": o["kind_name"],
                "count": n,
                "total_time": o["total_ns"] * _NS,
                "self_time": o["self_ns"] * _NS,
                "mean_time": (o["total_ns"] * _NS / n) if n else None,
                "min_time": o["min_ns"] * _NS,
                "max_time": o["max_ns"] * _NS,
                "p50_time": o["p50_ns"] * _NS,
                "p95_time": o["p95_ns"] * _NS,
                "p99_time": o["p99_ns"] * _NS,
                "cpu_time": None if o.get("cpu_ns") is None else o["cpu_ns"] * _NS,
                "share": (o["total_ns"] / wall_ns) if wall_ns else None,
                "self_share": (o["self_ns"] / wall_ns) if wall_ns else None,
                "processes": o["processes"],
                "truncated": o["truncated"],
            }
        return out

    def _summarize(self, s):
        eng = self._eng()
        end = s.end_ns if s.end_ns is not None else _native.now_ns()
        wall_ns = max(1, end - s.start_ns)
        ops = self._ops(eng, s, wall_ns)
        try:
            kt = {k: v * _NS for k, v in eng.kind_time(s.engine_id).items()}
        except Exception:
            kt = {}
        metrics = live_metrics(eng, start_ns=s.start_ns)
        metrics.execution_time = wall_ns * _NS
        findings = self._detect(s, ops, wall_ns, eng, metrics)
        return {
            "session_id": s.session_id,
            "name": s.name,
            "active": s.end_ns is None,
            "start_time": s.start_time,
            "end_time": s.end_time,
            "duration": wall_ns * _NS,
            "operations": ops,
            "kind_time": kt,
            "processes": max((o["processes"] for o in ops.values()), default=0),
            "metrics": metrics.to_dict(),
            "bottlenecks": findings,
            "suggestions": suggestions_for(findings),
            "user_metrics": dict(self._user_metrics),
        }

    def _detect(self, s, ops, wall_ns, eng, metrics):
        """The findings of a session: the C detectors' table (analyze.c) with
        this config's thresholds, the custom detectors joining it."""
        cfg = self.config
        latest = eng.latest() or {}
        custom = {}   # detector name -> the finding its fn returned, as the Python API shows it
        dets = []
        if self._detectors:
            base = dict(latest)
            base.update(metrics.to_dict())
            base.update(session_id=s.session_id, wall_time=wall_ns * _NS, operations=ops,
                        memory_used_share=_mem_share(latest))
            for i, fn in enumerate(self._detectors):
                name = f"python{i}"
                dets.append((name, _detector_adapter(fn, name, base, self._user_metrics, custom)))
        doc = _json.loads(eng.diagnose(s.engine_id, detectors=dets, **_thresholds(cfg)))
        keep = {"MEMORY_PRESSURE": getattr(cfg, "enable_memory_tracking", True),
                "CPU_BOUND": getattr(cfg, "enable_cpu_tracking", True)}
        gpu_on = getattr(cfg, "enable_gpu_tracking", getattr(cfg, "enable_gpu_profiling", True))
        for t in ("GPU_BOUND", "GPU_UNDERUTILIZED", "GPU_TRANSFER_OVERHEAD"):
            keep[t] = gpu_on
        out = []
        for f in doc["bottlenecks"]:
            if not keep.get(f["type"], True):
                continue
            out.append(self._finding(f, ops, custom))
        out.sort(key=lambda f: -f["severity"])
        return out

    def _finding(self, f, ops, custom):
        """A C finding as the Python API shows it: the type as BottleneckType's
        value (an operation's own type when the user gave one), message."""
        ev = f.get("evidence") or {}
        d = {"type": f["type"], "title": f.get("title"), "severity": f["severity"], "summary": f["summary"],
             "message": f["summary"], "evidence": ev, "suggestions": f.get("suggestions", [])}
        op = ev.get("operation")
        if op is not None:
            d["operation"] = op
            t = self._op_types.get(op)
            d["type"] = _tv(t) if t is not None else BottleneckType[f["type"]].value
            o = ops.get(op)
            if o is not None:
                d["evidence"] = {k: o[k] for k in ("total_time", "self_time", "count", "share", "self_share", "processes")}
            return d
        full = custom.get(f.get("detector"))
        if full is not None:
            full = dict(full, severity=f["severity"])  # clamped by the table
            full.setdefault("suggestions", d["suggestions"])
            return full
        try:
            d["type"] = BottleneckType[f["type"]].value
        except KeyError:
            pass
        d["metric"] = _METRIC_OF.get(f["type"], "diagnosis")
        return d

    def record_metric(self, name, value):
        """Records a metric of your own (its latest value) under `name`; custom
        bottleneck detectors find it at the top level of their metrics dict
        (metrics[name]), and summaries list it under "user_metrics"."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"record_metric(): name must be a non-empty str, not {name!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"record_metric(): value must be a number, not {type(value).__name__}")
        self._user_metrics[name] = value

    def add_custom_bottleneck_detector(self, fn):
        """fn(metrics: dict) -> None, a type (enum or str), (type, severity)
        or a finding dict. Its findings join the summaries; an exception
        inside fn is logged and ignored."""
        if not callable(fn):
            raise TypeError(f"add_custom_bottleneck_detector(): fn must be callable, not {type(fn).__name__}")
        self._detectors.append(fn)
        return fn

    # -- save / load ------------------------------------------------------
    def _results_doc(self, sessions):
        return {
            "format": RESULTS_FORMAT,
            "version": RESULTS_VERSION,
            "stall_version": _native.__version__,
            "created": _time.time(),
            "profiler": type(self).__name__,
            "config": self.config.to_dict(),
            "sessions": [s.summary if s.summary is not None else self._summarize(s) for s in sessions],
        }

    def save_profiling_results(self, path):
        """Write every session's summary to path as versioned JSON (whatever
        the file name says: never pickle). Returns path."""
        path = _os.fspath(path)
        _write_json(path, self._results_doc([self._sessions[sid] for sid in self._order]))
        return path

    def load_profiling_results(self, path):
        """Read a file written by save_profiling_results; its sessions become
        available to get_session_summary. ValueError for a corrupt or foreign
        file (pickles and torch.save archives are refused, never loaded)."""
        doc = read_results(path)
        for summ in doc["sessions"]:
            sid = summ["session_id"]
            s = ProfilingSession(sid, summ.get("name", sid), 0, 0, summ.get("start_time") or 0.0,
                                 end_ns=0, end_time=summ.get("end_time"), summary=summ, loaded=True)
            if sid not in self._sessions:
                self._order.append(sid)
            self._sessions[sid] = s
        return doc

    # -- later issues -----------------------------------------------------
    def _page_path(self, output_path, default_name):
        if output_path is None:
            d = getattr(self.config, "profile_output_dir", None) or "."
            output_path = _os.path.join(d, default_name)
        if not isinstance(output_path, (str, _os.PathLike)):
            raise TypeError(f"generate_optimization_report(): output_path must be a str or path, "
                            f"not {type(output_path).__name__}")
        output_path = _os.fspath(output_path)
        if not output_path.endswith((".html", ".htm")):
            raise ValueError(f"generate_optimization_report(): output_path must end with .html, got {output_path!r}")
        return output_path

    def generate_optimization_report(self, output_path=None, session_id=None):
        """Writes the report of a session (the latest active one, else the
        last stopped; or session_id) as a self-contained HTML page, the same
        page `stall run` writes: the diagnosis first (findings with their
        cost and suggestions), where the time went, the sampled series as
        charts, the operations table. Its report.json (schema stall.report/1)
        is written beside it (same name, .json). output_path: the page's path
        (default <profile_output_dir>/<session id>-report.html). Returns the
        page's path."""
        s = self._current() if session_id is None else self._session(session_id)
        if s is None:
            raise RuntimeError("generate_optimization_report(): no session yet (call start_profiling_session first)")
        if s.loaded:
            raise ValueError(f"generate_optimization_report(): session {s.session_id!r} was loaded from a file; "
                             "its measurements are no longer in the engine (its summary is in get_session_summary)")
        output_path = self._page_path(output_path, f"{s.session_id}-report.html")
        level = getattr(self.config, "level", None) or getattr(self.config, "profiling_level", None)
        eng = self._eng()
        text = eng.diagnose(s.engine_id, report=True, command=[str(a) for a in _sys.argv], **_thresholds(self.config),
                            level=level.value if level is not None else None)
        return _write_page(output_path, text)


def _write_page(output_path, text):
    """Writes the page of JSON document `text` at output_path (.html) and
    the document beside it (.json), each atomically; returns output_path."""
    parent = _os.path.dirname(_os.path.abspath(output_path))
    _os.makedirs(parent, exist_ok=True)
    base = output_path.rsplit(".", 1)[0]
    for path, data in ((base + ".json", text), (output_path, _native.render_report_html(text))):
        tmp = f"{path}.tmp{_os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
        _os.replace(tmp, path)
    return output_path


def _custom_finding(fn, r):
    if r is None or r is False:
        return None
    sev = 1.0
    if isinstance(r, tuple) and len(r) == 2:
        r, sev = r
    if isinstance(r, dict):
        f = dict(r)
        f["type"] = _tv(f.get("type", "custom"))
        f.setdefault("severity", 1.0)
        f.setdefault("metric", "custom")
        f.setdefault("evidence", {})
        f.setdefault("message", f"custom detector {getattr(fn, '__name__', fn)} reported {f['type']}")
        f["detector"] = getattr(fn, "__name__", repr(fn))
        return f
    t = _tv(r)
    return {"type": t, "severity": float(max(0.0, min(1.0, sev))), "metric": "custom",
            "evidence": {"detector": getattr(fn, "__name__", repr(fn))},
            "detector": getattr(fn, "__name__", repr(fn)),
            "message": f"custom detector {getattr(fn, '__name__', fn)} reported {t}"}


_METRIC_OF = {"MEMORY_PRESSURE": "memory", "CPU_BOUND": "cpu", "GPU_BOUND": "gpu", "GPU_UNDERUTILIZED": "gpu",
              "IO_BOUND": "io", "MEMORY_BOUND": "memory", "NETWORK_BOUND": "network"}


def _c_type(t):
    """A finding type as the C table takes it: letters, digits and '_'."""
    name = t.name if isinstance(t, _enum.Enum) else str(t)
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch == "_") else "_" for ch in name)[:39] or "custom"


def _detector_adapter(fn, name, base, user_metrics, found):
    """A user's detector as an entry of the C table: builds the metrics dict
    (the diagnosis' values, the session's metrics, record_metric()'s values,
    the findings so far), calls fn, and returns what the table takes. An
    exception inside fn is logged and ignored, as add_custom_bottleneck_detector
    promises."""
    def run(values, findings):
        m = dict(base)
        m.update({k: v for k, v in values.items() if v is not None})
        m["findings"] = findings
        m.update(user_metrics)
        try:
            r = fn(m)
        except Exception:
            log.exception("stall: custom bottleneck detector %r raised; ignored", getattr(fn, "__name__", fn))
            return None
        f = _custom_finding(fn, r)
        if f is None:
            return None
        raw = r[0] if isinstance(r, tuple) and len(r) == 2 else r
        ctype = _c_type(raw.get("type", "custom") if isinstance(raw, dict) else raw)
        try:
            sev = float(f.get("severity", 1.0))
        except (TypeError, ValueError):
            sev = 1.0
        summary = str(f.get("message", ""))
        found[name] = f
        ev = {k: v for k, v in (f.get("evidence") or {}).items()
              if isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)}
        return (ctype, sev if sev == sev else 0.0, summary, ev)
    return run


def _write_json(path, doc):
    tmp = f"{path}.tmp{_os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        _json.dump(doc, f, indent=2, default=_tv)
    _os.replace(tmp, path)


def read_results(path):
    """Parse and check a results file; ValueError naming what is wrong."""
    path = _os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:1] == b"\x80" or data[:4] == b"PK\x03\x04":
        raise ValueError(
            f"{path}: not a stall results file: it looks like a pickle or torch.save archive; "
            "stall stores results as JSON and never unpickles files"
        )
    try:
        doc = _json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: corrupt stall results file (not valid JSON: {e})") from None
    if not isinstance(doc, dict) or doc.get("format") != RESULTS_FORMAT:
        raise ValueError(f"{path}: not a stall results file (no \"format\": \"{RESULTS_FORMAT}\")")
    v = doc.get("version")
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= RESULTS_VERSION:
        raise ValueError(f"{path}: unsupported stall results version {v!r} (this stall reads 1..{RESULTS_VERSION})")
    ss = doc.get("sessions")
    if not isinstance(ss, list) or not all(isinstance(x, dict) and isinstance(x.get("session_id"), str) for x in ss):
        raise ValueError(f"{path}: corrupt stall results file (\"sessions\" must be a list of session summaries)")
    return doc


class _NoNativeProfiler:
    """Stands in when the extension predates issue 4 (stale build)."""

    def profile_operation(self, name, type=None):
        raise RuntimeError("stall._native has no Profiler: rebuild stall (the extension is older than this package)")


_ProfilerBase = getattr(_native, "Profiler", _NoNativeProfiler)


def _rebuild(cls, config):
    return cls(config)


class BottleneckProfiler(_ProfilerBase, _SessionCore):
    """Sessions of nested operations with per-operation statistics and
    findings (seed "bottleneck detection")."""

    def __new__(cls, *args, **kwargs):
        return _ProfilerBase.__new__(cls)

    def __init__(self, config=None):
        self._setup(config)

    def start_profiling_session(self, name="session"):
        _tuner.watch_loaders()  # the tuning methods below tune the loader the session iterated
        return super().start_profiling_session(name)

    # -- iterative tuning of the session's DataLoader (seed "performance tuning")
    def _tuning_loader(self, dataloader, who):
        if dataloader is not None:
            from torch.utils.data import DataLoader
            if not isinstance(dataloader, DataLoader):
                raise TypeError(f"{who}: dataloader must be a torch.utils.data.DataLoader, "
                                f"not {type(dataloader).__name__}")
            self._tuned_loader = dataloader
            return dataloader
        dl = getattr(self, "_tuned_loader", None)
        if dl is None:
            first = min((s.start_ns for s in self._sessions.values()), default=None)
            dl = _tuner.recent_loader(first) if first is not None else None
        if dl is None:
            raise RuntimeError(f"{who}: no DataLoader to tune: none was iterated during this profiler's sessions "
                               "(import torch before start_profiling_session) - pass it: "
                               f"{who[:-1]}dataloader)")
        self._tuned_loader = dl
        return dl

    def profile_current_configuration(self, dataloader=None, measure_seconds=None):
        """Measures the DataLoader the profiler tunes (dataloader, else the
        one its sessions iterated last) with its current settings: returns
        the LoaderConfiguration's dict (samples_per_second, time to first
        batch, peak memory, CPU cores)."""
        who = "profile_current_configuration()"
        dl = self._tuning_loader(dataloader, who)
        window = _tuning_window(self.config, 1, measure_seconds, who)
        make = _tuner.loader_factory(dl.dataset, base=dl)
        c = _tuner.measure(make, _tuner.current_configuration(dl), window, cuda=_tuner._cuda())
        self._last_profile = c
        return c.to_dict()

    def get_optimization_suggestions(self):
        """Settings to change on the tuned DataLoader, measured by stall's
        tuner (its worker count, pin_memory, prefetch_factor; the batch
        size is kept), each {"setting", "value", "current",
        "expected_speedup", "applied"}; then the suggestions of the latest
        session's findings ({"suggestion", "type", ...}). With auto_optimize
        the settings are applied at once (and logged)."""
        who = "get_optimization_suggestions()"
        dl = self._tuning_loader(None, who)
        res, _ = _tune(self, dl, who, "model", None, None, batch_range=False)
        entry = _tuning_entry(res, dl, who)
        out = [{"setting": k, "value": new, "current": old, "expected_speedup": entry["measured_speedup"],
                "source": "measured by stall's DataLoader tuner", "applied": False}
               for k, (old, new) in entry["proposed_changes"].items() if k != "batch_size"]
        s = self._current()
        if s is not None:
            out.extend(dict(x) for x in self.get_session_summary(s.session_id)["suggestions"])
        if getattr(self.config, "auto_optimize", False) and any("setting" in o for o in out):
            done = self.apply_optimizations(out)
            if done["applied"]:
                log.warning("stall: auto_optimize: changed %s on the DataLoader (takes effect at its next "
                            "iteration)", done["applied"])
        return out

    def apply_optimizations(self, optimizations):
        """Applies the settings of get_optimization_suggestions() that torch
        lets a DataLoader change after construction (num_workers,
        pin_memory, prefetch_factor: effective at its next iteration).
        Returns {"applied": {setting: [old, new]}, "not_applied": {setting:
        why}}; text-only suggestions are skipped."""
        who = "apply_optimizations()"
        if not isinstance(optimizations, (list, tuple)) or not all(isinstance(o, dict) for o in optimizations):
            raise TypeError(f"{who}: optimizations must be the list of dicts get_optimization_suggestions() returns")
        dl = self._tuning_loader(None, who)
        todo = {o["setting"]: o["value"] for o in optimizations if "setting" in o and not o.get("applied")}
        applied, refused = _tuner.apply_in_place(dl, todo)
        for o in optimizations:
            if o.get("setting") in applied:
                o["applied"] = True
        return {"applied": {k: list(v) for k, v in applied.items()}, "not_applied": refused}

    def measure_improvement(self, measure_seconds=None):
        """Measures the tuned DataLoader again; returns its change in
        samples/s against the last profile_current_configuration(), in
        percent."""
        who = "measure_improvement()"
        before = getattr(self, "_last_profile", None)
        if before is None or not before.samples_per_second:
            raise RuntimeError(f"{who}: call profile_current_configuration() first")
        after = self.profile_current_configuration(None, measure_seconds)
        if not after["samples_per_second"]:
            raise RuntimeError(f"{who}: the DataLoader gave no rate ({after['error']})")
        return 100.0 * (after["samples_per_second"] / before.samples_per_second - 1.0)


class _RunProfiler(_SessionCore):
    """start_profiling / stop_profiling over one session at a time."""

    _default_config = ProfilingConfig
    _config_types = (ProfilingConfig,)
    _session_name = "profiling"

    def _run_init(self, config):
        self._setup(config)
        self._run = None
        self._cpu0 = None
        self.last_results = None

    def _cpu_ns(self):
        # this process's CPU time, exact at both ends (the collector's
        # per-process times are as old as the last sample)
        return _time.process_time_ns(), "process_time"

    def start_profiling(self, name=None):
        """Start (or restart) this profiler's session."""
        if self._run is not None and self._sessions[self._run].active:
            self.stop_profiling()
        self._run = self.start_profiling_session(name or self._session_name)
        self._cpu0 = self._cpu_ns()
        return self._run

    def _stop_run(self):
        if self._run is None or not self._sessions[self._run].active:
            raise RuntimeError(f"{type(self).__name__}.stop_profiling(): not profiling (call start_profiling first)")
        s = self.stop_profiling_session(self._run)
        cpu1 = self._cpu_ns()
        cpu_time = None
        if self._cpu0 is not None and cpu1[1] == self._cpu0[1]:
            cpu_time = max(0, cpu1[0] - self._cpu0[0]) * _NS
        return s, cpu_time

    def _metrics(self, s, cpu_time):
        summ = s.summary
        eng = self._eng()
        base = PerformanceMetrics.from_dict(summ["metrics"])
        kt = summ.get("kind_time", {})
        gpu_t = kt.get("gpu_compute")
        data_t = sum(kt.get(k, 0.0) for k in ("data_loading", "preprocessing", "data_wait", "io", "transfer"))
        cpu_usage = self._window_cpu(eng, s)
        if cpu_usage is not None:
            base.cpu_usage = cpu_usage
        b = summ["bottlenecks"]
        top = b[0] if b else None
        btype = None
        if top is not None:
            try:
                btype = BottleneckType(top["type"])
            except ValueError:
                btype = top["type"]
        cpu = _dc.replace(base, cpu_time=cpu_time, gpu_time=None, gpu_usage=None, gpu_memory_allocated=None,
                          gpu_memory_reserved=None, gpu_memory_total=None, gpu_memory_fragmentation=None)
        gpu = PerformanceMetrics(execution_time=base.execution_time, gpu_time=gpu_t, gpu_usage=base.gpu_usage,
                                 gpu_memory_allocated=base.gpu_memory_allocated,
                                 gpu_memory_reserved=base.gpu_memory_reserved,
                                 gpu_memory_total=base.gpu_memory_total,
                                 gpu_memory_fragmentation=base.gpu_memory_fragmentation, timestamp=base.timestamp)
        data = PerformanceMetrics(execution_time=data_t, timestamp=base.timestamp,
                                  io_read_bytes_per_s=base.io_read_bytes_per_s,
                                  io_write_bytes_per_s=base.io_write_bytes_per_s,
                                  custom_metrics={"data_share": data_t / base.execution_time if base.execution_time else None})
        combined = _dc.replace(base, cpu_time=cpu_time, gpu_time=gpu_t,
                               bottleneck_type=btype, bottleneck_severity=top["severity"] if top else 0.0)
        return cpu, gpu, data, combined

    def _window_cpu(self, eng, s):
        """Mean of the sampler's cpu user+system series over the session, in %."""
        try:
            names = _native.metric_names()
            u = next(n for n in names if n.startswith("cpu_user"))
            y = next(n for n in names if n.startswith("cpu_system"))
            pts = []
            for name in (u, y):
                vals = [p[3] for p in eng.series(name) if s.start_ns <= p[0] <= s.end_ns and p[3] == p[3]]
                if not vals:
                    return None
                pts.append(sum(vals) / len(vals))
            return 100.0 * (pts[0] + pts[1])
        except Exception:
            return None

    def get_bottlenecks(self):
        """Findings of the last (or current) session."""
        s = self._current()
        if s is None:
            return []
        return self.get_session_summary(s.session_id)["bottlenecks"]

    @property
    def current_metrics(self):
        """Live PerformanceMetrics from the C sampler (cpu_usage, memory_usage,
        gpu_usage...), at most one sampling interval old."""
        s = self._sessions.get(self._run) if getattr(self, "_run", None) else None
        if (s is None or not s.active) and getattr(self, "last_results", None) is not None:
            return self.last_results["combined"]  # after the block: what it measured
        start = s.start_ns if s is not None and s.active else None
        return live_metrics(self._eng(), max_age_s=2 * self.config.effective_sampling_interval, start_ns=start)


class AdvancedProfiler(_ProfilerBase, _RunProfiler):
    """CPU, memory, GPU and data loading profiling in one (seed "advanced
    code profiling"). stop_profiling() returns {"cpu", "gpu", "data",
    "combined"} PerformanceMetrics plus "bottlenecks" and "suggestions"."""

    _session_name = "advanced"

    def __new__(cls, *args, **kwargs):
        return _ProfilerBase.__new__(cls)

    def __init__(self, config=None):
        self._run_init(config)
        self._data_profiles = []

    def stop_profiling(self):
        s, cpu_time = self._stop_run()
        cpu, gpu, data, combined = self._metrics(s, cpu_time)
        res = {
            "cpu": cpu, "gpu": gpu, "data": data, "combined": combined,
            "bottlenecks": s.summary["bottlenecks"], "suggestions": s.summary["suggestions"],
            "operations": s.summary["operations"], "session_id": s.session_id,
        }
        self.last_results = res
        return res

    def get_profiling_summary(self):
        """Sessions so far, the last results, data-loading profiles, findings."""
        last = self.last_results
        return {
            "sessions": [self.get_session_summary(sid) for sid in self._order],
            "last_results": None if last is None else {
                k: (v.to_dict() if isinstance(v, PerformanceMetrics) else v) for k, v in last.items()},
            "data_profiles": list(self._data_profiles),
            "bottlenecks": self.get_bottlenecks(),
            "level": self.config.level.value,
            "level_cost": self.config.level.cost,
        }

    def profile_dataloader(self, dataloader, num_batches=10):
        return _profile_dataloader(self, dataloader, num_batches)

    def profile_preprocessing(self, func, data, num_iterations=10):
        return _profile_preprocessing(self, func, data, num_iterations)


class CPUMemoryProfiler(_RunProfiler):
    """CPU and memory of the process tree; stop_profiling() returns the
    PerformanceMetrics of the stretch."""

    _session_name = "cpu_memory"

    def __init__(self, config=None):
        self._run_init(config)

    def stop_profiling(self):
        s, cpu_time = self._stop_run()
        return self._metrics(s, cpu_time)[0]


class GPUProfiler(_RunProfiler):
    """GPU memory (torch.cuda when CUDA is there, NVML otherwise) and
    utilisation; stop_profiling() returns PerformanceMetrics."""

    _session_name = "gpu"

    def __init__(self, config=None):
        self._run_init(config)

    def stop_profiling(self):
        s, cpu_time = self._stop_run()
        return self._metrics(s, cpu_time)[1]


def _stride(prof):
    rate = getattr(prof.config, "sampling_rate", 1.0)
    return max(1, int(round(1.0 / rate)))


def _profile_dataloader(prof, dataloader, num_batches):
    if isinstance(num_batches, bool) or not isinstance(num_batches, int):
        raise TypeError(f"profile_dataloader(): num_batches must be an int, not {type(num_batches).__name__}")
    if num_batches < 1:
        raise ValueError(f"profile_dataloader(): num_batches must be >= 1, got {num_batches}")
    sid = prof.start_profiling_session("profile_dataloader")
    stride = _stride(prof)
    op = prof.profile_operation("dataloader.next_batch", BottleneckType.DATA_LOADING)
    n = 0
    it = iter(dataloader)
    t0 = _native.now_ns()
    try:
        while n < num_batches:
            try:
                if n % stride == 0:
                    with op:
                        next(it)
                else:
                    next(it)
            except StopIteration:
                break
            n += 1
    finally:
        del it
        s = prof.stop_profiling_session(sid)
    wall = (_native.now_ns() - t0) * _NS
    o = s.summary["operations"].get("dataloader.next_batch", {})
    res = {
        "session_id": sid, "num_batches": n, "total_time": wall,
        "batches_per_second": n / wall if wall > 0 else None,
        "batch_time": o, "processes": s.summary["processes"],
        "bottlenecks": s.summary["bottlenecks"], "suggestions": s.summary["suggestions"],
    }
    if getattr(prof.config, "auto_optimize", False):
        res["auto_optimize"] = _auto_optimize_loader(prof, dataloader)
    prof._data_profiles.append(res)
    return res


def _auto_optimize_loader(prof, dataloader):
    """auto_optimize of profile_dataloader: tunes the loader's worker
    count, pin_memory and prefetch_factor (its batch size kept) and sets
    them on the loader itself (effective at its next iteration); logs what
    changed. Never raises into the caller: a failure is logged and
    returned."""
    who = "profile_dataloader(auto_optimize)"
    try:
        res, _ = _tune(prof, dataloader, who, "model", None, False, batch_range=False)
        entry = _tuning_entry(res, dataloader, who)
        settable = {k: v[1] for k, v in entry["changes"].items() if k != "batch_size"}
        applied, refused = _tuner.apply_in_place(dataloader, settable)
        if applied:
            log.warning("stall: auto_optimize: changed %s on the DataLoader (measured %.2fx; takes effect at its "
                        "next iteration)", {k: list(v) for k, v in applied.items()}, entry["measured_speedup"])
        return {"applied": {k: list(v) for k, v in applied.items()}, "not_applied": refused,
                "measured_speedup": entry["measured_speedup"], "note": entry["note"]}
    except Exception as e:
        log.warning("stall: auto_optimize could not tune the DataLoader: %s: %s", type(e).__name__, e)
        return {"applied": {}, "not_applied": {}, "error": f"{type(e).__name__}: {e}"}


def _profile_preprocessing(prof, func, data, num_iterations):
    _pre._check_fn(func, "profile_preprocessing()")
    _pre._check_iterations(num_iterations, "profile_preprocessing()")
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or "preprocessing"
    sid = prof.start_profiling_session("profile_preprocessing")
    op = prof.profile_operation(name, BottleneckType.PREPROCESSING)
    stride = _stride(prof)
    try:
        for i in range(num_iterations):
            if i % stride == 0:
                with op:
                    func(data)
            else:
                func(data)
    finally:
        s = prof.stop_profiling_session(sid)
    res = {"session_id": sid, "function": name, "num_iterations": num_iterations,
           "timing": s.summary["operations"].get(name, {}),
           "bottlenecks": s.summary["bottlenecks"], "suggestions": s.summary["suggestions"]}
    prof._data_profiles.append(res)
    _pre.remember(prof, func, data, res, "function")  # for CodeOptimizer.optimize_preprocessing
    return res


class DataLoadingProfiler(_ProfilerBase, _SessionCore):
    """Data loading profiling for both seeds: with a ProfilingConfig (seed
    "advanced code profiling": profile_dataloader, profile_preprocessing,
    get_bottlenecks) or a DataLoadingProfilerConfig (seed "bottleneck
    detection": the configuration search of stall.tuner)."""

    _default_config = DataLoadingProfilerConfig
    _config_types = (DataLoadingProfilerConfig, ProfilingConfig)

    def __new__(cls, *args, **kwargs):
        return _ProfilerBase.__new__(cls)

    def __init__(self, config=None):
        self._setup(config)
        self._data_profiles = []

    def profile_dataloader(self, dataloader, num_batches=10):
        """Time num_batches batches of dataloader (a session of its own)."""
        return _profile_dataloader(self, dataloader, num_batches)

    def profile_preprocessing(self, func, data, num_iterations=10):
        """Time func(data) num_iterations times."""
        return _profile_preprocessing(self, func, data, num_iterations)

    def get_bottlenecks(self):
        out = []
        for p in self._data_profiles:
            out.extend(p["bottlenecks"])
        return sorted(out, key=lambda f: -f["severity"])

    def profile_configuration_range(self, dataset, strategy="model", measure_seconds=None, progress=None):
        """Measures DataLoader configurations over the config's
        batch_size_range x worker_range (x pin_memory when CUDA is there)
        for dataset (map-style). strategy "model" (default) measures few
        configurations, chosen by stall's throughput model, and stops when
        more cannot help; "grid" measures every one. Each is measured for
        measure_seconds of steady state (default: profiling_duration spread
        over the grid, 0.2..5 s). progress: a progress line on stderr
        (default: when stderr is a terminal). Returns the measured
        LoaderConfigurations in measurement order (samples_per_second,
        time_to_first_batch_s, peak_memory_bytes, cpu_cores...)."""
        who = "profile_configuration_range()"
        cfg = self.config
        if not isinstance(cfg, DataLoadingProfilerConfig):
            raise TypeError(f"{who}: needs a DataLoadingProfilerConfig (its batch_size_range and worker_range "
                            f"are the search space); this profiler has a {type(cfg).__name__}")
        cfg.validate()
        _tuner.check_dataset(dataset, who)
        sizes = [b for b in cfg.batch_size_range if b <= len(dataset)]
        if not sizes:
            raise ValueError(f"{who}: every batch size of batch_size_range {cfg.batch_size_range} is larger than "
                             f"the dataset ({len(dataset)} samples)")
        window = _tuning_window(cfg, len(sizes) * len(cfg.worker_range), measure_seconds, who)
        if progress is not None and not isinstance(progress, bool):
            raise TypeError(f"{who}: progress must be a bool or None, not {type(progress).__name__}")
        res = _tuner.search(_tuner.loader_factory(dataset), sizes, cfg.worker_range, strategy, window,
                            progress=progress, dataset_info=_tuner.dataset_info(dataset))
        self._tuning = res
        if cfg.save_profiles:
            try:
                d = cfg.profile_output_dir
                _os.makedirs(d, exist_ok=True)
                _write_json(_os.path.join(d, f"tuning-{_time.strftime('%Y%m%d-%H%M%S')}.json"), res.to_doc())
            except OSError as e:
                log.warning("stall: could not save the tuning result: %s", e)
        return res.measured()

    def get_optimal_configuration(self):
        """The configuration the last profile_configuration_range chose
        (an OptimalConfiguration: batch_size, num_workers, pin_memory,
        persistent_workers, prefetch_factor, throughput in samples/s;
        loader_kwargs() gives DataLoader's keyword arguments)."""
        res = getattr(self, "_tuning", None)
        if res is None:
            raise RuntimeError("get_optimal_configuration(): no search yet; call profile_configuration_range(dataset) "
                               "first")
        opt = res.optimal()
        if opt is None:
            errs = sorted({c.error for c in res.configurations if c.error})
            raise RuntimeError("get_optimal_configuration(): no configuration gave a rate"
                               + (f" (errors: {'; '.join(errs)})" if errs else ""))
        return opt

    def generate_optimization_report(self, output_path=None, session_id=None):
        """After profile_configuration_range: writes the tuning page (a
        chart of samples/s per configuration, the chosen one marked, the
        table of every configuration) as HTML, with its JSON document
        (schema stall.tuning/1) beside it; returns the page's path (default
        <profile_output_dir>/tuning-report.html). Without a search, or with
        session_id: the session report of the other profilers."""
        res = getattr(self, "_tuning", None)
        if res is None or session_id is not None:
            return super().generate_optimization_report(output_path, session_id)
        output_path = self._page_path(output_path, "tuning-report.html")
        return _write_page(output_path, _json.dumps(res.to_doc(), indent=1))


def _tuning_window(cfg, grid_size, measure_seconds, who):
    if measure_seconds is not None:
        if isinstance(measure_seconds, bool) or not isinstance(measure_seconds, (int, float)):
            raise TypeError(f"{who}: measure_seconds must be a number, not {type(measure_seconds).__name__}")
        if not (0 < measure_seconds <= 3600):
            raise ValueError(f"{who}: measure_seconds must be > 0 and <= 3600, got {measure_seconds!r}")
        return float(measure_seconds)
    dur = getattr(cfg, "profiling_duration", None)
    if dur:
        return min(5.0, max(0.2, dur / (2.0 * max(1, grid_size))))
    return 1.0


class PreprocessingProfiler(_ProfilerBase, _SessionCore):
    """Preprocessing profiling (seed "bottleneck detection"): sessions and
    profile_operation, and the measurements of stall.preprocessing (per call
    and per item, across batch sizes, repeats) with their findings."""

    _default_config = PreprocessingProfilerConfig
    _config_types = (PreprocessingProfilerConfig,)

    def __new__(cls, *args, **kwargs):
        return _ProfilerBase.__new__(cls)

    def __init__(self, config=None):
        self._setup(config)

    def profile_preprocessing_function(self, fn, data, num_iterations=10):
        """Time fn(data) num_iterations times (after a warm-up call) in a
        session of its own: wall and CPU time per call and per item, peak
        memory, the caching probe and the findings (stall.preprocessing)."""
        return _pre.profile_function(self, fn, data, num_iterations)

    def profile_batch_preprocessing(self, fn, data):
        """Time fn on batches data[i:i+b] for each b of batch_size_range:
        items/s per batch size, the growth exponent, the findings; with
        auto_optimize, the optimized function too (stall.preprocessing)."""
        return _pre.profile_batches(self, fn, data)

    def get_optimal_preprocessing_config(self):
        """batch_size, items_per_second, use_cache, cache_size,
        accepts_batches, expected_speedup from the latest batch profile."""
        return _pre.optimal_config(self)


def _tune(prof, loader, who, strategy, measure_seconds, progress, batch_range):
    """Tunes loader (a search over the profiler's ranges, else its batch
    size x worker_candidates); a search of the same loader over the same
    space done before by this profiler (auto_optimize) is reused."""
    cfg = prof.config if prof is not None else None
    cores = _tuner.usable_cores()
    cur_w = getattr(loader, "num_workers", 0)
    if batch_range:
        sizes, workers = list(cfg.batch_size_range), list(cfg.worker_range)
        sizes.append(getattr(loader, "batch_size", None) or sizes[0])
    else:
        sizes, workers = [getattr(loader, "batch_size", None) or 1], _tuner.worker_candidates(cores, cur_w)
    space = (tuple(sorted(set(sizes))), tuple(sorted(set(workers) | {cur_w})), strategy)
    cache = prof._loader_tunings if prof is not None else None
    if cache is not None and loader in cache and cache[loader][0] == space:
        _, res, make = cache[loader]
        cur = _tuner.current_configuration(loader)
        if res.baseline is None or res.baseline.key() != cur.key():  # changed since (auto_optimize): measure it now
            window = _tuning_window(cfg, 1, measure_seconds, who)
            res = _dc.replace(res, baseline=_tuner.measure(make, cur, window, cuda=res.cuda))
            cache[loader] = (space, res, make)
        return res, make
    window = _tuning_window(cfg, len(space[0]) * len(space[1]), measure_seconds, who)
    res, make = _tuner.tune_loader(loader, space[0], space[1], strategy, window, progress, who)
    if cache is not None:
        cache[loader] = (space, res, make)
    return res, make


def _tuning_entry(res, loader, who):
    best, base = res.chosen, res.baseline
    gain = (best.samples_per_second / base.samples_per_second
            if best is not None and base is not None and best.samples_per_second and base.samples_per_second else None)
    ch = _tuner.changes(loader, best) if best is not None else {}
    applied = bool(ch) and gain is not None and gain >= 1 + _tuner.MARGIN
    if best is None:
        note = "no configuration gave a rate; the loader is kept"
    elif not ch:
        note = "the loader's own settings measured fastest"
    elif not applied:
        note = f"the best configuration measured {gain:.2f}x the loader's own: not worth a change"
    else:
        note = f"{len(ch)} setting(s) changed"
    return {
        "kind": "data_loading", "method": who.rstrip("()"),
        "target": f"DataLoader({type(loader.dataset).__name__}, batch_size={loader.batch_size}, "
                  f"num_workers={loader.num_workers})",
        "applied": applied, "changes": ch if applied else {}, "proposed_changes": ch,
        "baseline_samples_per_second": base.samples_per_second if base is not None else None,
        "optimized_samples_per_second": best.samples_per_second if best is not None else None,
        "measured_speedup": gain, "strategy": res.strategy, "configurations_measured": len(res.measured()),
        "grid_size": res.grid_size, "search_seconds": res.search_seconds, "stop_reason": res.stop_reason,
        "note": note,
    }


class CodeOptimizer:
    """Applies fixes found by a profiler (seed "advanced code profiling"):
    a tuned DataLoader (stall.tuner), a faster preprocessing function
    (stall.preprocessing); each measured against the original."""

    def __init__(self, profiler=None):
        if profiler is not None and not isinstance(profiler, _SessionCore):
            raise TypeError(f"CodeOptimizer(): profiler must be a stall profiler, not {type(profiler).__name__}")
        self.profiler = profiler
        self._entries = []

    def optimize_data_loading(self, dataloader, strategy="model", measure_seconds=None, progress=None):
        """Returns a DataLoader over the same dataset, sampler and
        collate_fn with the settings stall's tuner measured fastest: the
        worker count (0, 1, 2, 4 ... up to twice the usable cores, or the
        profiler's worker_range), pin_memory when CUDA is there,
        persistent_workers and prefetch_factor; the batch size is kept
        unless the profiler is a DataLoadingProfiler (its batch_size_range).
        The loader itself is measured first; when nothing beats it by 3%,
        it is returned unchanged. get_optimization_report() lists what
        changed and the measured gain."""
        who = "optimize_data_loading()"
        cfg = self.profiler.config if self.profiler is not None else None
        res, make = _tune(self.profiler, dataloader, who, strategy, measure_seconds, progress,
                          batch_range=isinstance(cfg, DataLoadingProfilerConfig))
        entry = _tuning_entry(res, dataloader, who)
        new = dataloader
        if entry["applied"]:
            new = make(res.chosen, measuring=False)
            log.info("stall: optimize_data_loading: %s (measured %.2fx)", entry["changes"], entry["measured_speedup"])
        self._entries.append(entry)
        return new

    def optimize_preprocessing(self, preprocessing_func, data=None):
        """A verified faster equivalent of preprocessing_func (content-keyed
        LRU cache and/or batched map, measured on the data the profiler
        profiled it with, or data), else preprocessing_func itself; the
        report entry (what was applied, measured speedup, or why not) joins
        this optimizer's entries (stall.preprocessing.optimize)."""
        new_fn, entry = _pre.optimize_for(self.profiler, preprocessing_func, data)
        self._entries.append(entry)
        return new_fn

    def get_optimization_report(self):
        """What the optimizations changed and what they measured, as a
        JSON-serialisable dict: "optimizations" (one entry per call, in
        order: kind, target, applied, changes {setting: [old, new]},
        baseline and optimized rates, measured_speedup, how it was found),
        "applied" (how many changed something) and "count"."""
        entries = [dict(e) for e in self._entries]
        return {"optimizations": entries, "count": len(entries), "applied": sum(1 for e in entries if e["applied"])}


# PerformanceMonitor lives in stall.monitor (live monitoring, alerts, logs)
from .monitor import PerformanceMonitor, log_finding  # noqa: E402


def profile_function(name=None, type=None):
    """Decorator: each call of the function is one span (C's FunctionSpan),
    named name or the function's qualified name, of type (a BottleneckType,
    default CPU_COMPUTATION). Usable as @profile_function() or
    @profile_function. The spans count in every session open meanwhile."""
    if callable(name) and not isinstance(name, str):
        return profile_function()(name)
    if name is not None and not isinstance(name, str):
        raise TypeError(f"profile_function(): name must be a str, not {builtins_type(name).__name__}")
    if type is None:
        type = BottleneckType.CPU_COMPUTATION

    def deco(func):
        if not callable(func):
            raise TypeError(f"profile_function(): can decorate a callable, not {builtins_type(func).__name__}")
        _engine.transport()
        n = name or getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or "function"
        return _native.FunctionSpan(func, n, type)

    return deco


builtins_type = __builtins__["type"] if isinstance(__builtins__, dict) else __builtins__.type


class profile_context:
    """with profile_context("name") as profiler: ... profiles the block as an
    AdvancedProfiler session (a span `name` around it); inside,
    profiler.current_metrics is live (C sampler); after it,
    profiler.results holds stop_profiling()'s dict."""

    def __init__(self, name="profile_context", type=None, config=None):
        if not isinstance(name, str) or not name:
            raise TypeError(f"profile_context(): name must be a non-empty str, not {name!r}")
        self.name = name
        self.profiler = AdvancedProfiler(config)
        self._span = self.profiler.profile_operation(name, type if type is not None else BottleneckType.UNKNOWN)

    def __enter__(self):
        self.profiler.start_profiling(self.name)
        self._span.__enter__()
        return self.profiler

    def __exit__(self, et, e, tb):
        self._span.__exit__(et, e, tb)
        self.profiler.results = self.profiler.stop_profiling()
        return False
