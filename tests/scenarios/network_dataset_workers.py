"""The remote data store of network_dataset.py, read by two DataLoader
workers (each opens its own connection): the workers wait on sockets and
cannot keep up.

expect: NETWORK_BOUND
"""
from _common import make_loader, train
from network_dataset import Remote, start_server

if __name__ == "__main__":
    addr, server = start_server()
    train([make_loader(Remote(8 * 60, addr), batch_size=8, num_workers=2)], step_ms=5)
    server.terminate()
