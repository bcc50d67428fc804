// avagent web page: reads the JSON API with the key kept in localStorage. No framework, no build.
"use strict";

const KEY = "avagent.key";
const $ = (id) => document.getElementById(id);

function authHeaders() {
  const key = localStorage.getItem(KEY);
  return key ? { "Authorization": "Bearer " + key } : {};
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

function detailText(body) {
  if (body && typeof body === "object" && "detail" in body) {
    const d = body.detail;
    if (Array.isArray(d)) return d.map((e) => (e.loc || []).slice(1).join(".") + ": " + e.msg).join("; ");
    return String(d);
  }
  return typeof body === "string" ? body.slice(0, 300) : "unexpected answer";
}

async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { ...(opts.headers || {}), ...authHeaders() } });
  const ctype = r.headers.get("content-type") || "";
  const body = ctype.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    let msg = detailText(body);
    if (r.status === 401) msg += " — enter your API key above";
    throw new ApiError(r.status, msg);
  }
  return body;
}

// Build DOM nodes from text only (never innerHTML with data), so names and captions cannot inject.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function showError(msg) {
  const box = $("error");
  box.textContent = msg || "";
  box.hidden = !msg;
}

const fmt = (x, digits = 2) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
// An unmeasured sync score is a neutral prior, not a pass: show what perception said instead.
const UNMEASURED = { cannot_tell: "cannot tell", no_picture: "no picture" };
const fmtSync = (s) => (s && UNMEASURED[s.sync_verdict]) || fmt(s && s.sync);
const when = (iso) => (iso ? new Date(iso + (iso.endsWith("Z") ? "" : "Z")).toLocaleString() : "");

function setBadge(node, text) {
  node.textContent = text;
  node.className = "badge " + String(text).replace(/[^a-z_]/g, "");
  node.hidden = false;
}

// Downloads need the key header, so they go through fetch and a blob link.
async function download(path, filename) {
  try {
    const r = await fetch(path, { headers: authHeaders() });
    if (!r.ok) throw new ApiError(r.status, detailText(await r.json().catch(() => r.statusText)));
    const url = URL.createObjectURL(await r.blob());
    const a = el("a", { href: url, download: filename });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) { showError("download failed: " + e.message); }
}

// -- the key field -----------------------------------------------------------------------------
function initKey() {
  const input = $("api-key");
  const status = $("key-status");
  const show = () => {
    const key = localStorage.getItem(KEY);
    input.value = key || "";
    status.textContent = key ? "key " + key.split("_")[1] + " in use" : "no key (anonymous works in development only)";
  };
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    if (v) localStorage.setItem(KEY, v); else localStorage.removeItem(KEY);
    show(); location.reload();
  });
  $("key-forget").addEventListener("click", () => { localStorage.removeItem(KEY); show(); location.reload(); });
  show();
}

// -- index -------------------------------------------------------------------------------------
function initIndex() {
  $("upload-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const file = $("file").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("max_rounds", $("max_rounds").value);
    form.append("threshold", $("threshold").value);
    const xhr = new XMLHttpRequest();  // XHR, not fetch: it reports upload progress
    xhr.open("POST", "/v1/jobs");
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    const bar = $("upload-progress");
    bar.hidden = false; bar.value = 0;
    $("upload-button").disabled = true;
    $("upload-status").textContent = "uploading " + file.name + "…";
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { body = xhr.responseText; }
      if (xhr.status === 202) { location.href = "/jobs/" + encodeURIComponent(body.id); return; }
      $("upload-button").disabled = false; bar.hidden = true;
      $("upload-status").textContent = "";
      showError("upload refused (" + xhr.status + "): " + detailText(body));
    };
    xhr.onerror = () => { $("upload-button").disabled = false; showError("upload failed: network error"); };
    xhr.send(form);
  });
  $("batch-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const b = await api("/v1/batches", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ source: $("batch-source").value, dest: $("batch-dest").value,
                               pattern: $("batch-pattern").value || "*" }),
      });
      location.href = "/batches/" + encodeURIComponent(b.id);
    } catch (e) { showError("batch refused: " + e.message); }
  });
  refreshLists();
  setInterval(refreshLists, 3000);
}

async function refreshLists() {
  try {
    const [jobs, batches] = await Promise.all([api("/v1/jobs?limit=20"), api("/v1/batches?limit=10")]);
    const jt = $("jobs").tBodies[0];
    jt.replaceChildren(...jobs.items.map((j) => el("tr", {},
      el("td", {}, el("a", { href: "/jobs/" + j.id }, j.input_name)),
      el("td", {}, el("span", { class: "badge " + j.state }, j.state)),
      el("td", {}, j.tier || ""), el("td", {}, fmt(j.scores.alignment)), el("td", {}, fmtSync(j.scores)),
      el("td", { class: "muted" }, when(j.created_at)))));
    const bt = $("batches").tBodies[0];
    bt.replaceChildren(...batches.items.map((b) => el("tr", {},
      el("td", {}, el("a", { href: "/batches/" + b.id }, b.source + " → " + b.dest)),
      el("td", {}, el("span", { class: "badge " + b.state }, b.state)),
      el("td", {}, Math.round(b.progress * 100) + " %"), el("td", { class: "muted" }, when(b.created_at)))));
    showError("");
  } catch (e) { showError(e.message); }
}

// -- one job -----------------------------------------------------------------------------------
const ACTIVE = ["queued", "running"];

function params(p) {
  return Object.entries(p || {}).map(([k, v]) => k + "=" + (typeof v === "number" ? +v.toFixed(3) : JSON.stringify(v))).join(", ");
}

function renderRounds(report) {
  const box = $("plan");
  box.className = "";
  const rows = [];
  const b = report.baseline || {};
  rows.push(el("tr", { class: report.chosen_round === 0 ? "chosen" : "" },
    el("td", {}, "0"), el("td", {}, el("em", {}, "the input, untouched")),
    el("td", {}, fmt(b.alignment)), el("td", {}, fmt(b.sync)), el("td", {}, report.chosen_round === 0 ? "chosen" : "")));
  for (const r of report.rounds || []) {
    const steps = (r.plan || []).length
      ? el("ol", { class: "steps" }, r.plan.map((s) => el("li", {},
          el("code", {}, s.action + "(" + params(s.params) + ")"), " — ", el("span", { class: "reasoning" }, s.reasoning || ""))))
      : el("em", {}, "no action (nothing worth changing)");
    const notes = [...(r.notes || []), r.feedback].filter(Boolean);
    rows.push(el("tr", { class: r.index === report.chosen_round ? "chosen" : "" },
      el("td", {}, String(r.index)),
      el("td", {}, steps, notes.length ? el("div", { class: "muted notes" }, notes.join(" · ")) : ""),
      el("td", {}, fmt(r.scores && r.scores.alignment)), el("td", {}, fmt(r.scores && r.scores.sync)),
      el("td", {}, r.index === report.chosen_round ? "chosen" : (r.improved ? "kept" : "not kept"))));
  }
  box.replaceChildren(el("table", { id: "rounds" },
    el("thead", {}, el("tr", {}, el("th", {}, "round"), el("th", {}, "plan (" + ((report.rounds || [])[0] || {}).planner + " planner) and reasoning"),
      el("th", {}, "alignment"), el("th", {}, "sync"), el("th", {}, ""))),
    el("tbody", {}, rows)));
  $("caption-audio").textContent = (report.captions || {}).audio || "–";
  $("caption-video").textContent = (report.captions || {}).video || "(audio-only input)";
  $("caption-audio").className = $("caption-video").className = "";
}

async function loadMedia(jobId) {
  const m = await api("/v1/jobs/" + jobId + "/media");
  const set = (id, attr, key) => { if (m.links[key]) $(id)[attr] = m.links[key]; };
  // The worker renders the previews when the job finishes; until then the input itself plays.
  set("player-before", "src", m.links.before ? "before" : "input");
  set("spec-before", "src", "spectrogram_before");
  set("player-after", "src", "after");
  set("spec-after", "src", "spectrogram_after");
  $("spec-before").hidden = !m.links.spectrogram_before;
  $("player-after").hidden = !m.links.after;
  $("spec-after").hidden = !m.links.spectrogram_after;
}

function initJob() {
  const jobId = document.body.dataset.jobId;
  let loaded = false;
  let delay = 700;
  $("cancel").addEventListener("click", async () => {
    try { await api("/v1/jobs/" + jobId, { method: "DELETE" }); } catch (e) { showError(e.message); }
  });
  const tick = async () => {
    let job;
    try {
      job = await api("/v1/jobs/" + jobId);
      showError("");
    } catch (e) {
      showError(e.message);
      if (e.status === 404 || e.status === 401) return;  // nothing to poll for
      setTimeout(tick, (delay = Math.min(delay * 2, 10000)));
      return;
    }
    $("input-name").textContent = job.input_name;
    setBadge($("state"), job.state);
    if (job.tier) setBadge($("tier"), job.tier);
    const p = job.progress || {};
    $("progress").value = job.state === "succeeded" ? 1 : (p.fraction || 0);
    $("stage").textContent = ACTIVE.includes(job.state)
      ? (p.stage || job.state) + (p.max_rounds ? " · round " + p.round + " of " + p.max_rounds : "") + (p.note ? " · " + p.note : "")
      : job.state + (job.finished_at && job.started_at ? " in " + ((new Date(job.finished_at) - new Date(job.started_at)) / 1000).toFixed(1) + " s" : "");
    $("summary").textContent = job.summary || "";
    $("job-error").textContent = job.error || ""; $("job-error").hidden = !job.error;
    $("scores").replaceChildren(
      el("span", { class: "score" }, "alignment ", el("b", { id: "score-alignment" }, fmt(job.scores.alignment))),
      el("span", { class: "score" }, "sync ", el("b", { id: "score-sync" }, fmtSync(job.scores))),
      el("span", { class: "score muted" }, "rounds " + (job.rounds ?? "–") + " · attempts " + job.attempts + " · queue " + job.queue));
    $("cancel").hidden = !ACTIVE.includes(job.state);
    if (!loaded && !ACTIVE.includes(job.state)) {
      loaded = true;
      const dl = $("downloads");
      dl.replaceChildren(...["audio", "video", "report"].filter((k) => job.links[k]).map((k) => {
        const b = el("button", { type: "button", class: "link" }, "download " + k);
        b.addEventListener("click", () => download(job.links[k], k === "report" ? "report.json" : job.input_name));
        return b;
      }));
      try {
        await loadMedia(jobId);
        if (job.links.report) renderRounds(await api(job.links.report));
        else if (job.state !== "succeeded") $("plan").textContent = "no plan: the job " + job.state;
      } catch (e) { showError(e.message); }
      return;
    }
    if (!loaded && !$("player-before").src) loadMedia(jobId).catch(() => {});  // the input plays at once
    delay = 700;
    setTimeout(tick, delay);
  };
  tick();
}

// -- one batch ---------------------------------------------------------------------------------
function initBatch() {
  const batchId = document.body.dataset.batchId;
  $("cancel").addEventListener("click", async () => {
    try { await api("/v1/batches/" + batchId, { method: "DELETE" }); } catch (e) { showError(e.message); }
  });
  const tick = async () => {
    try {
      const [b, jobs] = await Promise.all([
        api("/v1/batches/" + batchId), api("/v1/jobs?limit=200&batch_id=" + encodeURIComponent(batchId))]);
      showError("");
      setBadge($("state"), b.state);
      $("batch-route").textContent = b.source + " → " + b.dest + "  (pattern " + b.pattern + ")";
      $("progress").value = b.progress;
      $("progress-text").textContent = Math.round(b.progress * 100) + " %";
      const c = b.counts;
      $("counts").replaceChildren(...["total", "skipped", "queued", "running", "succeeded", "failed", "cancelled"]
        .map((k) => el("span", { class: "score" }, k + " ", el("b", { id: "count-" + k }, String(c[k])))));
      $("batch-error").textContent = b.error || ""; $("batch-error").hidden = !b.error;
      const running = ["expanding", "running"].includes(b.state);
      $("cancel").hidden = !running;
      if (b.links.manifest && !$("manifest").childElementCount) {
        const btn = el("button", { type: "button", class: "link" }, "download manifest.jsonl");
        btn.addEventListener("click", () => download(b.links.manifest, "manifest.jsonl"));
        $("manifest").replaceChildren(btn);
      }
      $("jobs").tBodies[0].replaceChildren(...jobs.items.map((j) => el("tr", {},
        el("td", {}, el("a", { href: "/jobs/" + j.id }, j.input_name)),
        el("td", {}, el("span", { class: "badge " + j.state }, j.state)), el("td", {}, j.tier || ""),
        el("td", {}, fmt(j.scores.alignment)), el("td", {}, fmtSync(j.scores)),
        el("td", {}, Math.round((j.state === "succeeded" ? 1 : j.progress.fraction) * 100) + " %"))));
      if (running) setTimeout(tick, 1500);
    } catch (e) {
      showError(e.message);
      if (e.status !== 404 && e.status !== 401) setTimeout(tick, 5000);
    }
  };
  tick();
}

initKey();
({ index: initIndex, job: initJob, batch: initBatch })[document.body.dataset.page]?.();
