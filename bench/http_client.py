"""http_client.py - the one minimal HTTP/1.1 reader of the bench, the gate, tests/ and scripts/.

    get(path, close=False)      the bytes of a GET request
    parse(buf, head=False)      one whole response at the start of buf, or None while it is
                                still incomplete: Response(status, headers, body), the rest
    read_response(sock, buf)    reads from sock until parse() has one; returns it and the rest
    read_to_eof(sock)           what the server sends before it closes

A response's body is its Content-Length (none for HEAD, 1xx, 204 and 304): the servers send
no chunked bodies. Lenient by design: the protocol suite's own client (tests/fixtures.py,
Client) checks every header and duplicate; this reader serves the tools that only need the
answer and its size.
"""

import re
from collections import namedtuple

STATUS_RE = re.compile(rb"^HTTP/1\.[01] (\d{3})")
END_OF_HEAD = b"\r\n\r\n"
RECV_SIZE = 1 << 16

Response = namedtuple("Response", "status headers body")


class BadResponse(Exception):
    """The bytes are not an HTTP/1.x response, or the server closed in the middle of one."""


def get(path="/index.html", close=False, host="localhost"):
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
            + ("Connection: close\r\n" if close else "") + "\r\n").encode()


def parse_head(buf):
    """(status, {lower-case name: value}, body offset) of the head at the start of buf;
    None while its end has not arrived."""
    end = buf.find(END_OF_HEAD)
    if end < 0:
        if len(buf) >= 5 and not buf.startswith(b"HTTP/"):
            raise BadResponse(f"not a status line: {bytes(buf[:40])!r}")
        return None
    head = bytes(buf[:end])
    m = STATUS_RE.match(head)
    if not m:
        raise BadResponse(f"bad status line: {head[:40]!r}")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return int(m[1]), headers, end + len(END_OF_HEAD)


def body_length(status, headers, head=False):
    if head or status < 200 or status in (204, 304):
        return 0
    length = headers.get("content-length", "0") or "0"
    if not length.isdigit():
        raise BadResponse(f"bad Content-Length {length!r}")
    return int(length)


def parse(buf, head=False):
    """(Response, the bytes after it) from the start of buf; None while incomplete.
    head: the request was a HEAD (no body follows)."""
    got = parse_head(buf)
    if got is None:
        return None
    status, headers, start = got
    n = body_length(status, headers, head)
    if len(buf) < start + n:
        return None
    return Response(status, headers, bytes(buf[start:start + n])), bytes(buf[start + n:])


def read_response(sock, buf=b"", head=False):
    """Reads one response from sock (buf: bytes already read from it): (Response, the
    bytes read past it). Once the head is in, each read asks for the whole body left, so a
    large body takes as few receive calls as the kernel allows."""
    buf = bytearray(buf)
    while (got := parse_head(buf)) is None:
        _recv_into(sock, buf, RECV_SIZE, "before answering")
    status, headers, start = got
    n = body_length(status, headers, head)
    while len(buf) < start + n:
        _recv_into(sock, buf, max(RECV_SIZE, start + n - len(buf)), "in the middle of a body")
    return Response(status, headers, bytes(buf[start:start + n])), bytes(buf[start + n:])


def read_to_eof(sock):
    """Every byte the server sends until it closes the connection."""
    buf = bytearray()
    while chunk := sock.recv(RECV_SIZE):
        buf += chunk
    return bytes(buf)


def _recv_into(sock, buf, size, when):
    chunk = sock.recv(size)
    if not chunk:
        raise BadResponse(f"the server closed the connection {when}")
    buf += chunk
