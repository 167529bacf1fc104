"""spans_demo.py - stall's spans from Python: a main process that waits for
batches and computes, and a spawned loader process that fetches and collates
them, both recording into one session. Then the session is read back with
`stall dump --summary` (the CLI path is the first argument).

Usage: PYTHONPATH=build/python /usr/bin/python3 examples/python/spans_demo.py build/stall
"""
import multiprocessing as mp
import subprocess
import sys
import time

import stall
from stall import SpanKind


def burn(seconds):
    end = time.perf_counter() + seconds
    x = 1.0
    while time.perf_counter() < end:
        x = x * 1.0000001 + 1e-9
    return x


def loader(queue, batches):
    stall.set_process_label("loader")
    for b in range(batches):
        with stall.span("fetch", SpanKind.DATA_LOADING):
            time.sleep(0.002)  # a slow read
            burn(0.001)  # decode
        with stall.span("collate", SpanKind.PREPROCESSING):
            burn(0.0005)
        queue.put(b)
    queue.put(None)


def main():
    cli = sys.argv[1] if len(sys.argv) > 1 else "stall"
    with stall.Session("spans_demo", keep=True) as session:
        stall.set_process_label("main")
        ctx = mp.get_context("spawn")  # the child finds the session via STALL_SESSION_DIR
        queue = ctx.Queue()
        worker = ctx.Process(target=loader, args=(queue, 100))
        worker.start()
        while True:
            with stall.span("wait_for_batch", SpanKind.DATA_WAIT):
                item = queue.get()
            if item is None:
                break
            with stall.span("train_step", SpanKind.STEP):
                burn(0.001)
        worker.join()
        directory = session.dir
    subprocess.run([cli, "dump", "--summary", directory], check=True)


if __name__ == "__main__":
    main()
