"""The playground page in a real browser, against the real server with the tiny model.

Headless Chromium from Debian's packages (``/usr/bin/chromium``, installed with apt-get when missing and we
are root) driven by Playwright for Python (pip-installed into a cache outside the repo when not importable;
no browser download: ``executable_path`` is the system Chromium). The page loads, nothing is fetched from
anywhere but the server, a caption streams from an upload, the visual-token count follows the kept ratio,
and the API's errors — 401, 415, 400 before the stream, and one inside it — are shown as the API sent them.
Screenshots go to ``tests/playground/artifacts/`` (git-ignored); their paths are printed.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from aurora_serve.model.token_count import tokens_per_frame
from tests.support.server import ServerProcess
from tests.conftest import SHARED_MEDIA
from tests.support.clips import encode, make_video

SAMPLE = SHARED_MEDIA / "xU25MMA2N4aVtYay.mp4"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
PLAYWRIGHT_VERSION = "1.65.2"
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
API_KEY = "playground-test-key"
FRAMES, MAX_TOKENS, MAX_FRAMES = 2, 16, 8


# --- what the test needs: Chromium (apt) and Playwright (pip), installed when missing --------------------


def ensure_chromium() -> str:
    if CHROMIUM.exists():
        return str(CHROMIUM)
    if os.geteuid() != 0:
        pytest.skip(f"{CHROMIUM} is missing and installing Debian's chromium needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"cannot install Chromium: `{' '.join(cmd)}` failed: {e}")
        if done.returncode != 0:
            pytest.skip(f"cannot install Chromium: `{' '.join(cmd)}` exited {done.returncode}: {done.stderr[-500:]}")
    if not CHROMIUM.exists():
        pytest.skip(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return str(CHROMIUM)


def ensure_playwright():
    """``playwright.sync_api``, pip-installed (pinned) into a cache outside the repo if not importable."""
    try:
        import playwright.sync_api as api
        return api
    except ImportError:
        pass  # not installed: install it below
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aurora-serve"
    target = cache / f"playwright-{PLAYWRIGHT_VERSION}"
    if not (target / "playwright").is_dir():
        partial = target.with_name(target.name + f".partial-{os.getpid()}")
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
               "--target", str(partial), f"playwright=={PLAYWRIGHT_VERSION}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"cannot install playwright=={PLAYWRIGHT_VERSION}: {done.stderr[-500:]}")
        try:
            partial.rename(target)  # whole or not at all: a concurrent run may have won the race
        except OSError:
            if not (target / "playwright").is_dir():
                raise
    sys.path.insert(0, str(target))
    import playwright.sync_api as api
    return api


# --- the real server (started the way tests/api starts its servers) ------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    proc = ServerProcess(["--api-key", API_KEY, "--max-frames", str(MAX_FRAMES), "--default-num-frames", str(FRAMES)],
                         tmp_path_factory.mktemp("playground") / "server.log")
    try:
        proc.wait_ready()
        if httpx.get(proc.base + "/", timeout=10).status_code == 404:
            pytest.fail("GET / is 404: create_app does not include the playground yet "
                        "(app.include_router(playground_router(settings)))")
        yield proc.base
    finally:
        proc.stop()


# --- the browser -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pw():
    executable = ensure_chromium()
    api = ensure_playwright()
    api.expect.set_options(timeout=60_000)  # a caption on 2 busy cores can take seconds, not milliseconds
    with api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield api, browser
        browser.close()


@pytest.fixture
def page(pw, server):
    """A fresh browser context (empty localStorage) on the playground page."""
    _, browser = pw
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server + "/")
    yield page
    context.close()


@pytest.fixture
def expect(pw):
    return pw[0].expect


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """The shared sample clip, or one made with PyAV when ../shared is absent."""
    if SAMPLE.is_file():
        return SAMPLE
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    make_video(path, frames=24)
    return path


@pytest.fixture(scope="module")
def timed_clip(tmp_path_factory) -> Path:
    """5.000 s at 30 fps: the sampling rule's counts are known exactly."""
    path = tmp_path_factory.mktemp("media") / "five-seconds.mp4"
    path.write_bytes(encode(150, gop=30))
    return path


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.locator("header").scroll_into_view_if_needed()  # the result panel is sticky: shoot from the top
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def caption(page, expect, *, done: str = "Done") -> None:
    page.get_by_role("button", name="Caption", exact=True).click()
    expect(page.locator("#run-state")).to_contain_text(done)


def use_key(page) -> None:
    page.get_by_label("API key").fill(API_KEY)


# --- the router alone (no browser, no engine) ----------------------------------------------------------------


def test_the_router_serves_the_page_and_its_assets():
    asyncio.run(_router_checks())


async def _router_checks():
    from fastapi import FastAPI

    from aurora_serve.api.playground import playground_router
    from aurora_serve.config import EngineSettings, ServerSettings
    from aurora_serve.media.item import MediaPolicy

    app = FastAPI()
    app.include_router(playground_router(ServerSettings(served_model_name="m</script><b>",
                                                         engine=EngineSettings(media=MediaPolicy(max_frames=12)))))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "{{AURORA_CONFIG}}" not in page.text and '"max_frames":12' in page.text
        assert "m</script>" not in page.text and "m\\u003c/script>" in page.text  # the JSON cannot end its block
        for name, kind in (("app.js", "text/javascript"), ("api.js", "text/javascript"), ("style.css", "text/css")):
            asset = await client.get(f"/playground/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
            again = await client.get(f"/playground/{name}", headers={"If-None-Match": asset.headers["etag"]})
            assert again.status_code == 304
        assert (await client.get("/playground/index.html")).status_code == 404
        assert (await client.get("/playground/..%2Fplayground.py")).status_code == 404


# --- the page in the browser ---------------------------------------------------------------------------------


def test_the_page_loads_nothing_from_elsewhere(pw, server, expect):
    _, browser = pw
    context = browser.new_context()
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    response = page.goto(server + "/")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_role("status", name="Server status")).to_have_text("Ready")
    expect(page.get_by_label("Frames", exact=True)).to_have_value(str(FRAMES))  # the server's defaults and limits
    assert page.get_by_label("Frames", exact=True).get_attribute("max") == str(MAX_FRAMES)
    expect(page.get_by_label("API key")).to_have_attribute("placeholder", "required by this server")
    foreign = [u for u in requested if not u.startswith(server) and not u.startswith("data:")]
    assert not foreign, f"the page fetched from elsewhere: {foreign}"
    assert {u.removeprefix(server) for u in requested} >= {"/", "/playground/app.js", "/playground/api.js",
                                                           "/playground/style.css"}
    context.close()


def test_missing_key_shows_the_401_and_the_key_is_remembered(page, expect, video):
    page.get_by_label("Choose a video or image").set_input_files(str(video))
    caption(page, expect, done="Failed")
    error = page.get_by_role("alert")
    expect(error).to_contain_text("HTTP 401")
    expect(error).to_contain_text("Incorrect or missing API key")
    expect(page.locator("#error-type")).to_have_text("authentication_error")
    expect(page.locator("#error-code")).to_have_text("invalid_api_key")
    use_key(page)
    page.reload()
    expect(page.get_by_label("API key")).to_have_value(API_KEY)


def test_an_upload_streams_a_caption_and_the_ratio_sets_the_visual_tokens(page, expect, video):
    use_key(page)
    page.get_by_label("Choose a video or image").set_input_files(str(video))
    page.get_by_label("Frames", exact=True).fill(str(FRAMES))
    page.get_by_label("Max new tokens").fill(str(MAX_TOKENS))
    page.get_by_label("Token kept ratio").fill("0.3")
    expect(page.locator("#ratio-value")).to_have_text("0.30")
    expect(page.locator("#ratio-hint")).to_contain_text("captioning")

    caption(page, expect)
    expect(page.locator("#caption-text")).to_have_text(re.compile(r"\S"))
    expect(page.locator("#stat-visual")).to_have_text(str(FRAMES * tokens_per_frame(0.3)))
    expect(page.locator("#stat-output")).to_have_text(str(MAX_TOKENS))
    expect(page.locator("#stat-ttft")).to_have_text(re.compile(r"^\d+ ms$|^\d+\.\d\d s$"))
    expect(page.locator("#stat-tps")).to_have_text(re.compile(r"^\d+\.\d$"))
    expect(page.get_by_role("alert")).to_be_hidden()
    screenshot(page, "caption-rho-0.3.png")

    page.get_by_role("button", name="Question answering").click()  # the band's preset: ρ 0.6
    expect(page.locator("#ratio-value")).to_have_text("0.60")
    caption(page, expect)
    expect(page.locator("#stat-visual")).to_have_text(str(FRAMES * tokens_per_frame(0.6)))
    assert tokens_per_frame(0.6) != tokens_per_frame(0.3)
    page.get_by_text("The same request with curl").click()
    expect(page.locator("#curl")).to_contain_text("-F token_kept_ratio=0.6")
    screenshot(page, "caption-rho-0.6.png")
    page.emulate_media(color_scheme="dark")
    screenshot(page, "caption-rho-0.6-dark.png")


def test_api_errors_are_shown_as_the_api_sent_them(page, expect, tmp_path):
    use_key(page)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video\n")
    page.get_by_label("Choose a video or image").set_input_files(str(notes))
    caption(page, expect, done="Failed")
    error = page.get_by_role("alert")
    expect(error).to_contain_text("HTTP 415")
    expect(error).to_contain_text("not a video container this server decodes")
    expect(page.locator("#error-code")).to_have_text("unsupported_media")

    page.get_by_role("radio", name="Paste URL").check()
    page.get_by_label("Media URL").fill("ftp://example.com/clip.mp4")
    caption(page, expect, done="Failed")
    expect(error).to_contain_text("HTTP 400")
    expect(page.locator("#error-message")).to_have_text(re.compile("unsupported URL scheme ftp:"))
    expect(page.locator("#error-type")).to_have_text("invalid_request_error")
    screenshot(page, "error-bad-scheme.png")


@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_an_error_inside_the_stream_is_shown_after_the_partial_caption(page, expect, eol):
    # The real server cannot be made to fail mid-stream on demand: this one answer is scripted in the
    # browser, in the server's own wire format (a chunk, one error event, then [DONE]); SSE allows CRLF too.
    chunk = '{"id":"caption-x","choices":[{"delta":{"content":"A partial caption"},"finish_reason":null,"index":0}]}'
    error = '{"error":{"message":"internal error while streaming","type":"server_error","param":null,"code":null}}'
    body = "".join(f"data: {data}{eol}{eol}" for data in (chunk, error, "[DONE]"))
    page.route("**/v1/captions", lambda route: route.fulfill(status=200, body=body,
                                                                content_type="text/event-stream"))
    page.get_by_role("radio", name="Paste URL").check()
    page.get_by_label("Media URL").fill("https://example.com/clip.mp4")
    caption(page, expect, done="Ended with an error")
    expect(page.locator("#caption-text")).to_have_text("A partial caption")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The stream ended with an error")
    expect(alert).to_contain_text("in stream, after HTTP 200")
    expect(page.locator("#error-message")).to_have_text("internal error while streaming")
    expect(page.locator("#error-type")).to_have_text("server_error")
    if eol == "\n":
        screenshot(page, "error-in-stream.png")


def test_rate_and_window_controls_reach_the_api(page, expect, timed_clip):
    use_key(page)
    page.get_by_label("Choose a video or image").set_input_files(str(timed_clip))
    page.get_by_label("Max new tokens").fill("2")
    page.get_by_label("Token kept ratio").fill("0.2")
    expect(page.get_by_label("Rate (fps)")).to_be_hidden()  # a fixed count until the rate is chosen
    page.get_by_role("radio", name="Rate").check()
    expect(page.get_by_label("Frames", exact=True)).to_be_hidden()
    expect(page.get_by_label("Frame cap")).to_have_value(str(MAX_FRAMES))  # the server's limit
    page.get_by_label("Rate (fps)").fill("2")
    page.get_by_label("Start (s)").fill("1")
    page.get_by_label("End (s)").fill("3")
    caption(page, expect)
    expect(page.locator("#stat-frames")).to_have_text("4")  # 2 fps x [1 s, 3 s)
    expect(page.locator("#stat-visual")).to_have_text(str(4 * tokens_per_frame(0.2)))
    page.get_by_text("The same request with curl").click()
    curl = page.locator("#curl")
    for field in ("-F fps=2", "-F max_frames=8", "-F start=1", "-F end=3"):
        expect(curl).to_contain_text(field)
    expect(curl).not_to_contain_text("num_frames")  # one rule only: num_frames would win over fps
    screenshot(page, "rate-and-window.png")

    page.get_by_label("Frame cap").fill("3")  # the cap binds: 2 fps x 2 s = 4 wanted
    caption(page, expect)
    expect(page.locator("#stat-frames")).to_have_text("3")
    page.get_by_role("radio", name="Fixed count").check()
    page.get_by_label("Frames", exact=True).fill("2")
    page.get_by_label("Start (s)").fill("4.9")
    page.get_by_label("End (s)").fill("")
    caption(page, expect)
    expect(page.locator("#stat-frames")).to_have_text("2")  # frames 147 and 149 of the last 0.1 s

    page.get_by_label("Start (s)").fill("9")  # past the end: the API's 400 names the field and the duration
    caption(page, expect, done="Failed")
    expect(page.locator("#error-param")).to_have_text("start")
    expect(page.locator("#error-message")).to_contain_text("duration is 5.000 s")
