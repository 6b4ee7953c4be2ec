// The playground's client of the public API (no DOM here): the /v1/captions request, its SSE stream,
// the OpenAI error envelope, /ready, and the same request as a curl command.

// Form fields of a caption request; `undefined` / NaN fields are left out (the server's default).
function present(fields) {
  return Object.entries(fields).filter(([, v]) => v !== undefined && !Number.isNaN(v));
}

// fetch() options for POST /v1/captions: multipart with the file, else JSON (with the URL if any: when
// neither is given the API itself says what is missing). Always streamed.
export function captionInit({ key, file, url, fields }) {
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  if (file) {
    const form = new FormData();
    form.append("file", file, file.name);
    for (const [name, value] of present(fields)) form.append(name, String(value));
    form.append("stream", "true");
    return { method: "POST", headers, body: form };
  }
  const body = { ...(url ? { url } : {}), ...Object.fromEntries(present(fields)), stream: true };
  return { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body) };
}

// The parsed events of an SSE response up to `data: [DONE]`. An event that is not JSON becomes an
// error event, so the page shows it like any other error inside the stream.
export async function* captionEvents(response) {
  for await (const data of sseData(response.body)) {
    if (data === "[DONE]") return;
    try {
      yield JSON.parse(data);
    } catch {
      yield { error: { message: `the stream sent an event that is not JSON: ${data.slice(0, 200)}`,
                       type: "invalid_stream", param: null, code: null } };
    }
  }
}

async function* sseData(body) {
  // Each event's data lines joined with \n; comments and other fields are ignored.
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let end;
    while ((end = /\r?\n\r?\n/.exec(buffer))) {
      const data = dataOf(buffer.slice(0, end.index));
      buffer = buffer.slice(end.index + end[0].length);
      if (data !== null) yield data;
    }
    if (done) break;
  }
  const rest = dataOf(buffer);
  if (rest !== null) yield rest;
}

function dataOf(block) {
  const lines = block.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, ""));
  return lines.length ? lines.join("\n") : null;
}

// The `error` object of a failed response: the API's envelope, or the body as text (a proxy's page).
export async function errorOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error) return body.error;
  } catch { /* not JSON */ }
  const message = text.trim() || response.statusText || "request failed";
  return { message, type: "http_error", param: null, code: null };
}

// GET /ready (no key needed): 200, or 503 with an error envelope whose code says why.
export async function readiness() {
  try {
    const response = await fetch("ready", { cache: "no-store" });
    if (response.ok) return { state: "ready", text: "Ready", title: "" };
    const error = await errorOf(response);
    if (error.code === "loading") return { state: "loading", text: "Loading model…", title: error.message };
    return { state: "down", text: "Not ready", title: error.message };
  } catch (err) {
    return { state: "down", text: "Unreachable", title: err.message };
  }
}

export function curlCommand({ endpoint, key, file, url, upload, fields }) {
  const auth = key ? ' \\\n  -H "Authorization: Bearer $AURORA_API_KEY"' : "";
  if (upload) {
    const parts = [`file=@${file ? file.name : "clip.mp4"}`,
      ...present(fields).map(([name, value]) => `${name}=${value}`), "stream=true"];
    return `curl -N ${endpoint}${auth}` + parts.map((p) => ` \\\n  -F ${shellWord(p)}`).join("");
  }
  const body = { url: url || "https://example.com/clip.mp4", ...Object.fromEntries(present(fields)), stream: true };
  const json = ' \\\n  -H "Content-Type: application/json"';
  return `curl -N ${endpoint}${auth}${json} \\\n  -d ${shellWord(JSON.stringify(body))}`;
}

function shellWord(text) {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}
