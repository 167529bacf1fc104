"""Each sample is fetched from a data server over TCP (a key-value store, an
object store): every __getitem__ pays a request round trip, and the loop
waits on the socket, off-CPU.

The server runs in its own process and answers each request after 3 ms (the
latency of a remote store); the training side is an ordinary socket client.

expect: NETWORK_BOUND
"""
import multiprocessing as mp
import socket
import struct
import threading
import time

import torch

from _common import make_loader, train

LATENCY_S = 0.003
SAMPLE = 64  # bytes: 16 float32


def answer(conn):
    with conn:
        while True:
            req = conn.recv(4)
            if len(req) < 4:
                break
            time.sleep(LATENCY_S)  # the store's own latency
            (i,) = struct.unpack("!I", req)
            conn.sendall(struct.pack("!16f", *([float(i % 97)] * 16)))


def serve(sock):
    """The data server: one thread per client connection."""
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


class Remote(torch.utils.data.Dataset):
    def __init__(self, n, addr):
        self.n, self.addr, self.conn = n, addr, None

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.conn is None:  # one connection per process (workers connect on their own)
            self.conn = socket.create_connection(self.addr)
            self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn.sendall(struct.pack("!I", i))
        buf = b""
        while len(buf) < SAMPLE:
            chunk = self.conn.recv(SAMPLE - len(buf))
            if not chunk:
                raise ConnectionError("data server closed the connection")
            buf += chunk
        return torch.tensor(struct.unpack("!16f", buf)), i % 4

    def __getstate__(self):  # a worker opens its own connection
        return {"n": self.n, "addr": self.addr, "conn": None}


def start_server():
    """The data server in a process of its own: (its address, the process)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    server = mp.get_context("fork").Process(target=serve, args=(lsock,), daemon=True)
    server.start()
    return lsock.getsockname(), server


if __name__ == "__main__":
    addr, server = start_server()
    train([make_loader(Remote(8 * 50, addr), batch_size=8)], step_ms=10)
    server.terminate()
