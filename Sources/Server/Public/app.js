// Descent status page: jobs, one job's curves and spec, studies (ranked jobs, overlaid curves), datasets.
// Plain browser JavaScript, no framework, no build step. Everything the server sends is put
// into the page as text (textContent / createTextNode / setAttribute), never as HTML.
"use strict";

(() => {
  const FAST_REFRESH_MS = 2000;   // while any job is queued or running
  const SLOW_REFRESH_MS = 10000;  // otherwise
  const REQUEST_TIMEOUT_MS = 8000;
  const ACTIVE = new Set(["queued", "running"]);
  const STATUS_ORDER = ["running", "queued", "succeeded", "failed", "cancelled"];
  const COLORS = { train: "#1f5fbf", val: "#d9730d" };
  // One color per job of a study (Tableau 10); past ten, the dash pattern tells them apart.
  const STUDY_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const STUDY_DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3]];

  const state = {
    jobs: [],
    hasMoreJobs: false,
    datasets: [],
    selectedId: null,
    detail: null,        // the selected job as GET /v1/jobs/{id} answered
    epochs: [],          // its metrics rows
    hoverEpoch: null,    // epoch under the pointer in either chart
    report: null,        // the selected job's compression report, once it has succeeded
    deliveries: [],      // its webhook delivery attempts, once it has finished
    live: null,          // the open job's event stream: { id, controller, connected, retryMs }
    jobsLive: null,      // the stream of all jobs (GET /v1/events): { controller, connected, retryMs }
    studies: [],
    selectedStudyId: null,
    study: null,         // the selected study as GET /v1/studies/{id} answered
    studyMetrics: new Map(), // job id → { key: status and epoch when loaded, rows }
    studyHoverEpoch: null,
    timer: null,
    busy: false,
    again: false,
    unreachable: false,
    unauthorized: false,
    failure: null,       // another error of the last refresh, as text
    flash: null,         // { text, until }
    lastUpdated: null,
    token: readToken(),
    askedForToken: false, // the first 401 of the page prompts for a token; later ones show the notice's button
  };

  const rowCache = new Map(); // job id → { signature, row }

  // ---- DOM helpers -------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /** Builds an element. Strings among `children` become text nodes, so they are never parsed as HTML. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [key, value] of Object.entries(props)) {
        if (value === null || value === undefined || value === false) continue;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = String(value);
        else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // ---- formatting --------------------------------------------------------

  const isNum = (x) => typeof x === "number" && Number.isFinite(x);

  function fmtNum(x) {
    if (!isNum(x)) return "—";
    const a = Math.abs(x);
    if (a === 0) return "0";
    if (a >= 10000) return Math.round(x).toLocaleString("en-US");
    if (a >= 1) return String(Number(x.toPrecision(4)));
    if (a < 0.001) return x.toExponential(2);
    return String(Number(x.toPrecision(4)));
  }

  /** A log-axis tick label: 0.001 … 1000 written out, smaller or larger as 1e-5. */
  function fmtTick(v) {
    return v >= 1e-3 && v < 1e4 ? String(Number(v.toPrecision(3))) : v.toExponential(0);
  }

  function fmtPct(x) {
    return isNum(x) ? (x * 100).toFixed(1) + "%" : "—";
  }

  function fmtInt(x) {
    return isNum(x) ? Math.round(x).toLocaleString("en-US") : "—";
  }

  function fmtBytes(n) {
    if (!isNum(n)) return "—";
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return (i === 0 ? String(n) : n.toFixed(n >= 100 ? 0 : 1)) + " " + units[i];
  }

  function fmtDuration(seconds) {
    if (!isNum(seconds) || seconds < 0) return "—";
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
    const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    if (m < 60) return `${m} min ${s} s`;
    const h = Math.floor(m / 60);
    return `${h} h ${m % 60} min`;
  }

  function parseTime(iso) {
    if (typeof iso !== "string" || iso === "") return null;
    const t = Date.parse(iso);
    return Number.isNaN(t) ? null : t;
  }

  function fmtAgo(iso) {
    const t = parseTime(iso);
    if (t === null) return "—";
    const s = Math.round((Date.now() - t) / 1000);
    if (s < 5) return "just now";
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    if (s < 7 * 86400) return `${Math.floor(s / 86400)} d ago`;
    return new Date(t).toLocaleDateString();
  }

  function fmtTime(iso) {
    const t = parseTime(iso);
    return t === null ? "—" : new Date(t).toLocaleString();
  }

  /** A time cell whose "… ago" text is refreshed on every render. */
  function timeNode(iso) {
    const t = parseTime(iso);
    return el("time", { datetime: t === null ? null : String(iso), title: t === null ? null : fmtTime(iso), "data-ago": t === null ? null : String(iso) }, fmtAgo(iso));
  }

  function refreshAgoTexts() {
    for (const node of document.querySelectorAll("[data-ago]")) {
      node.textContent = fmtAgo(node.getAttribute("data-ago"));
    }
  }

  /** The latest validation value if there is one, else the training value. */
  function pickLatest(latest, what) {
    if (!latest || typeof latest !== "object") return null;
    if (isNum(latest["val_" + what])) return { value: latest["val_" + what], kind: "val" };
    if (isNum(latest["train_" + what])) return { value: latest["train_" + what], kind: "train" };
    return null;
  }

  function statusClass(status) {
    return STATUS_ORDER.includes(status) ? status : "queued";
  }

  function badge(status) {
    return el("span", { class: "badge " + statusClass(status) }, String(status || "unknown"));
  }

  function safeFileName(text) {
    return String(text).replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 80) || "model";
  }

  function jobPath(id, suffix = "") {
    return "/v1/jobs/" + encodeURIComponent(id) + suffix;
  }

  // ---- API ---------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details || [];
    }
    get isUnreachable() {
      return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
    }
  }

  function readToken() {
    try { return sessionStorage.getItem("descent.token") || null; } catch { return null; }
  }

  function authHeaders() {
    return state.token ? { Authorization: "Bearer " + state.token } : {};
  }

  async function api(path, options = {}) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    try {
      let response;
      try {
        response = await fetch(path, {
          ...options,
          cache: "no-store",
          signal: controller.signal,
          headers: { Accept: "application/json", ...authHeaders(), ...(options.headers || {}) },
        });
      } catch (error) {
        throw new ApiError(0, "unreachable", "server unreachable");
      }
      const text = await response.text();
      let body = null;
      if (text) {
        try { body = JSON.parse(text); } catch { body = null; }
      }
      if (!response.ok) {
        const envelope = body && typeof body === "object" && body.error ? body.error : {};
        throw new ApiError(response.status, envelope.code || "http_" + response.status,
          envelope.message || response.statusText || "request failed", envelope.details);
      }
      return body;
    } catch (error) {
      if (error instanceof ApiError) throw error;
      throw new ApiError(0, "unreachable", "server unreachable");
    } finally {
      clearTimeout(timer);
    }
  }

  function listOf(body, key) {
    if (Array.isArray(body)) return body;
    if (body && Array.isArray(body[key])) return body[key];
    return [];
  }

  // ---- refresh loop ------------------------------------------------------

  async function refresh() {
    if (state.busy) { state.again = true; return; }
    state.busy = true;
    clearTimeout(state.timer);
    let unreachable = false, unauthorized = false, failure = null;
    const note = (error) => {
      if (!(error instanceof ApiError)) { console.error(error); return; }
      if (error.isUnreachable) unreachable = true;
      else if (error.status === 401) unauthorized = true;
      else failure = failure || `${error.message} (HTTP ${error.status})`;
    };

    try {
      const [jobs, datasets, studies] = await Promise.allSettled([api("/v1/jobs?limit=50"), api("/v1/datasets"), api("/v1/studies")]);
      if (jobs.status === "fulfilled") {
        state.jobs = listOf(jobs.value, "jobs").filter((j) => j && typeof j === "object" && j.id);
        state.hasMoreJobs = Boolean(jobs.value && jobs.value.next_cursor);
        renderJobs();
      } else note(jobs.reason);
      if (datasets.status === "fulfilled") {
        state.datasets = listOf(datasets.value, "datasets").filter((d) => d && typeof d === "object");
        renderDatasets();
      } else note(datasets.reason);
      if (studies.status === "fulfilled") {
        state.studies = listOf(studies.value, "studies").filter((st) => st && typeof st === "object" && st.id);
        renderStudies();
      } else note(studies.reason);

      if (state.selectedId && detailNeedsReload()) {
        try { await loadDetail(state.selectedId); } catch (error) { note(error); }
      }
      if (state.selectedStudyId && studyNeedsReload()) {
        try { await loadStudy(state.selectedStudyId); } catch (error) { note(error); }
      }
      if (!unreachable && !unauthorized && !failure && jobs.status === "fulfilled") state.lastUpdated = new Date();
    } catch (error) {
      console.error(error);
    } finally {
      state.unreachable = unreachable;
      state.unauthorized = unauthorized;
      state.failure = failure;
      refreshAgoTexts();
      renderNotice();
      state.busy = false;
      if (unauthorized && !state.askedForToken) {
        // The server has auth on: ask once (after the notice is drawn); askToken refreshes with the token.
        state.askedForToken = true;
        setTimeout(askToken, 0);
      }
      if (state.again) { state.again = false; refresh(); } else schedule();
    }
  }

  function schedule() {
    clearTimeout(state.timer);
    // While the jobs stream is open the table is live; polling only picks up what streams don't carry (deletions, datasets).
    const streamed = state.jobsLive && state.jobsLive.connected && !(state.detail && ACTIVE.has(state.detail.status) && !(state.live && state.live.connected));
    const anyActive = !streamed && (state.jobs.some((j) => ACTIVE.has(j.status)) || (state.detail && ACTIVE.has(state.detail.status)) ||
      state.studies.some((st) => st.status === "running"));
    state.timer = setTimeout(refresh, anyActive ? FAST_REFRESH_MS : SLOW_REFRESH_MS);
  }

  function detailNeedsReload() {
    const d = state.detail;
    if (!d || d.id !== state.selectedId) return true;
    // A running job followed over its event stream is up to date without polling.
    if (ACTIVE.has(d.status)) return !(state.live && state.live.id === d.id && state.live.connected);
    const listed = state.jobs.find((j) => j.id === d.id);
    return Boolean(listed && (listed.status !== d.status || listed.epoch !== d.epoch));
  }

  function renderNotice() {
    const notice = $("notice");
    notice.replaceChildren();
    const now = Date.now();
    if (state.flash && state.flash.until > now) {
      notice.append(state.flash.text);
    } else if (state.unreachable) {
      notice.append("Server unreachable — retrying");
    } else if (state.unauthorized) {
      notice.append("Authentication required ");
      notice.append(el("button", { type: "button", class: "btn", onclick: askToken }, state.token ? "Change token" : "Set token"));
    } else if (state.failure) {
      notice.append("Server error: " + state.failure);
    }
    notice.hidden = notice.childNodes.length === 0;
    const updated = $("updated");
    updated.textContent = state.lastUpdated ? "Updated " + state.lastUpdated.toLocaleTimeString() : "";
  }

  function flash(text, ms = 6000) {
    state.flash = { text, until: Date.now() + ms };
    renderNotice();
    setTimeout(renderNotice, ms + 50);
  }

  function askToken() {
    const value = window.prompt("Bearer token for this server (kept for this browser tab only):", state.token || "");
    if (value === null) return;
    state.token = value.trim() || null;
    try {
      if (state.token) sessionStorage.setItem("descent.token", state.token);
      else sessionStorage.removeItem("descent.token");
    } catch { /* storage may be disabled */ }
    refresh();
  }

  // ---- jobs table --------------------------------------------------------

  function renderJobs() {
    const body = $("jobs-body");
    const rows = state.jobs.map((job) => {
      const signature = JSON.stringify([job.status, job.name, job.progress, job.epoch, job.epochs, job.latest,
        job.error, job.result && job.result.test_accuracy, job.created_at]);
      const cached = rowCache.get(job.id);
      if (cached && cached.signature === signature) return cached.row;
      const row = makeJobRow(job);
      rowCache.set(job.id, { signature, row });
      return row;
    });
    // Move only rows that are out of place, so that a focused button keeps its focus.
    rows.forEach((row, i) => {
      if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null);
    });
    while (body.children.length > rows.length) body.lastElementChild.remove();
    const present = new Set(state.jobs.map((j) => j.id));
    for (const id of rowCache.keys()) if (!present.has(id)) rowCache.delete(id);

    for (const row of rows) row.classList.toggle("selected", row.dataset.id === state.selectedId);
    $("jobs-empty").hidden = state.jobs.length > 0;
    $("jobs-more").hidden = !state.hasMoreJobs;
    renderCounts();
  }

  function renderCounts() {
    const counts = new Map();
    for (const job of state.jobs) counts.set(job.status, (counts.get(job.status) || 0) + 1);
    const rank = (status) => (STATUS_ORDER.includes(status) ? STATUS_ORDER.indexOf(status) : STATUS_ORDER.length);
    const chips = [...counts.keys()]
      .sort((a, b) => rank(a) - rank(b))
      .map((status) => el("span", { class: "badge " + statusClass(status) }, String(status), " ", el("span", { class: "n" }, String(counts.get(status)))));
    $("job-counts").replaceChildren(...chips);
  }

  function makeJobRow(job) {
    const id = String(job.id);
    const name = typeof job.name === "string" && job.name !== "" ? job.name : null;

    const nameCell = el("td", { class: "col-name" },
      el("div", { class: "job-name" + (name ? "" : " unnamed") }, name || "(unnamed)"),
      el("div", { class: "job-id" }, id),
      job.status === "failed" && job.error && job.error.message
        ? el("div", { class: "job-error", title: job.error.code ? String(job.error.code) : null }, String(job.error.message))
        : null);

    const loss = pickLatest(job.latest, "loss");
    const acc = pickLatest(job.latest, "accuracy");
    const testAcc = job.result && isNum(job.result.test_accuracy) ? job.result.test_accuracy : null;

    const actions = el("td", { class: "col-actions" });
    if (ACTIVE.has(job.status)) {
      actions.append(el("button", {
        type: "button", class: "btn btn-danger", "aria-label": "Cancel job " + (name || id),
        onclick: (event) => { event.stopPropagation(); cancelJob(id, event.currentTarget); },
      }, "Cancel"));
    } else if (job.status === "succeeded") {
      actions.append(downloadLink(id, name));
    }

    const row = el("tr", {
      tabindex: "0", "data-id": id, "aria-label": "Show details of job " + (name || id),
      onclick: () => selectJob(id, true),
      onkeydown: (event) => {
        if (event.target === event.currentTarget && (event.key === "Enter" || event.key === " ")) {
          event.preventDefault();
          selectJob(id, true);
        }
      },
    },
      nameCell,
      el("td", { class: "col-status" }, badge(job.status)),
      el("td", { class: "col-progress" }, progressBar(job)),
      el("td", { class: "num", "data-label": "Loss" }, loss ? fmtNum(loss.value) : "—", loss ? el("span", { class: "sub" }, loss.kind) : null),
      el("td", { class: "num", "data-label": "Accuracy" }, acc ? fmtPct(acc.value) : "—", acc ? el("span", { class: "sub" }, acc.kind) : null),
      el("td", { class: "num col-optional" + (testAcc === null ? " is-empty" : ""), "data-label": "Test acc." }, testAcc === null ? "—" : fmtPct(testAcc)),
      el("td", { class: "col-optional", "data-label": "Created" }, timeNode(job.created_at)),
      actions);
    return row;
  }

  function progressBar(job) {
    let p = isNum(job.progress) ? job.progress : (isNum(job.epoch) && isNum(job.epochs) && job.epochs > 0 ? job.epoch / job.epochs : 0);
    if (job.status === "succeeded") p = 1;
    p = Math.min(1, Math.max(0, p));
    const epochText = isNum(job.epochs) ? `${isNum(job.epoch) ? job.epoch : 0}/${job.epochs}` : "";
    const label = job.status === "queued" ? "waiting" : epochText;
    return el("div", { class: "progress" },
      el("div", {
        class: "bar " + statusClass(job.status), role: "progressbar",
        "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(p * 100)),
        "aria-label": "Progress " + Math.round(p * 100) + "%" + (epochText ? ", epoch " + epochText : ""),
        title: Math.round(p * 100) + "%",
      }, el("span", { style: `width:${(p * 100).toFixed(1)}%` })),
      el("span", { class: "label" }, label ? (job.status === "queued" ? label : "epoch " + label) : ""));
  }

  /** The model file of a job: `.safetensors` as saved, or (format "onnx") the ONNX graph of the same model. */
  function downloadLink(id, name, format = "safetensors") {
    const fileName = safeFileName(name || id) + "." + format;
    const path = jobPath(id, format === "onnx" ? "/model?format=onnx" : "/model");
    return el("a", {
      class: "btn", href: path, download: fileName,
      "aria-label": (format === "onnx" ? "Download as ONNX the model of job " : "Download the model of job ") + (name || id),
      title: format === "onnx" ? "The same model as an ONNX file, for onnxruntime" : "The model as .safetensors (torch layouts)",
      onclick: (event) => {
        event.stopPropagation();
        if (!state.token) return; // the plain link works when auth is off
        event.preventDefault();
        downloadWithToken(path, fileName);
      },
    }, format === "onnx" ? "ONNX" : "Download");
  }

  /** With auth on a plain link cannot send the token: fetch the file with it, then save the blob. */
  async function downloadWithToken(path, fileName) {
    try {
      const response = await fetch(path, { headers: authHeaders() });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const url = URL.createObjectURL(await response.blob());
      const a = el("a", { href: url, download: fileName });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) {
      flash("Download failed: " + error.message);
    }
  }

  function stageDownloadLink(id, stage, format = "safetensors") {
    const path = jobPath(id, "/model?stage=" + encodeURIComponent(stage) + (format === "onnx" ? "&format=onnx" : ""));
    const fileName = safeFileName(id) + "." + safeFileName(stage) + "." + format;
    return el("a", {
      href: path, download: fileName,
      onclick: (event) => {
        if (!state.token) return; // the plain link works when auth is off
        event.preventDefault();
        downloadWithToken(path, fileName);
      },
    }, format === "onnx" ? "onnx" : "download");
  }

  async function cancelJob(id, button) {
    if (button) { button.disabled = true; button.textContent = "Cancelling…"; }
    try {
      await api(jobPath(id, "/cancel"), { method: "POST" });
      flash("Cancellation requested", 3000);
    } catch (error) {
      if (button) { button.disabled = false; button.textContent = "Cancel"; }
      flash("Cancel failed: " + (error.message || "error"));
    }
    refresh();
  }

  // ---- submit page: the spec editor ---------------------------------------

  const EXAMPLE_SPEC = {
    name: "moons-mlp",
    dataset: { builtin: "moons", samples: 1000, noise: 0.2 },
    model: { layers: [{ type: "dense", units: 32, activation: "relu" }, { type: "dense", units: 2 }] },
    optimizer: { type: "adam", lr: 0.01 },
    training: { epochs: 30, batch_size: 32, seed: 0 },
  };

  /**
   * Pretty-prints JSON with two-space indentation and records on which line each path starts
   * (`model.layers[0].units` → line 5), so the server's problems can be shown next to their field.
   */
  function prettyWithPaths(value) {
    const lines = [];
    const lineOf = new Map();
    const join = (path, key) => (typeof key === "number" ? `${path}[${key}]` : path ? `${path}.${key}` : key);
    function write(v, path, indent, prefix, suffix) {
      lineOf.set(path, lines.length);
      if (v !== null && typeof v === "object" && Object.keys(v).length > 0) {
        const isArray = Array.isArray(v);
        lines.push(indent + prefix + (isArray ? "[" : "{"));
        const entries = isArray ? v.map((item, i) => [i, item]) : Object.entries(v);
        entries.forEach(([key, item], index) => {
          const comma = index < entries.length - 1 ? "," : "";
          write(item, join(path, key), indent + "  ", isArray ? "" : JSON.stringify(key) + ": ", comma);
        });
        lines.push(indent + (isArray ? "]" : "}") + suffix);
      } else {
        lines.push(indent + prefix + JSON.stringify(v) + suffix);
      }
    }
    write(value, "", "", "", "");
    return { text: lines.join("\n"), lines, lineOf };
  }

  /** The line of `path`, or of its nearest ancestor that is in the spec (a missing field's object). */
  function lineForPath(lineOf, path) {
    let p = path || "";
    for (;;) {
      if (lineOf.has(p)) return lineOf.get(p);
      if (!p) return 0;
      const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      p = cut > 0 ? p.slice(0, cut) : "";
    }
  }

  function showProblems(problems, pretty) {
    const list = $("submit-problems");
    list.replaceChildren(...problems.map((p) => el("li", null, el("code", null, p.path || "(spec)"), ": ", String(p.message || ""))));
    const view = $("submit-annotated");
    if (!pretty || !problems.length) { view.hidden = true; return; }
    const byLine = new Map();
    for (const problem of problems) {
      const line = lineForPath(pretty.lineOf, problem.path);
      if (!byLine.has(line)) byLine.set(line, []);
      byLine.get(line).push(problem);
    }
    view.replaceChildren(...pretty.lines.map((text, index) => {
      const problemsHere = byLine.get(index) || [];
      const row = el("span", { class: "line" + (problemsHere.length ? " bad" : ""), "data-line": String(index + 1) },
        el("span", { class: "line-no" }, String(index + 1)), text);
      if (!problemsHere.length) return row;
      const wrapper = el("span", null, row);
      for (const problem of problemsHere) {
        wrapper.append(el("span", { class: "problem", "data-path": problem.path || "" }, "↑ " + (problem.path || "(spec)") + ": " + problem.message));
      }
      return wrapper;
    }));
    view.hidden = false;
  }

  /** Validates (`POST /v1/jobs/validate`) or submits the editor's spec; 422 details go next to their lines. */
  async function sendSpec(submit) {
    const status = $("submit-status");
    const text = $("submit-spec").value;
    let spec;
    try {
      spec = JSON.parse(text);
    } catch (error) {
      status.textContent = "Not valid JSON: " + error.message;
      showProblems([], null);
      return;
    }
    const pretty = prettyWithPaths(spec);
    $("submit-spec").value = pretty.text; // line numbers of the annotations are this text's
    status.textContent = submit ? "Submitting…" : "Validating…";
    try {
      const answer = await api(submit ? "/v1/jobs" : "/v1/jobs/validate", {
        method: "POST", body: pretty.text, headers: { "Content-Type": "application/json" },
      });
      showProblems([], null);
      if (submit) {
        status.textContent = "Queued as " + answer.id + ".";
        await refresh();
        selectJob(String(answer.id), true);
      } else {
        status.textContent = `Valid: ${fmtInt(answer.parameters)} parameters, ${fmtInt(answer.flops_per_sample)} FLOPs per sample.`;
      }
    } catch (error) {
      if (error instanceof ApiError && error.details && error.details.length) {
        status.textContent = `${error.message} (HTTP ${error.status}): ${error.details.length} problem${error.details.length === 1 ? "" : "s"}, shown next to their lines.`;
        showProblems(error.details, pretty);
      } else {
        status.textContent = (error && error.message) || "request failed";
        showProblems([], null);
      }
    }
  }

  function setUpEditor() {
    const area = $("submit-spec");
    if (!area) return;
    // `?spec=<JSON>` opens a spec in the editor (a link to share one); `&check=1` validates it at once.
    const query = new URLSearchParams(location.search);
    const shared = query.get("spec");
    if (shared) {
      try { area.value = prettyWithPaths(JSON.parse(shared)).text; } catch (_) { area.value = shared; }
    }
    if (!area.value) area.value = prettyWithPaths(EXAMPLE_SPEC).text;
    if (shared && query.get("check") === "1") setTimeout(() => sendSpec(false), 0);
    $("submit-format").addEventListener("click", () => {
      try { area.value = prettyWithPaths(JSON.parse(area.value)).text; $("submit-status").textContent = ""; }
      catch (error) { $("submit-status").textContent = "Not valid JSON: " + error.message; }
    });
    $("submit-validate").addEventListener("click", () => sendSpec(false));
    $("submit-send").addEventListener("click", () => sendSpec(true));
  }

  // ---- job detail --------------------------------------------------------

  function selectJob(id, byUser) {
    if (state.selectedId !== id) {
      state.selectedId = id;
      state.detail = null;
      state.epochs = [];
      state.hoverEpoch = null;
      $("detail-spec").textContent = "";
      $("detail-result").textContent = "";
      $("detail-summary").replaceChildren(el("span", { class: "muted" }, "Loading…"));
      $("detail-error").hidden = true;
      $("detail-title").textContent = id;
    }
    if (location.hash !== "#" + id) history.replaceState(null, "", "#" + encodeURIComponent(id));
    for (const row of $("jobs-body").children) row.classList.toggle("selected", row.dataset.id === id);
    const section = $("detail");
    section.hidden = false;
    drawCharts();
    if (byUser) section.scrollIntoView({ behavior: "smooth", block: "start" });
    loadDetail(id).catch((error) => {
      if (error instanceof ApiError && error.isUnreachable) { state.unreachable = true; renderNotice(); }
    }).finally(schedule);
  }

  function closeDetail() {
    stopFollowing();
    state.selectedId = null;
    state.detail = null;
    state.epochs = [];
    $("detail").hidden = true;
    for (const row of $("jobs-body").children) row.classList.remove("selected");
    history.replaceState(null, "", location.pathname + location.search);
  }

  async function loadDetail(id) {
    const [job, metrics] = await Promise.allSettled([api(jobPath(id)), api(jobPath(id, "/metrics"))]);
    // A succeeded job's compression report (stages and sensitivity); other jobs have none yet.
    state.report = null;
    state.deliveries = [];
    const hasWebhook = job.status === "fulfilled" && job.value && job.value.spec && job.value.spec.notify;
    if (hasWebhook && !ACTIVE.has(job.value.status)) {
      try { state.deliveries = listOf(await api(jobPath(id, "/deliveries")), "deliveries"); } catch (_) { state.deliveries = []; }
    }
    if (job.status === "fulfilled" && job.value && job.value.status === "succeeded") {
      try { state.report = await api(jobPath(id, "/report")); } catch (_) { state.report = null; }
    }
    if (state.selectedId !== id) return; // the selection changed while loading
    if (job.status === "rejected") {
      const error = job.reason;
      if (error instanceof ApiError && error.status === 404) {
        closeDetail();
        flash("Job " + id + " no longer exists");
        return;
      }
      throw error;
    }
    state.detail = job.value && typeof job.value === "object" ? job.value : { id };
    if (metrics.status === "fulfilled") {
      state.epochs = listOf(metrics.value, "epochs").filter((row) => row && isNum(row.epoch));
    }
    renderDetail();
    if (ACTIVE.has(state.detail.status)) follow(id); else stopFollowing();
  }

  // ---- live updates (Server-Sent Events) -----------------------------------

  /**
   * Reads a Server-Sent Events response with fetch (not EventSource, which cannot send the token)
   * and calls onEvent(event, payload) for each JSON event. Returns when the server ends the stream,
   * or "stop" when onEvent returns "stop"; throws when the request fails.
   */
  async function readEvents(path, { headers, signal, onOpen, onEvent, onRetry }) {
    const response = await fetch(path, { headers, signal, cache: "no-store" });
    if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
    if (onOpen) onOpen();
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let event = "message", data = null;
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data = (data || "") + line.slice(6);
          else if (line.startsWith("retry: ") && onRetry) onRetry(Number(line.slice(7)));
        }
        if (data === null) continue;
        let payload;
        try { payload = JSON.parse(data); } catch (_) { continue; }
        if (onEvent(event, payload) === "stop") { reader.cancel().catch(() => {}); return "stop"; }
      }
    }
  }

  /**
   * Keeps the jobs table live over GET /v1/events, one stream for all of the tenant's jobs: rows
   * change in place as epochs and states arrive; a job the table has not seen yet (submitted
   * elsewhere) or a finished one brings a re-list. Each (re)connection lists the jobs once, so
   * nothing that happened while disconnected is missed; polling slows down while it is open.
   */
  function watchJobs() {
    const watch = { controller: new AbortController(), connected: false, retryMs: 2000, events: 0 };
    state.jobsLive = watch;
    // The stream's state, in the DOM for the browser tests (and anyone inspecting the page).
    const mark = () => {
      const body = $("jobs-body");
      body.dataset.stream = watch.connected ? "open" : "closed";
      body.dataset.streamEvents = String(watch.events);
    };
    const run = async () => {
      while (state.jobsLive === watch) {
        try {
          await readEvents("/v1/events", {
            headers: authHeaders(), signal: watch.controller.signal,
            onOpen: () => { watch.connected = true; mark(); refresh(); },
            onRetry: (ms) => { watch.retryMs = ms || watch.retryMs; },
            onEvent: (event, payload) => { watch.events += 1; onJobsEvent(event, payload); mark(); },
          });
        } catch (error) {
          if (watch.controller.signal.aborted) return;
        }
        watch.connected = false;
        mark();
        await new Promise((resolve) => setTimeout(resolve, watch.retryMs));
      }
    };
    run();
  }

  let relistTimer = 0;
  /**
   * A re-list within 150 ms, once for a burst of events (a study queues many jobs at once). Not
   * pushed back by later events: a job's epochs can arrive faster than that, for as long as it trains.
   */
  function relistSoon() {
    if (relistTimer) return;
    relistTimer = setTimeout(() => { relistTimer = 0; refresh(); }, 150);
  }

  function onJobsEvent(event, payload) {
    if (!payload || typeof payload.id !== "string") return;
    const index = state.jobs.findIndex((j) => j.id === payload.id);
    if (index < 0) { relistSoon(); return; }
    const job = state.jobs[index];
    if (event === "status" && typeof payload.status === "string") {
      state.jobs[index] = Object.assign({}, job, { status: payload.status });
    } else if (event === "epoch" && isNum(payload.epoch)) {
      // An event relayed from a job's worker process may arrive after a listing that already counted its epoch.
      if (job.status === "running" && isNum(job.epoch) && payload.epoch < job.epoch) return;
      state.jobs[index] = Object.assign({}, job, {
        epoch: payload.epoch, epochs: isNum(payload.epochs) ? payload.epochs : job.epochs,
        progress: isNum(payload.progress) ? payload.progress : job.progress, latest: payload.latest || job.latest,
      });
    } else if (event === "done") {
      state.jobs[index] = Object.assign({}, job, payload);
      relistSoon(); // studies and counts follow their jobs
    } else return;
    renderJobs();
    state.lastUpdated = new Date();
    renderNotice();
  }

  /**
   * Follows the open job's GET /v1/jobs/{id}/events: epoch rows extend the charts as they come;
   * a dropped connection resumes with Last-Event-ID after the server's retry delay, so no epoch is
   * missed or drawn twice; done reloads the job.
   */
  function follow(id) {
    if (state.live && state.live.id === id) return;
    stopFollowing();
    const live = { id, controller: new AbortController(), connected: false, retryMs: 2000 };
    state.live = live;
    const run = async () => {
      while (state.live === live) {
        try {
          const headers = authHeaders();
          const last = state.epochs.length ? state.epochs[state.epochs.length - 1].epoch : null;
          if (last !== null) headers["Last-Event-ID"] = String(last);
          const ended = await readEvents(jobPath(id, "/events"), {
            headers, signal: live.controller.signal,
            onOpen: () => { live.connected = true; },
            onRetry: (ms) => { live.retryMs = ms || live.retryMs; },
            onEvent: (event, payload) => onServerEvent(live, event, payload),
          });
          if (ended === "stop") return;
        } catch (error) {
          if (live.controller.signal.aborted) return;
        }
        live.connected = false;
        await new Promise((resolve) => setTimeout(resolve, live.retryMs));
      }
    };
    run();
  }

  function stopFollowing() {
    if (state.live) state.live.controller.abort();
    state.live = null;
  }

  /** One event of the open job's stream; returns "stop" at the end of the job. */
  function onServerEvent(live, event, payload) {
    if (state.live !== live || !state.detail || state.detail.id !== live.id) return null;
    const detail = state.detail;
    if (event === "epoch" && isNum(payload.epoch)) {
      const last = state.epochs.length ? state.epochs[state.epochs.length - 1].epoch : 0;
      if (payload.epoch > last) state.epochs.push(payload);
      detail.epoch = payload.epoch;
      if (isNum(payload.epochs) && payload.epochs > 0) detail.progress = Math.min(1, payload.epoch / payload.epochs);
      detail.latest = Object.assign({}, detail.latest, payload);
      renderDetail();
    } else if (event === "status" && typeof payload.status === "string") {
      detail.status = payload.status;
      renderDetail();
    } else if (event === "done") {
      stopFollowing();
      loadDetail(live.id).catch(() => {});
      refresh();
      return "stop";
    }
    return null;
  }

  function renderDetail() {
    const job = state.detail;
    if (!job) return;
    const name = typeof job.name === "string" && job.name !== "" ? job.name : null;
    $("detail-title").replaceChildren(name || "(unnamed job)", " ", el("span", { class: "job-id" }, String(job.id)));

    const items = [];
    const add = (key, value) => {
      if (value === null || value === undefined || value === "—") return;
      items.push(el("div", { class: "item" }, el("span", { class: "k" }, key), el("span", { class: "v" }, value)));
    };
    add("Status", badge(job.status));
    if (isNum(job.epochs)) add("Epoch", `${isNum(job.epoch) ? job.epoch : 0} / ${job.epochs}`);
    if (isNum(job.progress)) add("Progress", Math.round(job.progress * 100) + "%");
    const latest = job.latest || {};
    add("Train loss", isNum(latest.train_loss) ? fmtNum(latest.train_loss) : null);
    add("Val loss", isNum(latest.val_loss) ? fmtNum(latest.val_loss) : null);
    add("Train accuracy", isNum(latest.train_accuracy) ? fmtPct(latest.train_accuracy) : null);
    add("Val accuracy", isNum(latest.val_accuracy) ? fmtPct(latest.val_accuracy) : null);
    add("Learning rate", isNum(latest.lr) ? fmtNum(latest.lr) : null);
    add("Samples/s", isNum(latest.samples_per_second) ? fmtInt(latest.samples_per_second) : null);
    const result = job.result && typeof job.result === "object" ? job.result : null;
    if (result) {
      add("Test accuracy", isNum(result.test_accuracy) ? fmtPct(result.test_accuracy) : null);
      add("Parameters", isNum(result.parameters) ? fmtInt(result.parameters) : null);
      add("Model size", isNum(result.model_bytes) ? fmtBytes(result.model_bytes) : null);
    }
    if (isNum(job.best_epoch)) add("Best epoch", String(job.best_epoch));
    if (job.stopped_early === true) add("Stopped early", "yes");
    if (isNum(job.attempt)) add("Attempt", String(job.attempt));
    if (isNum(job.priority) && job.priority !== 0) add("Priority", String(job.priority));
    if (typeof job.study_id === "string" && job.study_id !== "") {
      const studyId = job.study_id;
      add("Study", el("button", { type: "button", class: "btn wrap mono", onclick: () => selectStudy(studyId, true), "aria-label": "Show study " + studyId }, studyId));
    }
    add("Created", job.created_at ? fmtTime(job.created_at) : null);
    add("Started", job.started_at ? fmtTime(job.started_at) : null);
    add("Finished", job.finished_at ? fmtTime(job.finished_at) : null);
    const started = parseTime(job.started_at), finished = parseTime(job.finished_at);
    if (started !== null) add("Duration", fmtDuration(((finished !== null ? finished : Date.now()) - started) / 1000));

    const actions = el("div", { class: "item" });
    if (ACTIVE.has(job.status)) {
      actions.append(el("button", { type: "button", class: "btn btn-danger", onclick: (e) => cancelJob(String(job.id), e.currentTarget) }, "Cancel job"));
    } else if (job.status === "succeeded") {
      actions.append(downloadLink(String(job.id), name), " ", downloadLink(String(job.id), name, "onnx"));
    }
    if (actions.childNodes.length) items.push(actions);
    $("detail-summary").replaceChildren(...items);

    const errorBox = $("detail-error");
    if (job.error && (job.error.message || job.error.code)) {
      errorBox.replaceChildren(
        job.error.code ? el("code", null, String(job.error.code)) : "",
        job.error.code ? ": " : "",
        String(job.error.message || ""));
      errorBox.hidden = false;
    } else {
      errorBox.hidden = true;
    }

    setPre($("detail-spec"), job.spec === undefined ? "(no spec in the response)" : prettyJSON(job.spec));
    $("detail-result-box").hidden = !result;
    setPre($("detail-result"), result ? prettyJSON(result) : "");

    renderEpochTable();
    renderCompression();
    renderDeliveries();
    drawCharts();
  }

  /** The webhook's delivery log: one row per attempt. */
  function renderDeliveries() {
    const rows = state.deliveries || [];
    $("detail-deliveries-box").hidden = rows.length === 0;
    $("detail-deliveries").replaceChildren(...rows.map((d) => el("tr", null,
      el("td", { class: "num" }, String(d.attempt)),
      el("td", null, String(d.event)),
      el("td", null, d.delivered ? "delivered" : "failed"),
      el("td", { class: "num" }, isNum(d.status_code) ? String(d.status_code) : "—"),
      el("td", { class: "num" }, isNum(d.duration_ms) ? d.duration_ms.toFixed(0) + " ms" : "—"),
      el("td", null, d.attempted_at ? fmtTime(d.attempted_at) : "—"),
      el("td", null, d.error ? String(d.error) : ""))));
  }

  /** The compression pipeline's stages as a table, and the sensitivity analysis as a chart. */
  function renderCompression() {
    const report = state.report;
    const stages = report && Array.isArray(report.stages) ? report.stages : [];
    const box = $("detail-compression");
    box.hidden = stages.length <= 1 && !(report && report.sensitivity);
    if (box.hidden) return;
    const first = stages[0] || {};
    const rows = stages.map((stage) => el("tr", null,
      el("td", null, String(stage.name)),
      el("td", { class: "num" }, fmtInt(stage.parameters)),
      el("td", { class: "num" }, fmtInt(stage.nonzero)),
      el("td", { class: "num" }, isNum(stage.bytes) ? fmtBytes(stage.bytes) : "—"),
      el("td", { class: "num" }, isNum(stage.bytes) && isNum(first.bytes) && stage.bytes > 0 ? (first.bytes / stage.bytes).toFixed(2) + "×" : "—"),
      el("td", { class: "num" }, fmtPct(stage.test_accuracy)),
      el("td", { class: "num" }, isNum(stage.latency_ms_per_sample) ? (stage.latency_ms_per_sample * 1000).toFixed(1) + " µs" : "—"),
      el("td", null, stageDownloadLink(String(state.detail.id), String(stage.name)), " · ",
        stageDownloadLink(String(state.detail.id), String(stage.name), "onnx"))));
    $("detail-stages").replaceChildren(...rows);
    const table = report && report.sensitivity && typeof report.sensitivity === "object" ? report.sensitivity : null;
    $("sensitivity-figure").hidden = !table;
  }

  function drawSensitivity() {
    const report = state.report;
    const table = report && report.sensitivity && typeof report.sensitivity === "object" ? report.sensitivity : null;
    if (!table || $("detail-compression").hidden) return;
    const layers = Array.isArray(report.sensitivity_layers) ? report.sensitivity_layers : Object.keys(table).sort();
    const hasAccuracy = layers.some((layer) => (table[layer] || []).some((p) => isNum(p.val_accuracy)));
    const key = hasAccuracy ? "val_accuracy" : "val_loss";
    const series = layers.map((layer, index) => ({
      label: layer, color: STUDY_COLORS[index % STUDY_COLORS.length], dash: STUDY_DASHES[Math.floor(index / STUDY_COLORS.length) % STUDY_DASHES.length],
      points: (table[layer] || []).map((p) => ({ x: p.sparsity, y: isNum(p[key]) ? p[key] : null })),
    }));
    drawChart($("chart-sensitivity"), series, { percent: hasAccuracy, xMin: 0, xMax: 1, xStep: 0.1, xLabel: "sparsity", hoverX: null,
                                                empty: "no sensitivity analysis" });
    $("sensitivity-caption").textContent = "Sensitivity: validation " + (hasAccuracy ? "accuracy" : "loss") + " with one layer pruned";
  }

  /**
   * JSON with two-space indentation, but short arrays and small flat objects (a layer, the betas)
   * on one line, so that a spec reads like the one a user wrote.
   */
  function prettyJSON(value, indent = "") {
    const isFlat = (v) => v === null || typeof v !== "object" ||
      (Array.isArray(v) ? v.length === 0 : Object.keys(v).length === 0);
    if (isFlat(value)) return JSON.stringify(value) ?? "null";
    const inner = indent + "  ";
    if (Array.isArray(value)) {
      if (value.every(isFlat)) {
        const line = "[" + value.map((v) => JSON.stringify(v) ?? "null").join(", ") + "]";
        if (line.length + indent.length <= 96) return line;
      }
      return "[\n" + value.map((v) => inner + prettyJSON(v, inner)).join(",\n") + "\n" + indent + "]";
    }
    const entries = Object.entries(value);
    if (indent !== "" && entries.every(([, v]) => isFlat(v) || (Array.isArray(v) && v.every(isFlat)))) {
      const line = "{" + entries.map(([k, v]) => JSON.stringify(k) + ": " + prettyJSON(v, inner)).join(", ") + "}";
      if (line.length + indent.length <= 96 && !line.includes("\n")) return line;
    }
    return "{\n" + entries.map(([k, v]) => inner + JSON.stringify(k) + ": " + prettyJSON(v, inner)).join(",\n") + "\n" + indent + "}";
  }

  /** Replaces a <pre>'s text only when it changed, so its scroll position survives refreshes. */
  function setPre(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  /** The per-epoch table is built only while its <details> is open (a long job has thousands of rows). */
  function renderEpochTable() {
    const box = $("detail-epochs-box");
    box.hidden = state.epochs.length === 0;
    $("detail-no-metrics").hidden = state.epochs.length > 0 || !state.detail;
    if (!box.open) {
      $("detail-epochs").replaceChildren();
      return;
    }
    const rows = state.epochs.map((m) => el("tr", null,
      el("td", { class: "num" }, String(m.epoch)),
      el("td", { class: "num" }, fmtNum(m.train_loss)),
      el("td", { class: "num" }, fmtPct(m.train_accuracy)),
      el("td", { class: "num" }, fmtNum(m.val_loss)),
      el("td", { class: "num" }, fmtPct(m.val_accuracy)),
      el("td", { class: "num" }, fmtNum(m.lr)),
      el("td", { class: "num" }, isNum(m.seconds) ? m.seconds.toFixed(2) : "—"),
      el("td", { class: "num" }, fmtInt(m.samples_per_second))));
    $("detail-epochs").replaceChildren(...rows);
  }

  // ---- charts ------------------------------------------------------------

  function seriesFor(what) {
    const pick = (key) => state.epochs.map((m) => ({ x: m.epoch, y: isNum(m[key]) ? m[key] : null }));
    const out = [];
    const train = pick("train_" + what), val = pick("val_" + what);
    if (train.some((p) => p.y !== null)) out.push({ label: "train", color: COLORS.train, dash: [], points: train });
    if (val.some((p) => p.y !== null)) out.push({ label: "val", color: COLORS.val, dash: [6, 4], points: val });
    return out;
  }

  /** One per-epoch field as a single line (learning rate, gradient norm). */
  function singleSeries(key, label) {
    const points = state.epochs.map((m) => ({ x: m.epoch, y: isNum(m[key]) ? m[key] : null }));
    return points.some((p) => p.y !== null) ? [{ label, color: COLORS.train, dash: [], points }] : [];
  }

  function drawCharts() {
    if ($("detail").hidden) return;
    // While a job trains, the x axis spans all planned epochs so the curve grows across the chart;
    // a finished job (possibly stopped early, failed or cancelled) spans the epochs it ran.
    const d = state.detail;
    const xMax = d && ACTIVE.has(d.status) && isNum(d.epochs) ? d.epochs : null;
    const charts = [
      { canvas: $("chart-loss"), readout: $("readout-loss"), series: seriesFor("loss"), percent: false, empty: "no loss values yet" },
      { canvas: $("chart-acc"), readout: $("readout-acc"), series: seriesFor("accuracy"), percent: true,
        empty: state.epochs.length ? "no accuracy for this task" : "no accuracy values yet" },
      { canvas: $("chart-lr"), readout: $("readout-lr"), series: singleSeries("lr", "lr"), percent: false, empty: "no epochs yet" },
      { canvas: $("chart-grad"), readout: $("readout-grad"), series: singleSeries("grad_norm", "grad norm"), percent: false, empty: "no epochs yet" },
    ];
    for (const c of charts) {
      drawChart(c.canvas, c.series, { percent: c.percent, xMax, hoverX: state.hoverEpoch, empty: c.empty });
      c.readout.textContent = readoutText(c.series, c.percent, state.hoverEpoch);
    }
    drawSensitivity();
  }

  function readoutText(series, percent, hoverX) {
    if (!series.length) return "\u00a0";
    const xs = series.flatMap((s) => s.points.filter((p) => p.y !== null).map((p) => p.x));
    if (!xs.length) return "\u00a0";
    const x = hoverX !== null && xs.includes(hoverX) ? hoverX : Math.max(...xs);
    const parts = ["epoch " + x];
    for (const s of series) {
      const p = s.points.find((q) => q.x === x);
      if (p && p.y !== null) parts.push(s.label + " " + (percent ? fmtPct(p.y) : fmtNum(p.y)));
    }
    return parts.join(" · ");
  }

  /** A "nice" step (1, 2 or 5 × 10^k) close to `raw`. */
  function niceStep(raw) {
    if (!(raw > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / power;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * power;
  }

  function chartGeometry(canvas) {
    const width = canvas.clientWidth || 300, height = canvas.clientHeight || 200;
    return { width, height, left: 52, right: 14, top: 26, bottom: 26 };
  }

  function drawChart(canvas, series, opts) {
    const g = chartGeometry(canvas);
    const dpr = window.devicePixelRatio || 1;
    const pixelWidth = Math.round(g.width * dpr), pixelHeight = Math.round(g.height * dpr);
    if (canvas.width !== pixelWidth) canvas.width = pixelWidth;
    if (canvas.height !== pixelHeight) canvas.height = pixelHeight;
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, g.width, g.height);
    ctx.font = "11px system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif";
    ctx.textBaseline = "middle";

    const points = series.flatMap((s) => s.points.filter((p) => p.y !== null));
    // What the chart shows, for scripts and tests (a canvas has no DOM to inspect).
    canvas.dataset.points = String(points.length);
    canvas.dataset.series = String(series.length);
    if (!points.length) {
      ctx.fillStyle = "#5b6675";
      ctx.textAlign = "center";
      ctx.fillText(opts.empty || "no data", g.width / 2, g.height / 2);
      canvas._chart = null;
      return;
    }

    // Domains. The y axis turns logarithmic when the values span more than ~1.5 decades
    // (a loss that starts at 2 and ends at 0.001 would otherwise be a flat line at the bottom).
    const xsAll = points.map((p) => p.x);
    let x0 = Math.min(opts.xMin ?? 1, ...xsAll), x1 = Math.max(...xsAll, opts.xMax || 0);
    if (x1 <= x0) x1 = x0 + 1;
    const ys = points.map((p) => p.y);
    const minY = Math.min(...ys), maxY = Math.max(...ys);
    const isLog = !opts.percent && minY > 0 && maxY / minY > 30;
    let y0, y1;
    const ticks = []; // { at: value in axis units, label }
    if (isLog) {
      y0 = Math.floor(Math.log10(minY) + 1e-9);
      y1 = Math.ceil(Math.log10(maxY) - 1e-9);
      if (y1 <= y0) y1 = y0 + 1;
      const decades = y1 - y0;
      const multiples = decades <= 2 ? [1, 2, 5] : decades <= 4 ? [1, 3] : [1];
      const every = Math.max(1, Math.ceil(decades / 8));
      for (let d = y0; d <= y1; d += every) {
        for (const m of multiples) {
          const at = d + Math.log10(m);
          if (at <= y1 + 1e-9) ticks.push({ at, label: fmtTick(m * Math.pow(10, d)) });
        }
      }
    } else {
      y0 = minY; y1 = maxY;
      if (opts.percent) { y0 = Math.max(0, y0); y1 = Math.min(1, y1); }
      if (y1 - y0 < 1e-9) { const pad = Math.abs(y1) * 0.1 || (opts.percent ? 0.05 : 0.1); y0 -= pad; y1 += pad; }
      const span = y1 - y0;
      y0 -= span * 0.06; y1 += span * 0.06;
      if (opts.percent) { y0 = Math.max(0, y0); y1 = Math.min(1, y1); }
      else if (y0 < 0 && minY >= 0) y0 = 0;
      const yStep = niceStep((y1 - y0) / 4);
      y0 = Math.floor(y0 / yStep + 1e-9) * yStep;
      y1 = Math.ceil(y1 / yStep - 1e-9) * yStep;
      if (opts.percent) { y0 = Math.max(0, y0); y1 = Math.min(1, y1); }
      const decimals = Math.max(0, -Math.floor(Math.log10(yStep * (opts.percent ? 100 : 1)) + 1e-9));
      for (let i = 0, y = y0; y <= y1 + yStep * 1e-6 && i < 20; i += 1, y = y0 + i * yStep) {
        const label = opts.percent ? (y * 100).toFixed(Math.min(decimals, 2)) + "%"
          : (yStep < 1e-3 ? y.toExponential(1) : y.toFixed(Math.min(decimals, 4)));
        ticks.push({ at: y, label });
      }
    }

    const plotW = g.width - g.left - g.right, plotH = g.height - g.top - g.bottom;
    const sx = (x) => g.left + ((x - x0) / (x1 - x0)) * plotW;
    const axisY = (at) => g.top + (1 - (at - y0) / (y1 - y0)) * plotH;
    const sy = (y) => axisY(isLog ? Math.log10(y) : y);

    // Grid and y labels.
    ctx.strokeStyle = "#e8ecf1";
    ctx.lineWidth = 1;
    ctx.fillStyle = "#5b6675";
    ctx.textAlign = "right";
    for (const tick of ticks) {
      const py = Math.round(axisY(tick.at)) + 0.5;
      ctx.beginPath(); ctx.moveTo(g.left, py); ctx.lineTo(g.width - g.right, py); ctx.stroke();
      ctx.fillText(tick.label, g.left - 6, py);
    }
    if (isLog) {
      ctx.textBaseline = "middle";
      ctx.fillText("log scale", g.width - g.right, 12);
    }

    // X axis ticks (integer epochs).
    const xStep = opts.xStep || Math.max(1, niceStep((x1 - x0) / Math.max(2, Math.floor(plotW / 60))));
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const firstTick = Math.ceil(x0 / xStep) * xStep;
    for (let x = firstTick, i = 0; x <= x1 + 1e-9 && i < 40; x += xStep, i += 1) {
      const px = Math.round(sx(x)) + 0.5;
      ctx.strokeStyle = "#c9d0da";
      ctx.beginPath(); ctx.moveTo(px, g.top + plotH); ctx.lineTo(px, g.top + plotH + 4); ctx.stroke();
      ctx.fillText(String(Math.round(x * 100) / 100), px, g.top + plotH + 6);
    }
    ctx.strokeStyle = "#c9d0da";
    ctx.beginPath(); ctx.moveTo(g.left, g.top + plotH + 0.5); ctx.lineTo(g.width - g.right, g.top + plotH + 0.5); ctx.stroke();
    ctx.fillStyle = "#5b6675";
    ctx.textAlign = "right";
    ctx.textBaseline = "bottom";
    ctx.fillText(opts.xLabel || "epoch", g.width - g.right, g.height - 1);

    // Hover line.
    if (opts.hoverX !== null && opts.hoverX !== undefined && opts.hoverX >= x0 && opts.hoverX <= x1) {
      const px = Math.round(sx(opts.hoverX)) + 0.5;
      ctx.strokeStyle = "#9aa5b4";
      ctx.setLineDash([3, 3]);
      ctx.beginPath(); ctx.moveTo(px, g.top); ctx.lineTo(px, g.top + plotH); ctx.stroke();
      ctx.setLineDash([]);
    }

    // Lines (a missing value breaks the line) and dots.
    ctx.save();
    ctx.beginPath();
    ctx.rect(g.left - 4, g.top - 4, plotW + 8, plotH + 8);
    ctx.clip();
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.lineWidth = s.width || 2;
      ctx.lineJoin = "round";
      ctx.setLineDash(s.dash);
      ctx.beginPath();
      let penDown = false;
      for (const p of s.points) {
        if (p.y === null) { penDown = false; continue; }
        if (penDown) ctx.lineTo(sx(p.x), sy(p.y)); else ctx.moveTo(sx(p.x), sy(p.y));
        penDown = true;
      }
      ctx.stroke();
      ctx.setLineDash([]);
      const valid = s.points.filter((p) => p.y !== null);
      const radius = valid.length <= 30 ? 2.5 : 0;
      for (const p of valid) {
        const r = p.x === opts.hoverX ? 4 : radius;
        if (!r) continue;
        ctx.beginPath(); ctx.arc(sx(p.x), sy(p.y), r, 0, Math.PI * 2); ctx.fill();
      }
    }
    ctx.restore();

    // Legend (unless the caller lists the series itself, as the study chart does).
    if (opts.legend === false) { canvas._chart = { x0, x1, left: g.left, plotW, xs: [...new Set(xsAll)].sort((a, b) => a - b) }; return; }
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    let lx = g.left;
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 2;
      ctx.setLineDash(s.dash);
      ctx.beginPath(); ctx.moveTo(lx, 12); ctx.lineTo(lx + 20, 12); ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = "#1b2430";
      ctx.fillText(s.label, lx + 25, 12);
      lx += 25 + ctx.measureText(s.label).width + 16;
    }

    canvas._chart = { x0, x1, left: g.left, plotW, xs: [...new Set(xsAll)].sort((a, b) => a - b) };
  }

  /** The epoch of a chart nearest to the pointer, undefined when the chart is empty. */
  function epochUnderPointer(event) {
    const chart = event.currentTarget._chart;
    if (!chart) return undefined;
    const rect = event.currentTarget.getBoundingClientRect();
    const x = chart.x0 + ((event.clientX - rect.left - chart.left) / chart.plotW) * (chart.x1 - chart.x0);
    let best = null;
    for (const candidate of chart.xs) if (best === null || Math.abs(candidate - x) < Math.abs(best - x)) best = candidate;
    return best;
  }

  function onChartPointer(event) {
    const best = epochUnderPointer(event);
    if (best !== undefined && best !== state.hoverEpoch) { state.hoverEpoch = best; drawCharts(); }
  }

  function onChartLeave() {
    if (state.hoverEpoch !== null) { state.hoverEpoch = null; drawCharts(); }
  }


  // ---- studies -----------------------------------------------------------

  const studyRowCache = new Map(); // study id → { signature, row }

  function studyPath(id) {
    return "/v1/studies/" + encodeURIComponent(id);
  }

  /** "val_accuracy ↑" for a maximized objective, "val_loss ↓" for a minimized one. */
  function objectiveText(objective) {
    if (!objective || typeof objective !== "object") return "—";
    return String(objective.metric || "?") + (objective.mode === "max" ? " ↑" : objective.mode === "min" ? " ↓" : "");
  }

  function fmtObjective(metric, value) {
    return /accuracy$/.test(String(metric)) ? fmtPct(value) : fmtNum(value);
  }

  /** A parameter value as it reads in a job name: 0.01, sgd, an object with a type as sgd(lr=0.05, momentum=0.9). */
  function describeValue(value) {
    if (value === null || value === undefined) return "null";
    if (Array.isArray(value)) return "[" + value.map(describeValue).join(", ") + "]";
    if (typeof value === "object") {
      const keys = Object.keys(value).sort().filter((k) => !(typeof value.type === "string" && k === "type"));
      const rest = keys.map((k) => k + "=" + describeValue(value[k])).join(", ");
      if (typeof value.type === "string") return rest ? `${value.type}(${rest})` : value.type;
      return "{" + rest + "}";
    }
    if (typeof value === "number") return String(Number(value.toPrecision(6)));
    return String(value);
  }

  function describeParameters(parameters) {
    if (!parameters || typeof parameters !== "object") return "—";
    const keys = Object.keys(parameters).sort();
    return keys.length ? keys.map((k) => k + "=" + describeValue(parameters[k])).join(", ") : "—";
  }

  function renderStudies() {
    const body = $("studies-body");
    const rows = state.studies.map((st) => {
      const signature = JSON.stringify([st.status, st.name, st.counts, st.job_count, st.objective, st.created_at]);
      const cached = studyRowCache.get(st.id);
      if (cached && cached.signature === signature) return cached.row;
      const row = makeStudyRow(st);
      studyRowCache.set(st.id, { signature, row });
      return row;
    });
    rows.forEach((row, i) => {
      if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null);
    });
    while (body.children.length > rows.length) body.lastElementChild.remove();
    const present = new Set(state.studies.map((st) => st.id));
    for (const id of studyRowCache.keys()) if (!present.has(id)) studyRowCache.delete(id);
    for (const row of rows) row.classList.toggle("selected", row.dataset.id === state.selectedStudyId);
    $("studies-empty").hidden = rows.length > 0;
  }

  function makeStudyRow(st) {
    const id = String(st.id);
    const name = typeof st.name === "string" && st.name !== "" ? st.name : "(unnamed)";
    const counts = st.counts && typeof st.counts === "object" ? st.counts : {};
    const total = isNum(st.job_count) ? st.job_count : 0;
    const done = ["succeeded", "failed", "cancelled"].reduce((sum, k) => sum + (isNum(counts[k]) ? counts[k] : 0), 0);
    const p = total > 0 ? done / total : 0;
    const statusText = st.status === "running" && isNum(counts.running) && counts.running === 0 ? "queued" : st.status;
    const progress = el("div", { class: "progress" },
      el("div", {
        class: "bar " + statusClass(st.status), role: "progressbar",
        "aria-valuemin": "0", "aria-valuemax": String(total), "aria-valuenow": String(done),
        "aria-label": `${done} of ${total} jobs finished`,
      }, el("span", { style: `width:${(p * 100).toFixed(1)}%` })),
      el("span", { class: "label" }, `${done}/${total} jobs`));
    const open = () => selectStudy(id, true);
    return el("tr", {
      tabindex: "0", "data-id": id, "aria-label": "Show study " + name,
      onclick: open,
      onkeydown: (event) => {
        if (event.target === event.currentTarget && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); open(); }
      },
    },
      el("td", { class: "col-name" }, el("div", { class: "job-name" }, name), el("div", { class: "job-id" }, id)),
      el("td", { class: "col-status" }, badge(statusText)),
      el("td", { class: "col-progress" }, progress),
      el("td", { "data-label": "Objective" }, objectiveText(st.objective)),
      el("td", { class: "col-optional", "data-label": "Created" }, timeNode(st.created_at)));
  }

  function selectStudy(id, byUser) {
    if (state.selectedStudyId !== id) {
      state.selectedStudyId = id;
      state.study = null;
      state.studyMetrics = new Map();
      state.studyHoverEpoch = null;
      $("study-summary").replaceChildren(el("span", { class: "muted" }, "Loading…"));
      $("study-jobs").replaceChildren();
      $("study-legend").replaceChildren();
      $("study-title").textContent = id;
    }
    if (location.hash !== "#" + id) history.replaceState(null, "", "#" + encodeURIComponent(id));
    for (const row of $("studies-body").children) row.classList.toggle("selected", row.dataset.id === id);
    const section = $("study");
    section.hidden = false;
    drawStudyChart();
    if (byUser) section.scrollIntoView({ behavior: "smooth", block: "start" });
    loadStudy(id).catch((error) => {
      if (error instanceof ApiError && error.isUnreachable) { state.unreachable = true; renderNotice(); }
    }).finally(schedule);
  }

  function closeStudy() {
    state.selectedStudyId = null;
    state.study = null;
    state.studyMetrics = new Map();
    $("study").hidden = true;
    for (const row of $("studies-body").children) row.classList.remove("selected");
    if (location.hash.startsWith("#st_")) history.replaceState(null, "", location.pathname + location.search);
  }

  function studyNeedsReload() {
    const st = state.study;
    if (!st || st.id !== state.selectedStudyId) return true;
    if (st.status === "running") return true;
    const listed = state.studies.find((x) => x.id === st.id);
    return Boolean(listed && (listed.status !== st.status || listed.job_count !== (st.jobs || []).length));
  }

  /** The study, then the metrics of each job that changed since they were loaded (finished jobs are read once). */
  async function loadStudy(id) {
    let study;
    try {
      study = await api(studyPath(id));
    } catch (error) {
      if (state.selectedStudyId !== id) return;
      if (error instanceof ApiError && error.status === 404) {
        closeStudy();
        flash("Study " + id + " no longer exists");
        return;
      }
      throw error;
    }
    if (state.selectedStudyId !== id) return;
    const jobs = Array.isArray(study && study.jobs) ? study.jobs.filter((j) => j && j.id) : [];
    const stale = jobs.filter((j) => {
      const cached = state.studyMetrics.get(j.id);
      return !cached || cached.key !== `${j.status}/${j.epoch}`;
    });
    const loaded = await Promise.allSettled(stale.map((j) => api(jobPath(j.id, "/metrics"))));
    if (state.selectedStudyId !== id) return;
    stale.forEach((j, i) => {
      if (loaded[i].status !== "fulfilled") return;
      const rows = listOf(loaded[i].value, "epochs").filter((row) => row && isNum(row.epoch));
      state.studyMetrics.set(j.id, { key: `${j.status}/${j.epoch}`, rows });
    });
    state.study = { ...study, jobs };
    renderStudy();
  }

  /** The job's number in its study ("… #3 (…)"), which keeps its color while the ranking changes. */
  function jobNumber(job, fallback) {
    const match = /#(\d+)/.exec(typeof job.name === "string" ? job.name : "");
    return match ? Number(match[1]) - 1 : fallback;
  }

  function studyStyle(job, fallback) {
    const n = Math.max(0, jobNumber(job, fallback));
    return { color: STUDY_COLORS[n % STUDY_COLORS.length], dash: STUDY_DASHES[Math.floor(n / STUDY_COLORS.length) % STUDY_DASHES.length] };
  }

  function renderStudy() {
    const st = state.study;
    if (!st) return;
    const name = typeof st.name === "string" && st.name !== "" ? st.name : "(unnamed study)";
    $("study-title").replaceChildren(name, " ", el("span", { class: "job-id" }, String(st.id)));
    const metric = st.objective && st.objective.metric ? String(st.objective.metric) : "objective";

    const items = [];
    const add = (key, value) => {
      if (value === null || value === undefined) return;
      items.push(el("div", { class: "item" }, el("span", { class: "k" }, key), el("span", { class: "v" }, value)));
    };
    add("Status", badge(st.status));
    add("Objective", objectiveText(st.objective));
    add("Strategy", typeof st.strategy === "string" ? st.strategy : null);
    const counts = new Map();
    for (const j of st.jobs) counts.set(j.status, (counts.get(j.status) || 0) + 1);
    add("Jobs", [...counts.entries()].map(([k, n]) => `${n} ${k}`).join(", ") || "none");
    const best = st.jobs.find((j) => j.id === st.best_job);
    add("Created", st.created_at ? fmtTime(st.created_at) : null);
    if (best) {
      add("Best job", el("button", { type: "button", class: "btn best-job", onclick: () => selectJob(String(best.id), true),
        "aria-label": "Show the best job, " + best.id },
        `${fmtObjective(metric, best.objective_value)} · ${describeParameters(best.parameters)}`));
      items[items.length - 1].classList.add("wide");
    }
    $("study-summary").replaceChildren(...items);

    $("study-objective-head").textContent = metric;
    const rows = st.jobs.map((job, index) => {
      const style = studyStyle(job, index);
      const b = job.best && typeof job.best === "object" ? job.best : {};
      const open = () => selectJob(String(job.id), true);
      return el("tr", {
        tabindex: "0", "data-id": String(job.id), "aria-label": "Show details of job " + (job.name || job.id),
        class: job.id === st.best_job ? "best" : null,
        onclick: open,
        onkeydown: (event) => {
          if (event.target === event.currentTarget && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); open(); }
        },
      },
        el("td", { class: "num" }, isNum(job.rank) ? String(job.rank) : "—"),
        el("td", { class: "col-name" },
          el("div", { class: "job-id" }, el("span", { class: "swatch", style: `background:${style.color}`, "aria-hidden": "true" }), String(job.id)),
          job.error && job.error.message ? el("div", { class: "job-error" }, String(job.error.message)) : null),
        el("td", { class: "col-status" }, badge(job.status)),
        el("td", { class: "num" }, fmtObjective(metric, job.objective_value)),
        el("td", { class: "num" }, isNum(b.epoch) ? String(b.epoch) : "—"),
        el("td", { class: "num col-optional" }, fmtNum(b.val_loss)),
        el("td", { class: "num col-optional" }, fmtPct(b.val_accuracy)),
        el("td", { class: "params" }, describeParameters(job.parameters)));
    });
    $("study-jobs").replaceChildren(...rows);
    drawStudyChart();
  }

  /** One loss curve per job: val_loss, or train_loss for a job without validation values. */
  function studySeries() {
    const st = state.study;
    if (!st) return { series: [], usesTrain: false };
    let usesTrain = false;
    const series = st.jobs.map((job, index) => {
      const rows = (state.studyMetrics.get(job.id) || { rows: [] }).rows;
      const hasVal = rows.some((m) => isNum(m.val_loss));
      if (!hasVal && rows.some((m) => isNum(m.train_loss))) usesTrain = true;
      const key = hasVal ? "val_loss" : "train_loss";
      const style = studyStyle(job, index);
      return {
        label: (isNum(job.rank) ? "#" + job.rank + " " : "") + describeParameters(job.parameters) + (hasVal ? "" : " (train)"),
        color: style.color, dash: style.dash, width: job.id === st.best_job ? 3 : 2,
        points: rows.map((m) => ({ x: m.epoch, y: isNum(m[key]) ? m[key] : null })),
      };
    });
    return { series, usesTrain };
  }

  function drawStudyChart() {
    if ($("study").hidden) return;
    const st = state.study;
    const { series, usesTrain } = studySeries();
    const running = st && st.status === "running";
    const xMax = running ? Math.max(0, ...st.jobs.map((j) => (isNum(j.epochs) ? j.epochs : 0))) || null : null;
    drawChart($("chart-study"), series, { percent: false, xMax, hoverX: state.studyHoverEpoch, empty: st ? "no epochs finished yet" : "loading…", legend: false });
    $("study-chart-caption").textContent = usesTrain ? "Loss per epoch (val_loss; train_loss for jobs without validation)" : "Validation loss per epoch";

    // The legend, with each job's value at the hovered (or its last) epoch.
    const xs = series.flatMap((s) => s.points.filter((p) => p.y !== null).map((p) => p.x));
    const hover = state.studyHoverEpoch !== null && xs.includes(state.studyHoverEpoch) ? state.studyHoverEpoch : null;
    $("readout-study").textContent = hover !== null ? "epoch " + hover : xs.length ? "last epoch of each job" : "\u00a0";
    const items = series.map((s) => {
      const valid = s.points.filter((p) => p.y !== null);
      const point = hover !== null ? valid.find((p) => p.x === hover) : valid[valid.length - 1];
      const dashed = s.dash.length ? `repeating-linear-gradient(90deg, ${s.color} 0 5px, transparent 5px 8px)` : s.color;
      return el("li", null,
        el("span", { class: "legend-line", style: `background:${dashed}`, "aria-hidden": "true" }),
        el("span", { class: "legend-label", title: s.label }, s.label),
        el("span", { class: "legend-value" }, point ? fmtNum(point.y) : "—"));
    });
    $("study-legend").replaceChildren(...items);
  }

  // ---- datasets table ----------------------------------------------------

  function renderDatasets() {
    const rows = state.datasets.map((ds) => {
      const classes = Array.isArray(ds.classes) ? ds.classes : null;
      const classTitle = classes && classes.length ? classes.slice(0, 50).map(String).join(", ") + (classes.length > 50 ? ", …" : "") : null;
      return el("tr", null,
        el("td", { class: "job-name" }, typeof ds.name === "string" && ds.name !== "" ? ds.name : "(unnamed)"),
        el("td", { class: "ds-id" }, String(ds.id ?? "—")),
        el("td", { class: "num" }, fmtInt(ds.rows)),
        el("td", { class: "num" }, fmtInt(ds.features)),
        el("td", { class: "mono" }, Array.isArray(ds.shape) ? ds.shape.join("×") : "—"),
        el("td", null, typeof ds.task === "string" ? ds.task : "—"),
        el("td", { title: classTitle }, classes && classes.length
          ? `${classes.length}: ${classes.slice(0, 6).map(String).join(", ")}${classes.length > 6 ? ", …" : ""}` : "—"),
        el("td", { class: "col-optional" }, timeNode(ds.created_at)));
    });
    $("datasets-body").replaceChildren(...rows);
    $("datasets-empty").hidden = rows.length > 0;
  }

  // ---- start -------------------------------------------------------------

  function selectFromHash() {
    const raw = location.hash.replace(/^#/, "");
    if (!raw) return;
    let id;
    try { id = decodeURIComponent(raw); } catch { return; }
    if (!id) return;
    if (id.startsWith("st_")) { if (id !== state.selectedStudyId) selectStudy(id, false); }
    else if (id !== state.selectedId) selectJob(id, false);
  }

  function start() {
    $("detail-close").addEventListener("click", closeDetail);
    $("detail-epochs-box").addEventListener("toggle", renderEpochTable);
    for (const canvas of [$("chart-loss"), $("chart-acc"), $("chart-lr"), $("chart-grad")]) {
      canvas.addEventListener("mousemove", onChartPointer);
      canvas.addEventListener("mouseleave", onChartLeave);
    }
    $("study-close").addEventListener("click", closeStudy);
    $("chart-study").addEventListener("mousemove", (event) => {
      const best = epochUnderPointer(event);
      if (best !== undefined && best !== state.studyHoverEpoch) { state.studyHoverEpoch = best; drawStudyChart(); }
    });
    $("chart-study").addEventListener("mouseleave", () => {
      if (state.studyHoverEpoch !== null) { state.studyHoverEpoch = null; drawStudyChart(); }
    });
    let resizeFrame = 0;
    window.addEventListener("resize", () => {
      cancelAnimationFrame(resizeFrame);
      resizeFrame = requestAnimationFrame(() => { drawCharts(); drawStudyChart(); });
    });
    window.addEventListener("hashchange", selectFromHash);
    document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      if (state.selectedId) closeDetail();
      else if (state.selectedStudyId) closeStudy();
    });
    setUpEditor();
    selectFromHash();
    refresh();
    watchJobs();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
