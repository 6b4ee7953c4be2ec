"""Loopback HTTP servers (the fetch tests' scripted ``Server``, the API tests' ``MediaHost``), and a transport
that never lets a request leave the machine.

Network rule: traffic goes only to loopback servers started here. Hostnames other than "localhost" are
answered by an injected resolver; a request to any non-loopback address is answered in-process by
``GuardTransport`` (never sent), so even a broken implementation cannot reach the outside.
"""

from __future__ import annotations

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx

from aurora_serve.media.addresses import check_address

BODY = b"hello media"
MiB = 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.log.append((self.path, self.headers.get("Host")))
        parts = urlsplit(self.path)
        route = getattr(self, "route_" + parts.path.strip("/").split("/")[0].replace("-", "_"), None)
        (route or self.route_missing)(parts)

    def send(self, status, body=b"", headers=()):
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        if not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def route_small(self, parts):
        self.send(200, BODY + self.server.tag)

    def route_echo_host(self, parts):
        self.send(200, f"{self.server.tag.decode()}|{self.headers.get('Host')}".encode())

    def route_missing(self, parts):
        self.send(404, b"not here")

    def route_redirect(self, parts):  # /redirect/N -> /redirect/N-1 -> ... -> /small
        n = int(parts.path.rsplit("/", 1)[1])
        self.send(302, headers=[("Location", f"/redirect/{n - 1}" if n > 1 else "/small")])

    def route_loop_a(self, parts):
        self.send(302, headers=[("Location", "/loop-b")])

    def route_loop_b(self, parts):
        self.send(302, headers=[("Location", "/loop-a")])

    def route_to(self, parts):  # /to?url=<absolute URL>
        self.send(302, headers=[("Location", parse_qs(parts.query)["url"][0])])

    def route_no_location(self, parts):
        self.send(302)

    def route_lying_short(self, parts):  # promises 1000 bytes, sends 10, closes
        self.send(200, b"0123456789", headers=[("Content-Length", "1000")])

    def route_declared_huge(self, parts):
        self.send(200, b"x" * 1024, headers=[("Content-Length", str(10 * 1024**3))])

    def route_gzip_bomb(self, parts):
        self.send(200, gzip.compress(b"\0" * (8 * MiB)), headers=[("Content-Encoding", "gzip")])

    def route_encoded(self, parts):  # /encoded?as=<Content-Encoding>: the body as sent, labelled as asked
        self.send(200, BODY, headers=[("Content-Encoding", parse_qs(parts.query)["as"][0])])

    def route_chunked_huge(self, parts):  # 64 MiB in 64 KiB chunks; records how far it got
        stats = self.server.stats
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"z" * 65536
        try:
            for _ in range(1024):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                stats["sent"] += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
            stats["finished"] = True
        except OSError:
            stats["aborted"] = True
        finally:
            self.close_connection = True
            stats["done"].set()

    def route_slow(self, parts):  # 100 bytes, one every 50 ms: no single read is slow, the whole is
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        try:
            for _ in range(100):
                self.wfile.write(b"s")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:  # the client gave up mid-body: what route_slow is for
            self.server.stats["aborted"] = True
        self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, host="127.0.0.1", port=0, tag=b"", tls=None):
        self.log, self.tag, self.sni = [], tag, []
        self.stats = {"sent": 0, "finished": False, "aborted": False, "done": threading.Event()}
        super().__init__((host, port), Handler)
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.port = self.server_address[1]
        self.connections = 0  # accepted sockets, counted before any request is read
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def get_request(self):
        accepted = super().get_request()
        self.connections += 1
        return accepted

    def url(self, path, host=None, scheme="http"):
        return f"{scheme}://{host or self.server_address[0]}:{self.port}{path}"


class _Unread(httpx.AsyncByteStream):
    """A body not read yet, as a real transport returns it (``content=`` would be read at once)."""

    def __init__(self, body: bytes):
        self.body = body

    async def __aiter__(self):
        yield self.body


class GuardTransport(httpx.AsyncBaseTransport):
    """Records every request; forwards loopback ones, answers any other address itself (no traffic)."""

    def __init__(self):
        self.requests, self.inner = [], httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request):
        self.requests.append(request)
        if check_address(request.url.host) == "loopback":
            return await self.inner.handle_async_request(request)
        body = b"answered in-process for " + request.url.host.encode()
        return httpx.Response(200, headers={"Content-Length": str(len(body))}, stream=_Unread(body))

    async def aclose(self):
        await self.inner.aclose()


def resolver_from(answers, calls=None):
    """Resolver returning ``answers[i]`` on the i-th call (the last one repeats); logs calls."""
    calls = [] if calls is None else calls

    def resolve(host, port):
        calls.append((host, port))
        return answers[min(len(calls), len(answers)) - 1]

    return resolve


class MediaHost:
    """A loopback HTTP server that serves clips, redirects in a loop, and records every request it gets."""

    def __init__(self, files: dict[str, bytes]):
        host = self
        self.hits: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                host.hits.append(self.path)
                if self.path.startswith("/loop-"):
                    nxt = "/loop-b" if self.path == "/loop-a" else "/loop-a"
                    self.send_response(302)
                    self.send_header("Location", nxt)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
