"""The `stall` command line: usage errors exit 2 with the usage text,
`stall sample` reports the system and a real process tree (JSON and text),
`stall dump` reads a session directory written by another process."""
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("STALL_BUILD", os.path.join(REPO, "build"))
STALL = os.path.join(BUILD, "stall")


def run(*args, **kw):
    return subprocess.run([STALL, *args], capture_output=True, text=True, timeout=60, **kw)


def test_version_and_help():
    r = run("version")
    assert r.returncode == 0 and r.stdout.startswith("stall ")
    r = run("help")
    assert r.returncode == 0 and "sample" in r.stdout and "dump" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "missing command"),
        (("frobnicate",), "unknown command 'frobnicate'"),
        (("dump",), "missing the session directory"),
        (("dump", "--bogus", "x"), "unknown option --bogus"),
        (("sample", "--interval", "0"), "--interval must be >= 0.001"),
        (("sample", "--count", "-3"), "positive integer"),
        (("sample", "--pid"), "--pid needs a value"),
        (("sample", "--nope"), "unknown option --nope"),
    ],
)
def test_usage_errors_exit_2_with_usage(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "usage: stall" in r.stderr


def test_dump_of_a_folder_that_is_not_a_session(tmp_path):
    r = run("dump", str(tmp_path))
    assert r.returncode == 1
    assert "not a stall session directory" in r.stderr


def test_sample_of_a_missing_pid():
    r = run("sample", "--pid", "999999999", "--count", "1")
    assert r.returncode == 1
    assert "no process with pid 999999999" in r.stderr


def test_sample_json_follows_a_tree_that_burns_cpu():
    code = textwrap.dedent(
        """
        import os, time
        kids = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                end = time.time() + 30
                while time.time() < end:
                    pass
                os._exit(0)
            kids.append(pid)
        print(" ".join(map(str, kids)), flush=True)
        time.sleep(30)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        kids = [int(x) for x in parent.stdout.readline().split()]
        r = run("sample", "--pid", str(parent.pid), "--interval", "0.3", "--count", "2", "--json")
        assert r.returncode == 0, r.stderr
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        assert len(lines) == 2
        last = lines[-1]
        procs = {p["pid"]: p for p in last["processes"]}
        assert procs[parent.pid]["depth"] == 0
        for k in kids:
            assert procs[k]["depth"] == 1 and procs[k]["ppid"] == parent.pid
        # two burners: each is seen using CPU (how much depends on what else
        # this shared machine runs, so only a floor far below a core is checked)
        assert all(procs[k]["cpu_cores"] > 0.05 for k in kids)
        sysd = last["system"]
        assert sysd["ncpus"] >= 1 and sysd["mem_total_bytes"] > sysd["mem_available_bytes"] > 0
        assert sysd["cpu_user_share"] is not None
        assert last["gpus"] == []  # no GPU here: empty, not an error
    finally:
        parent.kill()
        parent.wait()
        for k in kids:
            try:
                os.kill(k, 9)
            except ProcessLookupError:
                pass


def test_sample_text_names_unknowns_as_unknown():
    r = run("sample", "--count", "1", "--interval", "0.05")
    assert r.returncode == 0
    assert "process tree (1)" in r.stdout  # stall itself
    assert "GPUs: none" in r.stdout
    for line in r.stdout.splitlines():
        # a field is a number or the word unknown, never an empty value
        assert not line.rstrip().endswith(":")
