"""Builders shared by several test modules."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class MirrorServer:
    """Serves a folder; `mode` can make the next responses corrupt or cut short."""

    def __init__(self, root: Path):
        self.root, self.mode, self.requests = root, "good", []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.path)
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                body = path.read_bytes()
                if server.mode == "corrupt":
                    body = body[:-10] + b"X" * 10
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.mode in ("truncate", "truncate-once"):  # promise the whole file, send a third, hang up
                    if server.mode == "truncate-once":
                        server.mode = "good"
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    self.connection.close()
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def linked_mirror(mirror: Path, dest: Path, *, missing: tuple[str, ...] = (),
                  corrupted: tuple[str, ...] = ()) -> Path:
    """The data mirror rebuilt as links to its files, some left out and some with one byte flipped."""
    for path in mirror.rglob("*"):
        rel = path.relative_to(mirror).as_posix()
        if not path.is_file() or rel in missing:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel in corrupted:
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            target.write_bytes(bytes(data))
        else:
            target.symlink_to(path)
    return dest
