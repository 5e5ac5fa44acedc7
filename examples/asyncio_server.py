#!/usr/bin/env python3
"""Model 3 (I/O multiplexing) written with coroutines, in Python's asyncio.

asyncio's loop waits in epoll_wait (selectors.EpollSelector), then makes a nonblocking recv;
`await reader.readuntil()` parks this coroutine until then. `make trace MODEL=asyncio` shows
the epoll_wait / recvfrom / sendto of bin/epoll: coroutines shape the code, not the I/O.
GET of files under --root, keep-alive; no more HTTP than the trace needs.
"""
import argparse, asyncio, os, sys


async def serve(reader, writer, root):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode("latin-1").lstrip("/") or "index.html"
            try:
                if ".." in path.split("/"):
                    raise FileNotFoundError(path)
                fd = os.open(path, os.O_RDONLY, dir_fd=root)
                try:
                    status, body = b"200 OK", os.read(fd, os.fstat(fd).st_size)
                finally:
                    os.close(fd)
            except OSError:
                status, body = b"404 Not Found", b"not found\n"
            writer.write(b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--root", default="www")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    root = os.open(a.root, os.O_RDONLY | os.O_DIRECTORY)
    server = await asyncio.start_server(lambda r, w: serve(r, w, root), a.addr, a.port)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"listening on {host}:{port} model=asyncio root={a.root}", file=sys.stderr, flush=True)
    await server.serve_forever()


asyncio.run(main())
