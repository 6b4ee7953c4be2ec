"""SSRF guard and API keys on the default server: loopback media hosts are refused and never contacted."""

from __future__ import annotations

import pytest

from tests.api.conftest import API_KEY, OTHER_KEY
from tests.api.schemas import validate

pytestmark = pytest.mark.engine


def video_body(url: str) -> dict:
    return {"model": "auroracap", "max_tokens": 2, "num_frames": 2, "messages": [{"role": "user", "content": [
        {"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": "Describe."}]}]}


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "0.0.0.0"])
def test_loopback_media_host_is_refused_and_never_contacted(http, media_host, host):
    r = http.post("/v1/chat/completions", json=video_body(f"http://{host}:{media_host.port}/clip.mp4"))
    assert r.status_code == 400, r.text
    validate("ErrorResponse", r.json())
    assert r.json()["error"]["code"] == "media_fetch_failed"
    assert media_host.hits == []


def test_private_and_metadata_addresses_are_refused(http):
    for url in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/clip.mp4", "http://[::1]/clip.mp4",
                "http://[fec0::1]/clip.mp4", "http://[64:ff9b:1::a00:1]/clip.mp4"):
        r = http.post("/v1/captions", json={"url": url})
        assert r.status_code == 400, (url, r.text)
        validate("ErrorResponse", r.json())


def test_api_keys(server, http):
    import httpx

    body = {"model": "auroracap", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
    for key in (API_KEY, OTHER_KEY):
        r = httpx.post(server.base + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": f"Bearer {API_KEY}x"},
                    {"Authorization": API_KEY}, {"Authorization": f"Token {API_KEY}"}):
        r = httpx.post(server.base + "/v1/chat/completions", json=body, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        validate("ErrorResponse", r.json())
    r = httpx.get(server.base + "/v1/models")
    assert r.status_code == 401
    for path in ("/health", "/ready", "/metrics", "/openapi.json"):  # operational routes stay open
        assert httpx.get(server.base + path).status_code == 200, path


def test_with_api_keys_any_host_and_origin_may_call(server):
    """The Host/Origin guard is for key-less servers: with keys, the key decides (behind any ingress name)."""
    import httpx

    headers = {"Authorization": f"Bearer {API_KEY}", "Host": "aurora.example.com", "Origin": "https://app.example"}
    body = {"model": "auroracap", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(server.base + "/v1/chat/completions", json=body, headers=headers, timeout=120).status_code == 200
