"""www.py - the three files every server is benchmarked on, generated (never committed).

    small.txt    100 B      a response dominated by headers and per-request overhead
    index.html   4096 B     the headline case: a small page, one sendfile per request
    1m.bin       1 MiB      a large body: throughput in bytes, not requests

The content is deterministic, so two runs (or two machines) serve byte-identical files.
"""

import hashlib
import os

SMALL_SIZE = 100
INDEX_SIZE = 4096
BIG_SIZE = 1 << 20


def small_txt():
    text = b"c10k bench: small.txt, one hundred bytes of plain text, the same in every run."
    return text.ljust(SMALL_SIZE - 1, b".") + b"\n"


def index_html():
    head = (b"<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
            b"<title>c10k bench</title></head>\n<body>\n<h1>c10k bench page</h1>\n")
    tail = b"</body>\n</html>\n"
    body = b""
    n = 0
    while True:
        para = b"<p>Paragraph %04d of the page every server sends in the headline test.</p>\n"
        para %= n + 1
        if len(head) + len(body) + len(para) + len(tail) + 8 > INDEX_SIZE:
            break
        body += para
        n += 1
    # An HTML comment pads the page to exactly INDEX_SIZE bytes.
    room = INDEX_SIZE - len(head) - len(body) - len(tail)
    pad = b"<!--" + b" " * (room - 8) + b"-->\n"
    return head + body + pad + tail


def big_bin():
    # A SHA-256 counter stream: incompressible, reproducible, fast enough for 1 MiB.
    out = bytearray()
    i = 0
    while len(out) < BIG_SIZE:
        out += hashlib.sha256(b"c10k-%d" % i).digest()
        i += 1
    return bytes(out[:BIG_SIZE])


FILES = {"small.txt": small_txt, "index.html": index_html, "1m.bin": big_bin}


def generate(root):
    """Writes the files under root, rewriting one only when its content differs."""
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)  # whatever the umask: a server started as root serves as nobody
    for name, make in FILES.items():
        path = os.path.join(root, name)
        data = make()
        try:
            with open(path, "rb") as f:
                if f.read() == data:
                    continue
        except FileNotFoundError:
            pass
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)  # a server running on the old file never sees a half-written one
    return {name: os.path.getsize(os.path.join(root, name)) for name in FILES}
