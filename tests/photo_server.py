"""A photo server on 127.0.0.1 for the download tests: real photos from ../shared/data plus injected failures.

``/photo/<name>`` serves a real JPEG; ``/truncated/<name>`` its first half; ``/html/page.jpg`` an HTML
page with an image name; ``/slow/...`` answers after the client's time-out; anything else is a 404.
Bounded: it serves only loopback and stops with the test.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def real_photos(shared_data: Path) -> list[Path]:
    """The real photos among the benchmark samples (AFLW2000-3D faces, WIDER FACE val crowds)."""
    photos = sorted((shared_data / "benchmarks" / "aflw2000_sample").glob("*.jpg"))
    photos += sorted((shared_data / "benchmarks" / "wider_val").glob("*.jpg"))
    return photos


class PhotoServer:
    def __init__(self, photos: list[Path], slow_seconds: float = 3.0):
        self.photos = {p.name: p for p in photos}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                server.requests.append(self.path)
                kind, _, name = self.path.lstrip("/").partition("/")
                if kind in ("photo", "truncated") and name in server.photos:
                    data = server.photos[name].read_bytes()
                    body, ctype = (data if kind == "photo" else data[: len(data) // 2]), "image/jpeg"
                elif kind == "html":
                    body, ctype = b"<html><body>not a photo</body></html>", "image/jpeg"
                elif kind == "slow":
                    time.sleep(slow_seconds)
                    body, ctype = b"late", "image/jpeg"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, kind: str, name: str = "x.jpg") -> str:
        return f"{self.base}/{kind}/{name}"

    def __enter__(self) -> "PhotoServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
