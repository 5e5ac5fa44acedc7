#!/usr/bin/env python3
"""upper_callbacks.py - the upper-case line protocol, written as callbacks.

The protocol (the same in upper_yieldfrom.py and upper_async.py): the client sends lines;
the server answers each with the line in upper case; the line "quit" closes the connection.

    python3 examples/upper_callbacks.py [--port 0]     prints "listening on 127.0.0.1:PORT"

One thread, one selector (epoll underneath), and a callback per event. The connection's
progress lives in an object (its buffer), because a callback returns to the loop after
every read: this is bin/epoll's struct conn and conn_drive, in miniature. Each step that
could wait ends the function, and the rest of the logic moves into the next callback.
"""
import selectors
import socket
import sys

sel = selectors.DefaultSelector()


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""  # bytes received and not yet a whole line: the state a callback keeps

    def on_readable(self):
        data = self.sock.recv(4096)
        if not data:
            return self.close()
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.strip() == b"quit":
                return self.close()
            # A real server would also handle a full send buffer: another callback.
            self.sock.sendall(line.upper() + b"\n")

    def close(self):
        sel.unregister(self.sock)
        self.sock.close()


def on_accept(listener):
    sock, _ = listener.accept()
    sock.setblocking(False)
    conn = Conn(sock)
    sel.register(sock, selectors.EVENT_READ, conn.on_readable)


def main():
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    listener = socket.create_server(("127.0.0.1", port))
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, lambda: on_accept(listener))
    print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    while True:  # the event loop: wait for readiness, call whoever registered for it
        for key, _ in sel.select():
            key.data()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
