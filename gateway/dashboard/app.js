// Weir dashboard: polls GET /v1/stats, derives rates from the counters,
// draws the charts on canvas, and reads records for the record browser.
// No dependencies and no build step: the gateway embeds this file.
"use strict";

const params = new URLSearchParams(location.search);
const INTERVAL = Math.max(250, Number(params.get("interval")) || 1000); // ms between polls
const HISTORY = 180; // samples kept for the charts
const SHOW_INTERNAL = params.has("internal"); // topics named __* (module storage) are hidden unless ?internal
const COLORS = ["#4fb3ff", "#3ecf8e", "#f5b041", "#ff6b6b", "#b48cff", "#ff8fd0", "#5ee6e6", "#c9d65b"];

const state = {
  prev: null,        // previous /v1/stats answer
  samples: [],       // {t, inRate: {topic: r}, outRate: number, lag: {group: n}}
  colors: new Map(), // series name → colour
  topics: [],
  browse: { topic: "", partition: 0, next: null, first: null },
};

const $ = (sel) => document.querySelector(sel);

function colorOf(name) {
  if (!state.colors.has(name)) state.colors.set(name, COLORS[state.colors.size % COLORS.length]);
  return state.colors.get(name);
}

function fmtNum(n) {
  if (n == null || Number.isNaN(n)) return "–";
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (n / 1e3).toFixed(1) + "k";
  if (a >= 100 || Number.isInteger(n)) return Math.round(n).toLocaleString("en-US");
  return n.toFixed(1);
}

function fmtBytes(n) {
  if (n == null || n < 0) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function fillTable(id, rows, empty) {
  const body = document.querySelector(`#${id} tbody`);
  const cols = document.querySelectorAll(`#${id} thead th`).length;
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: cols }, empty))]));
}

// With authentication on, requests carry the API token the user typed in
// (kept in this browser's localStorage), as a bearer token.
async function getJSON(url) {
  const headers = {};
  const token = localStorage.getItem("weirToken");
  if (token) headers.Authorization = "Bearer " + token;
  const r = await fetch(url, { cache: "no-store", headers });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401 || r.status === 403) $("#auth").hidden = false;
  if (!r.ok) throw new Error((body.error && body.error.message) || `HTTP ${r.status}`);
  return body;
}

$("#auth").addEventListener("submit", (e) => {
  e.preventDefault();
  localStorage.setItem("weirToken", $("#token").value.trim());
  $("#auth").hidden = true;
});

// ---- polling ----

async function poll() {
  try {
    const s = await getJSON("/v1/stats");
    update(s);
    $("#updated").textContent = "updated " + new Date(s.time).toLocaleTimeString();
  } catch (err) {
    $("#updated").textContent = "stats unavailable: " + err.message;
  } finally {
    setTimeout(poll, INTERVAL);
  }
}

// Cluster links (docs/geo-replication.md): admins only, every 5 s, each
// link described with its lag (the node asks the source). The panel stays
// hidden without links or without the rights (no login prompt for it).
async function pollLinks() {
  try {
    const headers = {};
    const token = localStorage.getItem("weirToken");
    if (token) headers.Authorization = "Bearer " + token;
    const get = async (u) => { const r = await fetch(u, { cache: "no-store", headers }); return r.ok ? r.json() : null; };
    const list = await get("/v1/links");
    const rows = [];
    for (const l of (list && list.links) || []) {
      const d = await get("/v1/links/" + encodeURIComponent(l.name));
      for (const m of (d && d.mirrors) || []) for (const p of m.partitions || []) {
        rows.push(el("tr", { title: d.lag_error || "" },
          el("td", {}, l.name), el("td", {}, m.topic + (m.promoted ? " (promoted)" : "")), el("td", { class: "num" }, p.partition),
          el("td", { class: "num" }, fmtNum(p.source_high_watermark)), el("td", { class: "num" }, fmtNum(p.high_watermark)),
          el("td", { class: "num lag" + (p.lag_records > 0 ? " warn" : "") }, fmtNum(p.lag_records)),
          el("td", { class: "num" + (p.lag_seconds >= 1 ? " warn" : "") }, p.lag_seconds.toFixed(2))));
      }
    }
    $("#links-panel").hidden = !(list && list.links && list.links.length);
    fillTable("links", rows, "no mirror topic yet");
  } catch (err) {
    // the stats poll reports connectivity problems
  } finally {
    setTimeout(pollLinks, 5000);
  }
}

function update(s) {
  if (!SHOW_INTERNAL) s.topics = s.topics.filter((t) => !t.name.startsWith("__"));
  const prev = state.prev;
  const dt = prev ? (s.time - prev.time) / 1000 : 0;
  const prevTopics = new Map((prev ? prev.topics : []).map((t) => [t.name, t]));
  const inRate = {}, outRate = {};
  let totalIn = 0, totalOut = 0;
  for (const t of s.topics) {
    const p = prevTopics.get(t.name);
    if (p && dt > 0) {
      inRate[t.name] = Math.max(0, (t.records_in - p.records_in) / dt);
      outRate[t.name] = Math.max(0, (t.records_out - p.records_out) / dt);
      totalIn += inRate[t.name];
      totalOut += outRate[t.name];
    }
  }
  const lagByGroup = {};
  let totalLag = 0;
  for (const g of s.groups) {
    lagByGroup[g.group] = (lagByGroup[g.group] || 0) + g.lag;
    totalLag += g.lag;
  }
  if (prev && dt > 0) {
    state.samples.push({ t: s.time, inRate, outRate: totalOut, lag: lagByGroup });
    if (state.samples.length > HISTORY) state.samples.shift();
  }
  state.prev = s;

  // Header and cards.
  $("#node").textContent = "node " + s.node.id;
  const ready = $("#ready");
  ready.textContent = s.node.ready ? "ready" : "not ready";
  ready.className = "pill " + (s.node.ready ? "ok" : "bad");
  $("#tracing").textContent = "tracing " + (s.node.tracing ? "on" : "off");
  $("#c-nodes").textContent = s.nodes.length;
  $("#c-topics").textContent = s.topics.length;
  $("#c-partitions").textContent = s.topics.reduce((n, t) => n + t.partitions.length, 0);
  $("#c-in").textContent = prev ? fmtNum(totalIn) : "–";
  $("#c-out").textContent = prev ? fmtNum(totalOut) : "–";
  $("#c-lag").textContent = fmtNum(totalLag);
  $("#c-ws").textContent = s.websocket.connections;
  $("#c-disk").textContent = fmtBytes(s.node.disk_bytes);

  // Tables.
  fillTable("topics", s.topics.map((t) => el("tr", { class: "clickable", "data-topic": t.name, onclick: () => browseTopic(t.name) },
    el("td", {}, el("span", { class: "swatch", style: `background:${colorOf(t.name)}` }), t.name),
    el("td", { class: "num" }, t.partitions.length),
    el("td", { class: "num" }, t.replication_factor),
    el("td", { class: "num" }, fmtNum(t.high_watermark)),
    el("td", { class: "num" }, prev ? fmtNum(inRate[t.name] || 0) : "–"),
    el("td", { class: "num" }, prev ? fmtNum(outRate[t.name] || 0) : "–"),
    el("td", { class: "num" }, fmtBytes(t.bytes_in)))), "no topics yet");
  fillTable("groups", s.groups.map((g) => el("tr", { "data-group": g.group, "data-topic": g.topic },
    el("td", {}, el("span", { class: "swatch", style: `background:${colorOf("group:" + g.group)}` }), g.group),
    el("td", {}, g.topic), el("td", { class: "num" }, g.partition), el("td", { class: "num" }, fmtNum(g.offset)),
    el("td", { class: "num lag" + (g.lag > 0 ? " warn" : "") }, fmtNum(g.lag)))), "no consumer group has committed offsets");
  const parts = [];
  for (const t of s.topics) for (const p of t.partitions) {
    parts.push(el("tr", { class: "clickable", onclick: () => browseTopic(t.name, p.partition) },
      el("td", {}, t.name), el("td", { class: "num" }, p.partition),
      el("td", { class: "num" + (p.leader ? "" : " bad") }, p.leader || "none"),
      el("td", {}, p.replicas.join(", ")), el("td", { class: "num" }, fmtNum(p.log_start_offset)),
      el("td", { class: "num" }, fmtNum(p.high_watermark)), el("td", { class: "num" }, p.leader_changes)));
  }
  fillTable("partitions", parts, "no partitions");
  fillTable("pipelines", s.pipelines.map((p) => el("tr", { "data-pipeline": p.name, title: p.last_error ? "last error: " + p.last_error : "" },
    el("td", {}, p.name), el("td", { class: p.state === "paused" ? "warn" : "" }, p.state || "–"),
    el("td", { class: "num processed" }, fmtNum(p.processed)),
    el("td", { class: "num" + (p.failed ? " bad" : "") }, fmtNum(p.failed)),
    el("td", { class: "num" + (p.dead_lettered ? " warn" : "") }, fmtNum(p.dead_lettered)),
    el("td", { class: "num" }, fmtNum(p.lag)),
    el("td", { class: "num" }, fmtNum(p.wasm_calls)))), "no pipelines");
  fillTable("nodes", s.nodes.map((n) => el("tr", {},
    el("td", { class: "num" }, n.id + (n.id === s.node.id ? " (this)" : "")), el("td", {}, n.http_addr), el("td", {}, n.raft_addr))), "–");

  updateBrowserChoices(s.topics);
  drawCharts();
}

// ---- charts ----

function drawChart(canvas, series, opts) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight || 220;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const pad = { l: 56, r: 12, t: 10, b: 38 };
  const pw = w - pad.l - pad.r, ph = h - pad.t - pad.b;
  const n = state.samples.length;
  let maxY = 0;
  for (const s of series) for (const v of s.values) if (v != null) maxY = Math.max(maxY, v);
  maxY = niceMax(maxY);
  g.font = "11px system-ui, sans-serif";
  g.strokeStyle = "#253041";
  g.fillStyle = "#7f8ea3";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = pad.t + ph - (ph * i) / 4;
    g.beginPath(); g.moveTo(pad.l, y); g.lineTo(pad.l + pw, y); g.stroke();
    g.textAlign = "right"; g.textBaseline = "middle";
    g.fillText(fmtNum((maxY * i) / 4), pad.l - 6, y);
  }
  if (n > 1) {
    const span = (state.samples[n - 1].t - state.samples[0].t) / 1000;
    g.textAlign = "left"; g.textBaseline = "top";
    g.fillText(`−${Math.round(span)} s`, pad.l, pad.t + ph + 4);
    g.textAlign = "right";
    g.fillText("now", pad.l + pw, pad.t + ph + 4);
  } else {
    g.textAlign = "center"; g.textBaseline = "middle";
    g.fillText("collecting samples…", pad.l + pw / 2, pad.t + ph / 2);
  }
  const x = (i) => pad.l + (n <= 1 ? pw : (pw * i) / (n - 1));
  const y = (v) => pad.t + ph - (ph * v) / maxY;
  for (const s of series) {
    g.strokeStyle = s.color;
    g.lineWidth = 2;
    g.setLineDash(s.dashed ? [6, 4] : []);
    g.beginPath();
    let started = false;
    s.values.forEach((v, i) => {
      if (v == null) { started = false; return; }
      if (!started) { g.moveTo(x(i), y(v)); started = true; } else g.lineTo(x(i), y(v));
    });
    g.stroke();
  }
  g.setLineDash([]);
  // Legend.
  let lx = pad.l;
  g.textAlign = "left"; g.textBaseline = "middle";
  for (const s of series.slice(0, 8)) {
    const label = s.label.length > 24 ? s.label.slice(0, 23) + "…" : s.label;
    g.fillStyle = s.color; g.fillRect(lx, h - 11, 10, 3);
    g.fillStyle = "#d8e0ea"; g.fillText(label, lx + 14, h - 10);
    lx += 24 + g.measureText(label).width;
    if (lx > w - 60) break;
  }
  if (!series.length) {
    g.fillStyle = "#7f8ea3"; g.fillText(opts.empty, pad.l, h - 10);
  }
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 4, 6, 8, 10]) if (m * p >= v) return m * p; // quarters stay round
  return 10 * p;
}

function drawCharts() {
  const topics = new Set();
  const groups = new Set();
  for (const s of state.samples) {
    Object.keys(s.inRate).forEach((t) => topics.add(t));
    Object.keys(s.lag).forEach((g) => groups.add(g));
  }
  const tput = [...topics].sort().map((t) => ({ label: t, color: colorOf(t), values: state.samples.map((s) => s.inRate[t] ?? null) }));
  if (state.samples.length) tput.push({ label: "out (all topics)", color: "#d8e0ea", dashed: true, values: state.samples.map((s) => s.outRate) });
  drawChart($("#chart-throughput"), tput, { empty: "no traffic yet" });
  const lag = [...groups].sort().map((g) => ({ label: g, color: colorOf("group:" + g), values: state.samples.map((s) => s.lag[g] ?? null) }));
  drawChart($("#chart-lag"), lag, { empty: "no consumer groups yet" });
}

// ---- record browser ----

function updateBrowserChoices(topics) {
  state.topics = topics;
  const sel = $("#b-topic");
  const names = topics.map((t) => t.name);
  const have = [...sel.options].map((o) => o.value);
  if (names.join("\n") !== have.join("\n")) {
    const cur = sel.value;
    sel.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(cur)) sel.value = cur;
    updatePartitionChoices();
  }
}

function updatePartitionChoices() {
  const t = state.topics.find((x) => x.name === $("#b-topic").value);
  const sel = $("#b-partition");
  const cur = sel.value;
  sel.replaceChildren(...(t ? t.partitions : []).map((p) => el("option", { value: p.partition }, p.partition)));
  if ([...sel.options].some((o) => o.value === cur)) sel.value = cur;
}

function browseTopic(topic, partition) {
  $("#b-topic").value = topic;
  updatePartitionChoices();
  if (partition != null) $("#b-partition").value = String(partition);
  $("#b-offset").value = "earliest";
  readRecords();
  $("#browser").scrollIntoView({ behavior: "smooth" });
}

async function readRecords(offset) {
  const topic = $("#b-topic").value;
  const partition = $("#b-partition").value;
  if (!topic) return;
  const off = offset ?? ($("#b-offset").value.trim() || "earliest");
  const max = Math.min(500, Math.max(1, Number($("#b-max").value) || 20));
  $("#b-status").textContent = "reading…";
  try {
    const r = await getJSON(`/v1/topics/${encodeURIComponent(topic)}/partitions/${partition}/records?offset=${encodeURIComponent(off)}&max_records=${max}`);
    state.browse = { topic, partition, next: r.next_offset, first: r.records.length ? r.records[0].offset : r.next_offset, max };
    $("#b-offset").value = String(state.browse.first);
    fillTable("records", r.records.map((rec) => el("tr", {},
      el("td", { class: "num" }, rec.offset),
      el("td", {}, new Date(rec.timestamp).toLocaleString()),
      el("td", { class: "wrap" }, rec.key == null ? "∅" : rec.key),
      el("td", { class: "wrap" }, rec.value),
      el("td", { class: "wrap" }, Object.entries(rec.headers || {}).map(([k, v]) => `${k}: ${v}`).join("\n")))), "no records at this offset");
    $("#b-status").textContent = `${r.records.length} records, log ${r.log_start_offset}…${r.high_watermark}`;
  } catch (err) {
    $("#b-status").textContent = err.message;
  }
}

$("#b-topic").addEventListener("change", updatePartitionChoices);
$("#browse").addEventListener("submit", (e) => { e.preventDefault(); readRecords(); });
$("#b-next").addEventListener("click", () => { if (state.browse.next != null) readRecords(String(state.browse.next)); });
$("#b-prev").addEventListener("click", () => {
  if (state.browse.first == null) return;
  readRecords(String(Math.max(0, state.browse.first - (state.browse.max || 20))));
});
window.addEventListener("resize", drawCharts);

poll();
pollLinks();
