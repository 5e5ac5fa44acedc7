#!/usr/bin/env python3
"""upper_async.py - the upper-case line protocol, written with async/await (asyncio).

The protocol is upper_callbacks.py's. upper_yieldfrom.py's shape, made syntax (PEP 492):
`await` where it had `yield from`, and asyncio's event loop (epoll underneath, on Linux)
where it had its own scheduler. Compare serve() here with serve() there: the same lines.

    python3 examples/upper_async.py [--port 0]     prints "listening on 127.0.0.1:PORT"
"""
import asyncio
import sys


async def serve(reader, writer):
    while True:
        line = await reader.readline()  # suspends this coroutine until a line is there
        if not line or line.strip() == b"quit":
            break
        writer.write(line.rstrip(b"\n").upper() + b"\n")
        await writer.drain()
    writer.close()


async def main():
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 0
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
