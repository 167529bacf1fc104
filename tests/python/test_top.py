"""`stall top`: the live view of a running `stall run` session, driven for
real: a small PyTorch training with two DataLoader workers runs under
`stall run`, `stall top` watches it in a detached tmux window (keys, a
resized and a tiny window, the program's exit, q), and as a plain-text
snapshot when stdout is not a terminal; usage errors exit 2."""
import os
import re
import shutil
import subprocess
import time

import pytest

from test_run import PY, STALL, train_script

TMUX = shutil.which("tmux")
needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux)")


def top(*args, timeout=60, **kw):
    return subprocess.run([STALL, "top", *args], capture_output=True, text=True, timeout=timeout, **kw)


def wait_for(fn, timeout=60.0, step=0.3):
    """Polls fn() until it returns something true; returns it, or the last
    value after timeout seconds."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


class Training:
    """A training under `stall run` that goes on until stop(): one long epoch
    (the same two workers throughout), each sample a 4 ms sleep, 5 ms of
    compute per batch: it waits for data."""

    def __init__(self, tmp_path):
        self.stop_file = tmp_path / "stop"
        script = train_script(tmp_path, fetch_ms=4.0, step_ms=5.0, batches=1000000, workers=2, work="sleep",
                              after_batch="if os.path.exists(%r): sys.exit(0)" % str(self.stop_file))
        self.script = script
        self.proc = subprocess.Popen([STALL, "run", "--quiet", "--out", str(tmp_path / "out"), "--", PY, script],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # the program is stall run's child, its workers are the program's children
        self.program = wait_for(lambda: (children(self.proc.pid) or [None])[0], timeout=30)
        assert self.program, "stall run started no program"
        self.workers = wait_for(lambda: children(self.program) if len(children(self.program)) >= 2 else None,
                                timeout=120)
        assert self.workers, "the DataLoader workers did not start"

    def stop(self):
        self.stop_file.write_text("stop")
        try:
            return self.proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.communicate()

    def close(self):
        if self.proc.poll() is None:
            self.stop()


@pytest.fixture
def training(tmp_path):
    t = Training(tmp_path)
    yield t
    t.close()


class Tmux:
    """A tmux server of our own (its own socket), one detached window."""

    def __init__(self, tmp_path, cmd, width=120, height=40):
        self.sock = "stall-top-test-%d" % os.getpid()
        self.exit_file = tmp_path / "top-exit"
        shell = "%s; echo $? > %s; sleep 600" % (cmd, self.exit_file)
        self.tmux("new-session", "-d", "-s", "top", "-x", str(width), "-y", str(height), shell)

    def tmux(self, *args):
        return subprocess.run([TMUX, "-L", self.sock, *args], capture_output=True, text=True, timeout=30)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "top").stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "top", *keys)

    def resize(self, w, h):
        self.tmux("resize-window", "-t", "top", "-x", str(w), "-y", str(h))

    def wait_screen(self, pred, timeout=60.0):
        return wait_for(lambda: (lambda s: s if pred(s) else None)(self.screen()), timeout=timeout)

    def exit_status(self, timeout=30.0):
        v = wait_for(lambda: self.exit_file.exists() and self.exit_file.read_text().strip(), timeout=timeout)
        return int(v) if v else None

    def close(self):
        self.tmux("kill-server")


LOOP = re.compile(r"loop: (\d+\.\d) batches/s  data wait (\d+\.\d)%")


def rows(screen):
    """{role: pid} of the process rows on a screen."""
    out = {}
    for line in screen.splitlines():
        m = re.match(r"(main|worker \d+)\s+(\d+)\s", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def test_usage_errors_exit_2():
    r = top("--bogus")
    assert r.returncode == 2 and "unknown option '--bogus'" in r.stderr and "usage: stall top" in r.stderr
    r = top("--interval", "0")
    assert r.returncode == 2 and "--interval must be" in r.stderr
    r = top("--interval")
    assert r.returncode == 2 and "--interval needs a value" in r.stderr
    r = top("12x")
    assert r.returncode == 2 and "PID must be a positive integer" in r.stderr
    r = top("1", "2")
    assert r.returncode == 2 and "more than one PID" in r.stderr
    r = top("999999999")
    assert r.returncode == 2 and "999999999" in r.stderr
    r = top("--help")
    assert r.returncode == 0 and "usage: stall top" in r.stdout and "--once" in r.stdout
    r = subprocess.run([STALL, "help"], capture_output=True, text=True, timeout=30)
    assert " top " in r.stdout


def test_snapshot_of_a_process_tree_without_session(tmp_path):
    # no stall session: the tree of the PID only, printed once (stdout is a pipe)
    sleeper = subprocess.Popen(["sh", "-c", "sleep 120 & sleep 120; wait"])
    try:
        kids = wait_for(lambda: children(sleeper.pid), timeout=10)
        r = top("--interval", "0.3", str(sleeper.pid))
        assert r.returncode == 0, r.stderr
        assert "session: none" in r.stdout and "findings: n/a" in r.stdout
        assert re.search(r"^ROLE\s+PID\s+\[CPU%\]\s+RSS MiB", r.stdout, re.M)
        assert re.search(r"^root\s+%d\s" % sleeper.pid, r.stdout, re.M)
        for k in kids:
            assert re.search(r"^-\s+%d\s.*sleep" % k, r.stdout, re.M), r.stdout
        assert "pressure (some, avg10): cpu" in r.stdout
    finally:
        sleeper.kill()
        sleeper.wait()


def test_snapshot_of_a_stall_run_session(training):
    # from the `stall run` process, from a worker and with no PID: the same
    # session, rooted at the program
    def snap(*args):
        r = top("--once", "--interval", "1", *args)
        assert r.returncode == 0, r.stderr
        return r.stdout if LOOP.search(r.stdout) and "worker 1" in r.stdout else None

    out = wait_for(lambda: snap(str(training.proc.pid)), timeout=90, step=0.5)
    assert out, "no batches/s in a snapshot of the session"
    assert "stall top - pid %d " % training.program in out
    assert "session: /" in out and training.script in out
    assert float(LOOP.search(out).group(1)) > 0
    got = rows(out)
    assert got.get("main") == training.program
    assert {got.get("worker 0"), got.get("worker 1")} == set(training.workers[:2])
    assert "findings:" in out

    out = wait_for(lambda: snap(str(training.workers[0])), timeout=60, step=0.5)
    assert out and "stall top - pid %d " % training.program in out
    assert "belongs to the session of pid %d" % training.program in out

    r = top("--once", "--interval", "0.5")  # the most recent session: ours, unless another started meanwhile
    assert r.returncode == 0, r.stderr
    assert "session: /" in r.stdout


@needs_tmux
def test_live_view_in_tmux(training, tmp_path):
    t = Tmux(tmp_path, "%s top %d" % (STALL, training.program), 120, 40)
    try:
        s = t.wait_screen(lambda s: LOOP.search(s) and {"main", "worker 0", "worker 1"} <= set(rows(s)), 90)
        assert s, "the view never showed the loop and the processes:\n" + t.screen()
        assert s.splitlines()[0].startswith("stall top - pid %d " % training.program)
        assert "running" in s.splitlines()[0]
        got = rows(s)
        assert got["main"] == training.program and {got["worker 0"], got["worker 1"]} == set(training.workers[:2])
        assert 0 <= float(LOOP.search(s).group(2)) <= 100
        assert "sort: cpu" in s and "[CPU%]" in s and "q quit" in s

        t.keys("m")
        s = t.wait_screen(lambda s: "sort: mem" in s and "[RSS MiB]" in s and "[CPU%]" not in s, 15)
        assert s, t.screen()
        t.keys("p")
        s = t.wait_screen(lambda s: "sort: pid" in s and "[PID]" in s, 15)
        assert s, t.screen()
        order = [int(m.group(1)) for m in re.finditer(r"^(?:main|worker \d+|-)\s+(\d+)\s", s, re.M)]
        assert order == sorted(order) and len(order) >= 3
        t.keys("+")
        assert t.wait_screen(lambda s: "refresh 2.0s" in s, 15), t.screen()
        t.keys("-")
        t.keys("-")
        assert t.wait_screen(lambda s: "refresh 0.5s" in s, 15), t.screen()

        # a smaller window: everything clipped to 60 columns, the key line last
        t.resize(60, 15)
        s = t.wait_screen(lambda s: len(s.splitlines()) <= 15 and "q quit" in s.splitlines()[-1]
                          and all(len(line) <= 60 for line in s.splitlines()), 15)
        assert s, t.screen()
        lines = s.splitlines()
        assert lines[0].startswith("stall top - pid")
        assert any(line.startswith("loop: ") for line in lines)
        assert re.search(r"^(main|worker \d+|  \.\.\. \d+ more)", s, re.M), s
        # tiny, then large again: still alive and drawing
        t.resize(20, 4)
        time.sleep(1.5)
        t.resize(100, 30)
        s = t.wait_screen(lambda s: len(s.splitlines()) > 10 and LOOP.search(s) and "worker 1" in s, 20)
        assert s, t.screen()
        assert not t.exit_file.exists()

        # the program exits: the last screen stays, marked exited
        training.stop()
        s = t.wait_screen(lambda s: "EXITED" in s and "program exited" in s, 60)
        assert s, t.screen()
        assert re.search(r"^main\s+%d\s" % training.program, s, re.M), s  # (its workers may have gone first)
        time.sleep(1.5)
        assert not t.exit_file.exists(), "stall top quit by itself"
        t.keys("q")
        assert t.exit_status() == 0
    finally:
        t.close()
