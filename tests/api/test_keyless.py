"""A server without API keys, on loopback: it refuses unknown Host names (DNS rebinding) and other sites'
posts, keeps curl, the SDK and the playground working, refuses encoded media, and serves no CDN pages."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.api.schemas import validate
from tests.support.clips import data_url, make_video
from tests.support.loopback import Server

pytestmark = pytest.mark.engine
CHAT = "/v1/chat/completions"
HI = {"model": "auroracap", "max_tokens": 2, "messages": [{"role": "user", "content": "Say hi."}]}


def refused(r: httpx.Response, code: str) -> None:
    assert r.status_code == 403, r.text[:300]
    validate("ErrorResponse", r.json())
    assert r.json()["error"]["code"] == code and r.json()["error"]["type"] == "permission_error"


def test_unknown_host_names_are_refused_on_the_api(limits_server):
    base = limits_server.base
    for host in ("evil.example", f"evil.example:{limits_server.port}", "127.0.0.1.nip.io"):
        refused(httpx.post(base + CHAT, json=HI, headers={"Host": host}, timeout=30), "host_not_allowed")
        refused(httpx.get(base + "/v1/models", headers={"Host": host}), "host_not_allowed")
    for path in ("/health", "/ready", "/metrics"):  # probes and scrapes: no API behind them
        assert httpx.get(base + path, headers={"Host": "evil.example"}).status_code == 200, path
    for host in (f"localhost:{limits_server.port}", "aurora.test", "[::1]:8000", "10.1.2.3"):
        assert httpx.get(base + "/v1/models", headers={"Host": host}).status_code == 200, host


def test_posts_from_other_sites_are_refused(limits_server):
    base, port = limits_server.base, limits_server.port
    for origin in ("http://evil.example", f"http://127.0.0.1:{port + 1}", "null"):
        refused(httpx.post(base + CHAT, json=HI, headers={"Origin": origin}, timeout=30), "cross_site_request")
    form = httpx.post(base + "/v1/captions", content=b"url=http%3A%2F%2Fx%2Fa.mp4", timeout=30, headers={
        "Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"})
    refused(form, "cross_site_request")
    # reading is not refused on Origin: without CORS headers a browser does not let the page see the answer
    assert httpx.get(base + "/v1/models", headers={"Origin": "http://evil.example"}).status_code == 200


def test_curl_the_sdk_and_the_playground_keep_working(limits_server):
    import openai

    base = limits_server.base
    assert httpx.post(base + CHAT, json=HI, timeout=120).status_code == 200  # curl: no Origin
    sdk = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)
    assert sdk.chat.completions.create(model="auroracap", max_tokens=2, messages=HI["messages"]).choices
    # the playground: a same-origin fetch() from the page, which carries the page's Origin
    body = {"url": data_url(make_video(None, frames=6, seed=7)), "num_frames": 2, "max_tokens": 2, "stream": True}
    r = httpx.post(base + "/v1/captions", json=body, headers={"Origin": base}, timeout=120)
    assert r.status_code == 200, r.text[:300]
    assert r.text.rstrip().endswith("data: [DONE]")


def test_compressed_media_is_refused_not_inflated(limits_server):
    media = Server()
    try:
        body = {**HI, "messages": [{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": media.url("/gzip-bomb")}}]}]}
        r = httpx.post(limits_server.base + CHAT, json=body, timeout=60)
        assert r.status_code == 400, r.text[:300]
        validate("ErrorResponse", r.json())
        error = r.json()["error"]
        assert error["code"] == "media_fetch_failed" and "Content-Encoding 'gzip'" in error["message"], error
        assert [path for path, _ in media.log] == ["/gzip-bomb"]
    finally:
        media.shutdown()


def test_no_pages_with_third_party_scripts(limits_server):
    for path in ("/docs", "/redoc"):
        assert httpx.get(limits_server.base + path).status_code == 404, path
    schema = httpx.get(limits_server.base + "/openapi.json")
    assert schema.status_code == 200 and "/v1/chat/completions" in json.loads(schema.text)["paths"]
