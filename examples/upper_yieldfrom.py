#!/usr/bin/env python3
"""upper_yieldfrom.py - the upper-case line protocol, written with generators and `yield from`.

The protocol is upper_callbacks.py's. Each connection is a generator that reads like
blocking code; where it would block, it yields ("read", sock) to a small scheduler, which
resumes it when the selector says the socket is readable. `yield from` (PEP 380) lets
read_line, itself a generator, suspend the whole stack of generators at once: the shape
asyncio had in Python 3.4, before async/await, and the shape of bin/coro's co_read.

    python3 examples/upper_yieldfrom.py [--port 0]     prints "listening on 127.0.0.1:PORT"
"""
import selectors
import socket
import sys

sel = selectors.DefaultSelector()


def read_line(sock, buf):
    """A generator: returns (line, rest) once a whole line has arrived, or (None, b"")."""
    while b"\n" not in buf:
        yield ("read", sock)  # suspend until sock is readable
        data = sock.recv(4096)
        if not data:
            return None, b""
        buf += data
    line, rest = buf.split(b"\n", 1)
    return line, rest


def serve(sock):
    """One connection, straight-line: the loop and the buffer are local variables again."""
    buf = b""
    while True:
        line, buf = yield from read_line(sock, buf)
        if line is None or line.strip() == b"quit":
            break
        sock.sendall(line.upper() + b"\n")
    sock.close()


def accept_loop(listener):
    while True:
        yield ("read", listener)
        sock, _ = listener.accept()
        sock.setblocking(False)
        spawn(serve(sock))


def spawn(gen):
    """Runs gen until it asks to wait, and parks it on the selector."""
    try:
        what, sock = gen.send(None)
    except StopIteration:
        return
    sel.register(sock, selectors.EVENT_READ, gen)


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    listener = socket.create_server(("127.0.0.1", port))
    listener.setblocking(False)
    spawn(accept_loop(listener))
    print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    while True:  # the scheduler: resume whichever generator's socket is ready
        for key, _ in sel.select():
            sel.unregister(key.fileobj)
            spawn(key.data)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
