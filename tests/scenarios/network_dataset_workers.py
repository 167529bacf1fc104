"""The remote data store of network_dataset.py, read by two DataLoader
workers (each opens its own connection): the workers wait on sockets and
cannot keep up.

expect: NETWORK_BOUND
"""
import multiprocessing as mp
import socket

from _common import make_loader, train
from network_dataset import Remote, serve

if __name__ == "__main__":
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    server = mp.get_context("fork").Process(target=serve, args=(lsock,), daemon=True)
    server.start()
    train([make_loader(Remote(8 * 60, lsock.getsockname()), batch_size=8, num_workers=2)], step_ms=5)
    server.terminate()
