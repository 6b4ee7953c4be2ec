// aurora-serve playground: the page's behaviour. Requests go through api.js, a plain client of the public
// API (POST /v1/captions, streamed): uploads as multipart, URLs as JSON. Errors are shown as the API sends
// them: the OpenAI envelope {"error": {message, type, param, code}} with its HTTP status before the 200,
// or one error event inside the stream.
import { captionEvents, captionInit, curlCommand, errorOf, readiness } from "./api.js";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "aurora-serve.api-key";
const PROMPTS = { video: "Describe the video in detail.", image: "Describe the image in detail." };
const RATIO_MIN = 0.05, RATIO_MAX = 1;
const IMAGE_EXT = /\.(jpe?g|png|gif|webp|bmp|tiff?)(\?|#|$)/i;
const VIDEO_EXT = /\.(mp4|m4v|mov|webm|mkv|avi|mpe?g)(\?|#|$)/i;

const config = readConfig();
let controller = null;   // AbortController of the request in flight
let previewUrl = null;   // object URL of the uploaded file's preview
let readyTimer = null;   // the next /ready poll while the server is not ready

function readConfig() {
  const fallback = { model: "auroracap", default_token_kept_ratio: 0.8, default_num_frames: 8, max_frames: 64,
                     max_media_bytes: 64 * 1024 * 1024, auth_required: false };
  try {
    return { ...fallback, ...JSON.parse($("aurora-config").textContent) };
  } catch {
    return fallback;  // the page opened without the server's template step
  }
}

// --- setup -------------------------------------------------------------------------------------------

function init() {
  $("model-name").textContent = config.model;
  $("ratio").value = String(config.default_token_kept_ratio);
  $("frames").max = String(config.max_frames);
  $("frames").value = String(config.default_num_frames);
  $("max-frames").max = String(config.max_frames);
  $("max-frames").value = String(config.max_frames);
  for (const radio of document.querySelectorAll("input[name=sampling]")) radio.addEventListener("change", showSampling);
  showSampling();
  $("file-hint").textContent = `Up to ${formatBytes(config.max_media_bytes)}. Sent as multipart to /v1/captions; ` +
    "the server tells video from image by content.";

  const key = $("api-key");
  key.value = localStorage.getItem(KEY_STORE) || "";
  key.placeholder = config.auth_required ? "required by this server" : "optional";
  key.addEventListener("input", () => localStorage.setItem(KEY_STORE, key.value.trim()));

  for (const radio of document.querySelectorAll("input[name=source]")) radio.addEventListener("change", showSource);
  $("file").addEventListener("change", onFileChosen);
  $("url").addEventListener("input", onUrlChanged);
  setupDropzone();
  setupRatio();
  $("caption-form").addEventListener("submit", (e) => { e.preventDefault(); runCaption(); });
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); runCaption(); }
  });
  $("stop").addEventListener("click", () => controller && controller.abort());
  for (const type of ["input", "change"]) document.addEventListener(type, renderCurl);
  renderCurl();
  showReadiness();
}

function source() {
  return document.querySelector("input[name=source]:checked").value;
}

function samplingMode() {
  return document.querySelector("input[name=sampling]:checked").value;
}

// A fixed count (num_frames) or a rate (fps, capped by max_frames): the API lets num_frames win when both
// are sent, so the page sends one rule only.
function showSampling() {
  const rate = samplingMode() === "rate";
  $("count-panel").hidden = rate;
  $("rate-panel").hidden = !rate;
  $("frames-hint").textContent = rate
    ? `fps × the window's length, rounded, at most the cap (1–${config.max_frames}); an image is one frame.`
    : `Sampled uniformly from a video or its window (1–${config.max_frames}); an image is one frame.`;
}

// A number field's value, or undefined when blank (the server's default).
function numberOf(id, parse = Number.parseFloat) {
  const text = $(id).value.trim();
  return text === "" ? undefined : parse(text, 10);
}

function showSource() {
  const upload = source() === "upload";
  $("upload-panel").hidden = !upload;
  $("url-panel").hidden = upload;
  upload ? onFileChosen() : onUrlChanged();
}

function onFileChosen() {
  const file = $("file").files[0];
  $("file-name").textContent = file ? `${file.name} · ${formatBytes(file.size)}` : "";
  $("dropzone").classList.toggle("has-file", Boolean(file));
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = file ? URL.createObjectURL(file) : null;
  const kind = !file ? null : file.type.startsWith("image/") ? "image" : "video";
  setPreview(previewUrl, kind);
  matchPrompt(kind);
}

function onUrlChanged() {
  const url = $("url").value.trim();
  // Preview only what the page may load (its CSP allows http(s), data: and blob: media).
  const kind = !/^(https?|data):/i.test(url) ? null : IMAGE_EXT.test(url) || url.startsWith("data:image/") ? "image"
    : VIDEO_EXT.test(url) || url.startsWith("data:video/") ? "video" : null;
  setPreview(kind ? url : null, kind);
  matchPrompt(kind);
}

function matchPrompt(kind) {
  // Follow the media kind only while the prompt is still one of our defaults (never overwrite the user's).
  const prompt = $("prompt");
  if (kind && Object.values(PROMPTS).includes(prompt.value)) prompt.value = PROMPTS[kind];
}

function setPreview(url, kind) {
  const box = $("preview");
  box.replaceChildren();
  box.hidden = !url;
  if (!url) return;
  const el = document.createElement(kind === "image" ? "img" : "video");
  if (kind !== "image") { el.muted = true; el.controls = true; el.preload = "metadata"; }
  el.alt = "Preview of the chosen media";
  el.addEventListener("error", () => { box.hidden = true; });  // a preview is a nicety, not a check
  el.src = url;
  box.append(el);
}

function setupDropzone() {
  const zone = $("dropzone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  }
  for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    if (!e.dataTransfer.files.length) return;
    $("file").files = e.dataTransfer.files;
    $("file").dispatchEvent(new Event("change", { bubbles: true }));
  });
}

// --- kept-ratio slider with the recommended ranges ---------------------------------------------------

function setupRatio() {
  const ratio = $("ratio");
  for (const band of document.querySelectorAll(".band")) {
    const from = fraction(Number(band.dataset.from)), to = fraction(Number(band.dataset.to));
    band.style.setProperty("--from", from);
    band.style.setProperty("--span", to - from);
    band.addEventListener("click", () => {
      ratio.value = band.dataset.preset;
      ratio.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }
  ratio.addEventListener("input", showRatio);
  showRatio();
}

function fraction(value) {
  return (value - RATIO_MIN) / (RATIO_MAX - RATIO_MIN);
}

function showRatio() {
  const value = Number($("ratio").value);
  $("ratio-value").textContent = value.toFixed(2);
  $("ratio").style.setProperty("--fill", fraction(value));
  const bands = [...document.querySelectorAll(".band")];
  // 0.8 sits on two edges: the lower band wins.
  const active = bands.find((b) => value >= Number(b.dataset.from) && value <= Number(b.dataset.to));
  for (const band of bands) band.classList.toggle("active", band === active);
  $("ratio-hint").textContent = ratioAdvice(value);
}

// AuroraCap's count at 378 px (aurora_serve/model/token_count.py): r = int(729(1 - ρ)/32) merged per layer,
// 31 layers. ρ is nominal: 0.2 keeps 171 of 729 tokens (23.5 %), not 20 %.
function tokensPerFrame(v) {
  return 729 - 31 * Math.trunc((729 * (1 - v)) / 32);
}

function ratioAdvice(v) {
  const head = `ρ ${v.toFixed(2)} keeps ${tokensPerFrame(v)} of 729 visual tokens per frame`;
  if (v < 0.2) return `${head}: fastest, below the recommended ranges.`;
  if (v <= 0.4) return `${head}: recommended for captioning (0.2–0.4).`;
  if (v < 0.5) return `${head}: between captioning and question answering.`;
  if (v < 0.8) return `${head}: recommended for question answering (above 0.5).`;
  return `${head}: recommended for OCR-like detail (above 0.8).`;
}

// --- the request ---------------------------------------------------------------------------------------

function request() {
  const upload = source() === "upload";
  return {
    key: $("api-key").value.trim(),
    upload,
    file: upload ? $("file").files[0] : undefined,
    url: upload ? "" : $("url").value.trim(),
    fields: {
      prompt: $("prompt").value.trim() || undefined,  // blank: the server's default prompt
      token_kept_ratio: Number($("ratio").value),
      ...(samplingMode() === "rate"
        ? { fps: numberOf("fps"), max_frames: numberOf("max-frames", Number.parseInt) }
        : { num_frames: numberOf("frames", Number.parseInt) }),
      start: numberOf("start"),
      end: numberOf("end"),
      max_tokens: Number.parseInt($("max-tokens").value, 10),
    },
  };
}

async function runCaption() {
  if (controller) return;
  controller = new AbortController();
  const run = { start: performance.now(), first: null, last: null, deltas: 0, usage: null, finish: null,
                failed: false };
  resetOutput();
  setBusy(true);
  try {
    const response = await fetch("v1/captions", { ...captionInit(request()), signal: controller.signal });
    if (!response.ok) {
      run.failed = true;
      showError(await errorOf(response), response.status, false);
      if (response.status === 503) showReadiness();
      return;
    }
    for await (const event of captionEvents(response)) handleEvent(event, run);
    setRunState(run.failed ? "Ended with an error" : `Done · finish reason: ${run.finish || "—"}`);
  } catch (err) {
    run.failed = true;
    if (err.name === "AbortError") {
      setRunState("Stopped");
    } else {
      showError({ message: `The server could not be reached: ${err.message}`, type: "network_error" }, null, false);
    }
  } finally {
    showStats(run);
    setBusy(false);
    controller = null;
  }
}

function handleEvent(event, run) {
  if (event.error) {  // an error after the 200: one event, then [DONE]
    run.failed = true;
    showError(event.error, null, true);
    return;
  }
  const choice = (event.choices || [])[0];
  const text = choice && choice.delta && choice.delta.content;
  if (text) {
    const now = performance.now();
    const shown = $("caption-text");
    if (run.first === null) {
      run.first = now;
      $("stat-ttft").textContent = formatMs(now - run.start);
    }
    run.last = now;
    run.deltas += 1;
    shown.textContent = shown.textContent ? shown.textContent + text : text.trimStart();
  }
  if (choice && choice.finish_reason) run.finish = choice.finish_reason;
  if (event.usage) run.usage = event.usage;
}

// --- output --------------------------------------------------------------------------------------------

function resetOutput() {
  $("caption-text").textContent = "";
  $("caption").dataset.state = "run";
  $("error").hidden = true;
  for (const id of ["stat-frames", "stat-visual", "stat-ttft", "stat-tps", "stat-output"]) $(id).textContent = "—";
  $("stats-detail").textContent = "";
}

function setBusy(busy) {
  $("submit").disabled = busy;
  $("submit").textContent = busy ? "Captioning…" : "Caption";
  $("stop").disabled = !busy;
  $("caption").classList.toggle("streaming", busy);
  if (busy) setRunState("Waiting for the first token…");
}

function setRunState(text) {
  $("run-state").textContent = text;
}

function showError(error, status, inStream) {
  $("error-title").textContent = inStream ? "The stream ended with an error" : "Request failed";
  $("error-status").textContent = inStream ? "in stream, after HTTP 200" : status ? `HTTP ${status}` : "no response";
  $("error-message").textContent = error.message || "(no message)";
  $("error-type").textContent = error.type || "—";
  $("error-code").textContent = error.code || "—";
  $("error-param").textContent = error.param || "—";
  $("error").hidden = false;
  setRunState(inStream ? "Ended with an error" : "Failed");
}

function showStats(run) {
  if (!run.usage) return;
  const u = run.usage;
  $("stat-frames").textContent = u.frames && u.frames.length ? u.frames.join(" + ") : "—";
  $("stat-visual").textContent = String(u.visual_tokens);
  $("stat-output").textContent = String(u.completion_tokens);
  // Decode speed (tokens after the first over first → last token) when the tokens arrived spread out;
  // when they came in one burst that span measures the network, not the model: use the whole request.
  const n = u.completion_tokens, span = (run.last - run.first) / 1000, total = (performance.now() - run.start) / 1000;
  const decode = run.deltas > 2 && span >= 0.05;
  const rate = decode ? (n - 1) / span : n / total;
  $("stat-tps").textContent = n > 0 && Number.isFinite(rate) ? rate.toFixed(1) : "—";
  const cached = (u.prompt_tokens_details && u.prompt_tokens_details.cached_tokens) || 0;
  $("stats-detail").textContent = `Prompt ${u.prompt_tokens} tokens (${cached} cached, ${u.visual_tokens} visual) · ` +
    `total ${formatMs(total * 1000)} · tokens/s ${decode ? "while decoding" : "over the whole request"}`;
}

function renderCurl() {
  const endpoint = `${location.origin}${location.pathname.replace(/[^/]*$/, "")}v1/captions`;
  $("curl").textContent = curlCommand({ endpoint, ...request() });
}

async function showReadiness() {
  clearTimeout(readyTimer);
  const pill = $("server-status");
  const { state, text, title } = await readiness();
  pill.dataset.state = state;
  pill.textContent = text;
  pill.title = title;
  if (state !== "ready") readyTimer = setTimeout(showReadiness, 2000);
}

function formatMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function formatBytes(n) {
  const mib = 1024 * 1024;
  return n >= mib ? `${(n / mib).toFixed(n % mib ? 1 : 0)} MiB` : `${Math.ceil(n / 1024)} KiB`;
}

init();
