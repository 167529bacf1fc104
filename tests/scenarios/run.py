"""The scenario suite: small real PyTorch trainings, each injecting one known
cause of slowness (the `expect:` line of its docstring), run under
`stall run`; the first finding of each report must name that cause.

    /usr/bin/python3 tests/scenarios/run.py BUILD [--results FILE] [--what-if] [NAME ...]

Prints one line per scenario, the confusion matrix (expected type by row,
first finding by column) and the accuracy; with --results appends them, with
the command and date, to FILE (bench/RESULTS.md). Exits 1 when a scenario
gets another type first, or when a healthy scenario gets any input-bound
finding at all. Scenarios marked `needs: memory-cgroup` run inside a memory
cgroup of 1 GiB made for them (root and a memory controller needed; without
them the scenario is reported as skipped).

--what-if: each scenario whose first finding is INSUFFICIENT_WORKERS runs
again with the suggested DataLoader settings (tests/scenarios/_common.py
applies them to that loader), and the measured speedup of the steady-state
batch time ((loop - worker warm-up) / steps) is set against the predicted
one; the check passes within 25%.
"""
import datetime
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
INPUT_TYPES = {"DATA_LOADING", "INSUFFICIENT_WORKERS", "PREPROCESSING_BOTTLENECK", "SLOW_DISK_IO",
               "COLLATE_FUNCTION_SLOW", "SAMPLER_OVERHEAD", "BATCH_SIZE_INEFFICIENCY", "NETWORK_BOUND"}
MEMCG_LIMIT = 1 << 30
SCENARIO_TIMEOUT_S = 240


def scenarios(names):
    out = []
    for path in sorted(glob.glob(os.path.join(HERE, "*.py"))):
        name = os.path.basename(path)[:-3]
        if name.startswith("_") or name == "run" or (names and name not in names):
            continue
        src = open(path).read()
        m = re.search(r"^expect: (\w+)$", src, re.M)
        if not m:
            sys.exit("%s has no 'expect: TYPE' line" % path)
        needs = re.findall(r"^needs: ([\w-]+)$", src, re.M)
        out.append((name, path, m.group(1), needs))
    return out


def memory_cgroup():
    """A fresh memory cgroup limited to MEMCG_LIMIT: (procs file, cleanup) or None."""
    if os.geteuid() != 0:
        return None
    name = "stall-scenario-%s" % uuid.uuid4().hex[:8]
    try:
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # v2
            if "memory" not in open("/sys/fs/cgroup/cgroup.subtree_control").read().split():
                return None
            d = os.path.join("/sys/fs/cgroup", name)
            os.mkdir(d)
            open(os.path.join(d, "memory.max"), "w").write(str(MEMCG_LIMIT))
            open(os.path.join(d, "memory.swap.max"), "w").write("0")
        elif os.path.isdir("/sys/fs/cgroup/memory"):  # v1
            d = os.path.join("/sys/fs/cgroup/memory", name)
            os.mkdir(d)
            open(os.path.join(d, "memory.limit_in_bytes"), "w").write(str(MEMCG_LIMIT))
        else:
            return None
    except OSError:
        return None
    return os.path.join(d, "cgroup.procs"), lambda: _rmdir_later(d)


def _rmdir_later(d):
    try:
        os.rmdir(d)
    except OSError:
        pass


def run_one(build, name, path, needs, out_dir, overrides=None):
    cmd = [os.path.join(build, "stall"), "run", "--quiet", "--out", out_dir, "--", PY, path]
    cleanup = None
    if "memory-cgroup" in needs:
        cg = memory_cgroup()
        if cg is None:
            return None, "skipped: needs root and a memory cgroup controller"
        procs, cleanup = cg
        cmd = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', procs] + cmd
    env = dict(os.environ)
    env["PYTHONPATH"] = HERE + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if overrides:
        env["SCENARIO_LOADER_OVERRIDES"] = json.dumps(overrides)
    try:
        # start_new_session: on a timeout the whole tree (stall, the training, its workers) is killed
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=HERE,
                             start_new_session=True)
        try:
            out, err = p.communicate(timeout=SCENARIO_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            kill_session(p.pid)
            p.communicate()
            return None, "timed out after %d s" % SCENARIO_TIMEOUT_S
        r = subprocess.CompletedProcess(cmd, p.returncode, out, err)
    finally:
        if cleanup:
            cleanup()
    if r.returncode != 0:
        return None, "failed (exit %d): %s" % (r.returncode, r.stderr[-1500:])
    with open(os.path.join(out_dir, "report.json")) as f:
        return json.load(f), ""


def kill_session(sid):
    """SIGKILL every process of session sid (stall, the training, its workers,
    whatever process groups they made)."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # field 6: the session id
                os.kill(int(d), 9)
        except (OSError, ValueError, IndexError):
            pass


def steady_batch_s(rep):
    b, t = rep["breakdown"], rep["throughput"]
    return ((b["loop_s"] or 0) - (b.get("warmup_s") or 0)) / max(1, t["batches"])


def what_if(build, name, path, needs, rep, tmp):
    """Reruns a scenario with its first suggestion's loader settings: a table row, ok."""
    f = rep["bottlenecks"][0]
    sug = [s for s in f["suggestions"] if "num_workers" in s["params"] and s["expected_speedup"]]
    if not sug:
        return "| %s | no num_workers suggestion with a prediction | | | |" % name, False
    s = sug[0]
    ids = [ld["id"] for ld in rep["loaders"]]
    idx = ids.index(f["evidence"]["loader"]) + 1
    after, why = run_one(build, name, path, needs, os.path.join(tmp, name + "-what-if"), {str(idx): s["params"]})
    if after is None:
        return "| %s | %s | | | |" % (name, why[:80]), False
    measured = steady_batch_s(rep) / steady_batch_s(after)
    err = measured / s["expected_speedup"] - 1
    ok = abs(err) <= 0.25
    return ("| %s | %s | %.2fx | %.2fx | %+.0f%% %s |" % (name, json.dumps(s["params"]), s["expected_speedup"],
                                                        measured, 100 * err, "ok" if ok else "OFF"), ok)


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    build, results, names, whatif = os.path.abspath(args[0]), None, [], False
    i = 1
    while i < len(args):
        if args[i] == "--results":
            results = args[i + 1]
            i += 2
        elif args[i] == "--what-if":
            whatif = True
            i += 1
        else:
            names.append(args[i])
            i += 1
    rows, lines, bad, wif = [], [], 0, []
    tmp = tempfile.mkdtemp(prefix="stall-scenarios-")
    for name, path, expect, needs in scenarios(names):
        rep, why = run_one(build, name, path, needs, os.path.join(tmp, name))
        if rep is None:
            line = "%-22s expect %-26s %s" % (name, expect, why)
            if not why.startswith("skipped"):
                bad += 1
                rows.append((name, expect, "ERROR"))
            print(line, flush=True)
            lines.append(line)
            continue
        types = [b["type"] for b in rep["bottlenecks"]]
        got = types[0] if types else "NONE"
        ok = got == expect
        if expect not in INPUT_TYPES and expect != "MEMORY_PRESSURE" and INPUT_TYPES & set(types):
            ok = False  # a healthy run must show no input-bound finding at all
        bad += not ok
        rows.append((name, expect, got))
        b = rep["breakdown"]
        sugg = ""
        if rep["bottlenecks"] and rep["bottlenecks"][0]["suggestions"]:
            s = rep["bottlenecks"][0]["suggestions"][0]
            sugg = "%s %s%s" % (s["action"][:40], json.dumps(s["params"]),
                                " x%.2f" % s["expected_speedup"] if s["expected_speedup"] else "")
        line = "%-22s expect %-26s got %-26s %s wait %4.0f%% | %s" % (
            name, expect, got, "ok " if ok else "BAD", 100 * (b["data_wait_frac"] or 0), sugg)
        print(line, flush=True)
        lines.append(line)
        if whatif and got == "INSUFFICIENT_WORKERS":
            row, good = what_if(build, name, path, needs, rep, tmp)
            print("  what-if " + row, flush=True)
            wif.append(row)
            bad += not good
    kinds = sorted({e for _, e, _ in rows} | {g for _, _, g in rows})
    matrix = ["| expected \\ first finding | " + " | ".join(kinds) + " |",
              "|---" * (len(kinds) + 1) + "|"]
    for e in sorted({e for _, e, _ in rows}):
        cells = [str(sum(1 for _, x, g in rows if x == e and g == k)) or "" for k in kinds]
        matrix.append("| %s | %s |" % (e, " | ".join(c if c != "0" else "" for c in cells)))
    correct = sum(1 for _, e, g in rows if e == g)
    acc = "accuracy: %d/%d = %.0f%%" % (correct, len(rows), 100.0 * correct / max(1, len(rows)))
    print("\n" + "\n".join(matrix) + "\n\n" + acc)
    wtable = ""
    if wif:
        wtable = ("\nWhat-if (rerun with the suggested settings; steady-state batch time):\n\n"
                  "| scenario | suggested | predicted | measured | measured vs predicted |\n|---|---|---|---|---|\n"
                  + "\n".join(wif) + "\n")
        print(wtable)
    if results:
        with open(results, "a") as f:
            f.write("\n### Scenario suite, %s\n\nCommand: `/usr/bin/python3 tests/scenarios/run.py %s "
                    "--results %s%s`\n\n```\n%s\n```\n\n%s\n\n%s\n%s"
                    % (datetime.date.today().isoformat(), os.path.relpath(build), results,
                       " --what-if" if whatif else "", "\n".join(lines), "\n".join(matrix), acc, wtable))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
