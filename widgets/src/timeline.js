// The timeline: clips on one project axis, a canvas waveform drawn from the min/max pyramid
// (visible window only, one column per device pixel), a transcript lane, an edits lane, the
// proxy video preview and the "play the cut" / "before/after" previews.

import { act } from "./act.js";
import { buildPyramid } from "./peaks.js";
import { Player } from "./player.js";
import { ensureRoute, routeUrl } from "./route.js";
import {
  KIND_COLOR,
  KIND_LABEL,
  fmtTime,
  h,
  listen,
  lowerBound,
  nextStatus,
  projectDuration,
} from "./util.js";

const RULER = 22;
const WAVE = 112;
const WORDS = 26;
const EDITS = 26;
const HEIGHT = RULER + WAVE + WORDS + EDITS;
const MAX_BLOCKS = 400; // DOM edit blocks at once; beyond that the lane is canvas only
const MIN_DUR = 0.25; // seconds across the whole width at the deepest zoom
const BG = "#ffffff";
const WAVE_COLOR = "#3d6fb6";
const OVERRIDE_TTL = 5000;

const NICE_STEPS = [
  0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
];

export function renderTimeline({ model, root, bus, mount }) {
  const cleanups = [];
  const el = h("div", { class: "sapari-timeline", tabindex: "0" });

  // ---------------------------------------------------------------- toolbar
  const btn = (action, label, title) =>
    h("button", { type: "button", class: "sapari-btn", dataset: { action }, title }, label);
  const playBtn = btn("play", "▶ Play", "play / pause (space)");
  const cutBtn = btn("play-cut", "▶ Play the cut", "play skipping every accepted edit");
  const baBtn = btn("before-after", "Before/after", "the selected edit: 2 s around it, then cut");
  const zoomOut = btn("zoom-out", "−", "zoom out (-)");
  const zoomIn = btn("zoom-in", "+", "zoom in (+)");
  const fitBtn = btn("zoom-fit", "Fit", "show the whole project");
  const cutWordsBtn = btn("cut-words", "Cut words", "cut the selected words (Delete)");
  const timeLabel = h("span", { class: "sapari-time" }, "0:00.0");
  const phaseLabel = h("span", { class: "sapari-phase" });
  const toolbar = h(
    "div",
    { class: "sapari-toolbar" },
    playBtn, cutBtn, baBtn, h("span", { class: "sapari-sep" }),
    zoomOut, zoomIn, fitBtn, h("span", { class: "sapari-sep" }),
    cutWordsBtn, timeLabel, phaseLabel,
  );

  // ---------------------------------------------------------------- video + lanes
  const video = h("video", { class: "sapari-video", playsinline: true, preload: "metadata" });
  video.controls = true;
  const videoNote = h("div", { class: "sapari-note" });
  const videoBox = h("div", { class: "sapari-videobox" }, video, videoNote);
  const canvas = h("canvas", { class: "sapari-wave", height: HEIGHT });
  const blocks = h("div", { class: "sapari-edits", style: { top: `${RULER + WAVE + WORDS}px` } });
  const playheadLine = h("div", { class: "sapari-playhead-line" });
  const stack = h("div", { class: "sapari-stack", style: { height: `${HEIGHT}px` } },
    canvas, blocks, playheadLine);
  const info = h("div", { class: "sapari-info" });
  el.append(toolbar, h("div", { class: "sapari-preview" }, videoBox, info), stack);
  (mount || root).append(el);

  // ---------------------------------------------------------------- state
  let pyramid = { perSecond: 100, segments: [], peak: 1 };
  let clips = [];
  let words = [];
  let edits = []; // effective (with local overrides), sorted by t0
  let maxEditLen = 0;
  let total = 0;
  const overrides = new Map(); // id -> {status?, t0?, t1?, at}
  const view = { start: 0, dur: 60 };
  let autoFit = true; // follow the project's length until the user zooms or scrolls
  let width = 0;
  let dpr = window.devicePixelRatio || 1;
  let playhead = Number(model.get("playhead")) || 0;
  let lastSentPlayhead = null;
  let lastSentAt = 0;
  let selectedEdit = null;
  let wordSel = null; // {anchor, from, to}
  let dragSel = null; // {t0, t1} while drag-selecting on the waveform
  let pending = 0;
  let peaksArrivedAt = null; // performance.now() when peaks arrived and were not drawn yet
  let route = model.get("upload_route") || "";
  const urls = new Map();

  const g = canvas.getContext("2d", { alpha: false });

  // ---------------------------------------------------------------- data
  function loadPeaks() {
    const data = model.get("peaks");
    const meta = model.get("peaks_meta") || {};
    peaksArrivedAt = performance.now();
    pyramid = buildPyramid(data, meta);
    recomputeTotal();
    schedule();
  }

  function recomputeTotal() {
    let end = projectDuration(clips);
    for (const s of pyramid.segments) {
      end = Math.max(end, s.offset + s.count / pyramid.perSecond);
    }
    total = end;
    if (autoFit && total > 0) {
      view.start = 0;
      view.dur = total;
    }
    clampView();
  }

  function loadClips() {
    clips = (model.get("clips") || []).map((c) => ({ ...c, offset: Number(c.offset) || 0 }));
    updateUrls();
    recomputeTotal();
    schedule();
  }

  function updateUrls() {
    urls.clear();
    const server = model.get("server") || {};
    for (const c of clips) {
      const u = routeUrl(c.proxy_url, route, server);
      if (u) urls.set(c.id, u);
    }
    // Direct media on another origin must be fetched with CORS for WebAudio fades.
    if (route === "direct" && !video.getAttribute("src")) video.crossOrigin = "anonymous";
    const ready = clips.filter((c) => c.duration);
    if (!route) videoNote.textContent = "finding a route to the job server…";
    else if (route === "relay") {
      videoNote.textContent =
        "No video preview: this browser cannot reach the job server (relay route). " +
        "Playback runs on a silent clock.";
    } else if (ready.length && !ready.every((c) => urls.has(c.id))) {
      videoNote.textContent = "the preview appears once every clip has its proxy";
    } else videoNote.textContent = "";
    videoBox.dataset.route = route || "";
  }

  function loadWords() {
    words = model.get("words") || [];
    schedule();
  }

  function loadEdits() {
    const now = performance.now();
    const incoming = model.get("edits") || [];
    const byId = new Map(incoming.map((e) => [e.id, e]));
    for (const [id, o] of overrides) {
      const e = byId.get(id);
      const settled =
        !e ||
        now - o.at > OVERRIDE_TTL ||
        ((o.status === undefined || e.status === o.status) &&
          (o.t0 === undefined || Math.abs(e.t0 - o.t0) < 0.02) &&
          (o.t1 === undefined || Math.abs(e.t1 - o.t1) < 0.02));
      if (settled) overrides.delete(id);
    }
    applyOverrides(incoming);
  }

  function applyOverrides(incoming = model.get("edits") || []) {
    edits = incoming.map((e) => {
      const o = overrides.get(e.id);
      return o ? { ...e, ...stripAt(o) } : e;
    });
    edits.sort((a, b) => a.t0 - b.t0);
    maxEditLen = 0;
    for (const e of edits) maxEditLen = Math.max(maxEditLen, e.t1 - e.t0);
    if (player.mode === "cut") player.replaceSegments(cutSegments(player.time()));
    updateButtons();
    schedule();
  }

  function stripAt(o) {
    const { at, ...rest } = o;
    return rest;
  }

  // ---------------------------------------------------------------- geometry
  function clampView() {
    const maxDur = Math.max(total, MIN_DUR);
    view.dur = Math.min(Math.max(view.dur, MIN_DUR), maxDur);
    view.start = Math.min(Math.max(view.start, 0), Math.max(0, maxDur - view.dur));
  }
  const xOf = (t) => ((t - view.start) / view.dur) * width;
  const tOf = (x) => view.start + (x / Math.max(1, width)) * view.dur;

  function zoomAt(factor, x) {
    autoFit = false;
    const t = tOf(x);
    view.dur *= factor;
    clampView();
    view.start = t - (x / Math.max(1, width)) * view.dur;
    clampView();
    schedule();
  }

  function scrollBy(seconds) {
    autoFit = false;
    view.start += seconds;
    clampView();
    schedule();
  }

  function ensureVisible(t, center) {
    if (t < view.start || t > view.start + view.dur) {
      autoFit = false;
      view.start = center ? t - view.dur / 2 : t - view.dur * 0.1;
      clampView();
      schedule();
    }
  }

  function visibleEdits() {
    const s = view.start;
    const e = view.start + view.dur;
    const out = [];
    let i = lowerBound(edits, s - maxEditLen, (x) => x.t0);
    for (; i < edits.length && edits[i].t0 <= e; i += 1) {
      if (edits[i].t1 >= s) out.push(edits[i]);
    }
    return out;
  }

  // ---------------------------------------------------------------- drawing
  function schedule() {
    if (!pending) pending = requestAnimationFrame(draw);
  }

  function resize() {
    const w = Math.max(1, Math.floor(stack.clientWidth));
    const d = window.devicePixelRatio || 1;
    if (w === width && d === dpr) return;
    width = w;
    dpr = d;
    canvas.width = Math.round(w * d);
    canvas.height = Math.round(HEIGHT * d);
    canvas.style.width = `${w}px`;
    canvas.style.height = `${HEIGHT}px`;
    schedule();
  }

  const stats = { draws: 0, totalMs: 0, maxMs: 0, lastMs: 0 };
  root.sapariStats = stats; // read by widgets/test/smoke.py and the benchmark

  function draw() {
    const began = performance.now();
    pending = 0;
    if (!width) resize();
    const W = canvas.width;
    const Hd = canvas.height;
    g.setTransform(1, 0, 0, 1, 0, 0);
    g.fillStyle = BG;
    g.fillRect(0, 0, W, Hd);
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const vis = visibleEdits();
    drawRuler();
    drawEditShading(vis);
    const drewWave = drawWave();
    drawClipBounds();
    drawSelection();
    drawWords();
    drawEditLane(vis);
    updateBlocks(vis);
    placePlayhead();
    if (drewWave && peaksArrivedAt !== null) {
      const ms = performance.now() - peaksArrivedAt;
      peaksArrivedAt = null;
      root.dataset.firstDrawMs = ms.toFixed(1);
      root.dispatchEvent(new CustomEvent("sapari:first-draw", { detail: { ms } }));
    }
    const took = performance.now() - began;
    stats.draws += 1;
    stats.totalMs += took;
    stats.lastMs = took;
    if (took > stats.maxMs) stats.maxMs = took;
  }

  function drawRuler() {
    g.fillStyle = "#f3f5f8";
    g.fillRect(0, 0, width, RULER);
    g.fillStyle = "#dde2ea";
    g.fillRect(0, RULER - 1, width, 1);
    const perPx = view.dur / Math.max(1, width);
    const step = NICE_STEPS.find((s) => s / perPx >= 80) || 3600;
    const digits = step < 0.1 ? 2 : step < 1 ? 1 : 0;
    g.fillStyle = "#5b6472";
    g.font = "10px system-ui, sans-serif";
    g.textBaseline = "middle";
    const first = Math.ceil(view.start / step) * step;
    for (let t = first; t <= view.start + view.dur; t += step) {
      const x = Math.round(xOf(t)) + 0.5;
      g.fillRect(x, RULER - 7, 1, 6);
      g.fillText(fmtTime(t, digits), x + 3, 8);
    }
  }

  function drawEditShading(vis) {
    const top = RULER;
    for (const e of vis) {
      const x0 = xOf(e.t0);
      const w = Math.max(1, xOf(e.t1) - x0);
      const c = KIND_COLOR[e.kind] || "#888";
      g.globalAlpha = e.status === "accepted" ? 0.28 : e.status === "rejected" ? 0.06 : 0.14;
      g.fillStyle = c;
      g.fillRect(x0, top, w, WAVE);
    }
    g.globalAlpha = 1;
  }

  /** Draw the visible waveform; true when any peaks were drawn. */
  function drawWave() {
    const segs = pyramid.segments;
    const mid = RULER + WAVE / 2;
    g.fillStyle = "#e6eaf0";
    g.fillRect(0, mid, width, 1 / dpr);
    if (!segs.length || !width) return false;
    const ps = pyramid.perSecond;
    const Wd = Math.round(width * dpr);
    const secPerCol = view.dur / Wd;
    const basePerCol = secPerCol * ps;
    const level0 = Math.max(0, Math.floor(Math.log2(Math.max(1, basePerCol))));
    const scale = (WAVE / 2 - 3) / Math.max(pyramid.peak, 1);
    const tops = new Float32Array(Wd);
    const bots = new Float32Array(Wd);
    let drew = false;
    g.save();
    g.setTransform(1, 0, 0, 1, 0, 0); // device pixels: one column each
    g.fillStyle = WAVE_COLOR;
    const midD = mid * dpr;
    const scaleD = scale * dpr;
    for (const seg of segs) {
      const segEnd = seg.offset + seg.count / ps;
      if (segEnd <= view.start || seg.offset >= view.start + view.dur) continue;
      const level = Math.min(level0, seg.levels.length - 1);
      const arr = seg.levels[level];
      const n = arr.length >> 1;
      const per = ps / (1 << level); // pairs per second at this level
      const c0 = Math.max(0, Math.floor((seg.offset - view.start) / secPerCol));
      const c1 = Math.min(Wd, Math.ceil((segEnd - view.start) / secPerCol));
      if (c1 <= c0) continue;
      for (let c = c0; c < c1; c += 1) {
        const ta = view.start + c * secPerCol - seg.offset;
        let a = Math.floor(ta * per);
        let b = Math.floor((ta + secPerCol) * per);
        if (a < 0) a = 0;
        if (b <= a) b = a + 1;
        if (b > n) b = n;
        let lo = 32767;
        let hi = -32768;
        for (let i = a; i < b; i += 1) {
          const mn = arr[2 * i];
          const mx = arr[2 * i + 1];
          if (mn < lo) lo = mn;
          if (mx > hi) hi = mx;
        }
        if (hi < lo) {
          lo = 0;
          hi = 0;
        }
        tops[c] = midD - hi * scaleD - 0.5;
        bots[c] = midD - lo * scaleD + 0.5;
      }
      g.beginPath();
      g.moveTo(c0, tops[c0]);
      for (let c = c0; c < c1; c += 1) {
        g.lineTo(c, tops[c]);
        g.lineTo(c + 1, tops[c]);
      }
      for (let c = c1 - 1; c >= c0; c -= 1) {
        g.lineTo(c + 1, bots[c]);
        g.lineTo(c, bots[c]);
      }
      g.closePath();
      g.fill();
      drew = true;
    }
    g.restore();
    // Accepted edits: fade the audio they remove.
    g.fillStyle = "rgba(255,255,255,0.55)";
    for (const e of visibleEdits()) {
      if (e.status !== "accepted") continue;
      const x0 = xOf(e.t0);
      g.fillRect(x0, RULER, Math.max(1, xOf(e.t1) - x0), WAVE);
    }
    return drew;
  }

  function drawClipBounds() {
    g.font = "10px system-ui, sans-serif";
    g.textBaseline = "top";
    for (const c of clips) {
      if (c.duration == null) continue;
      const x = Math.round(xOf(c.offset)) + 0.5;
      if (x < -200 || x > width) continue;
      g.fillStyle = "#1f2a3a";
      g.fillRect(x, RULER, 1, WAVE + WORDS);
      g.fillStyle = "rgba(31,42,58,0.75)";
      const label = c.filename || c.id;
      g.fillText(label, Math.max(x + 4, 4), RULER + 3, 240);
    }
  }

  function drawSelection() {
    if (!dragSel) return;
    const x0 = xOf(Math.min(dragSel.t0, dragSel.t1));
    const x1 = xOf(Math.max(dragSel.t0, dragSel.t1));
    g.fillStyle = "rgba(90,110,224,0.25)";
    g.fillRect(x0, RULER, x1 - x0, WAVE);
    g.fillStyle = "rgba(90,110,224,0.9)";
    g.fillRect(x0, RULER, 1, WAVE);
    g.fillRect(x1, RULER, 1, WAVE);
  }

  function drawWords() {
    const top = RULER + WAVE;
    g.fillStyle = "#f7f8fa";
    g.fillRect(0, top, width, WORDS);
    if (!words.length) {
      g.fillStyle = "#98a1ae";
      g.font = "11px system-ui, sans-serif";
      g.textBaseline = "middle";
      g.fillText("no transcript yet: run the analysis", 6, top + WORDS / 2);
      return;
    }
    const s = view.start;
    const e = view.start + view.dur;
    const i0 = lowerBound(words, s, (w) => w[1]);
    const perPx = view.dur / Math.max(1, width);
    const showText = (6 * perPx) < 0.25; // about 6 px per character is readable
    g.font = "11px system-ui, sans-serif";
    g.textBaseline = "middle";
    let lastX = -10;
    for (let i = i0; i < words.length && words[i][0] <= e; i += 1) {
      const w = words[i];
      const x0 = xOf(w[0]);
      const x1 = xOf(w[1]);
      const selected = wordSel && i >= wordSel.from && i <= wordSel.to;
      if (!selected && x1 - lastX < 1) continue; // many words per pixel: one mark per pixel
      lastX = x1;
      g.fillStyle = selected ? "rgba(90,110,224,0.45)" : i % 2 ? "#e3e8f0" : "#d5dce7";
      g.fillRect(x0, top + 4, Math.max(1, x1 - x0 - 1), WORDS - 8);
      if (showText && x1 - x0 > 10) {
        g.fillStyle = "#1f2a3a";
        g.fillText(String(w[2]), x0 + 2, top + WORDS / 2, Math.max(8, x1 - x0 - 3));
      }
    }
  }

  function drawEditLane(vis) {
    const top = RULER + WAVE + WORDS;
    g.fillStyle = "#fbfbfc";
    g.fillRect(0, top, width, EDITS);
    for (const e of vis) {
      const x0 = xOf(e.t0);
      const w = Math.max(1, xOf(e.t1) - x0);
      g.globalAlpha = e.status === "accepted" ? 0.95 : e.status === "rejected" ? 0.25 : 0.6;
      g.fillStyle = KIND_COLOR[e.kind] || "#888";
      g.fillRect(x0, top + 4, w, EDITS - 8);
    }
    g.globalAlpha = 1;
  }

  const blockEls = new Map(); // id -> element
  function updateBlocks(vis) {
    const show = vis.length <= MAX_BLOCKS ? vis : [];
    blocks.classList.toggle("sapari-dense", vis.length > MAX_BLOCKS);
    const keep = new Set();
    for (const e of show) {
      keep.add(e.id);
      let node = blockEls.get(e.id);
      if (!node) {
        node = h("div", { class: "sapari-edit" },
          h("div", { class: "sapari-edge", dataset: { edge: "t0" } }),
          h("span", { class: "sapari-edit-label" }),
          h("div", { class: "sapari-edge", dataset: { edge: "t1" } }));
        node.dataset.editId = e.id;
        blocks.append(node);
        blockEls.set(e.id, node);
      }
      const x0 = xOf(e.t0);
      const w = Math.max(3, xOf(e.t1) - x0);
      node.style.transform = `translateX(${x0.toFixed(1)}px)`;
      node.style.width = `${w.toFixed(1)}px`;
      if (node.dataset.status !== e.status) node.dataset.status = e.status;
      if (node.dataset.kind !== e.kind) node.dataset.kind = e.kind;
      node.classList.toggle("sapari-selected", e.id === selectedEdit);
      const label = w > 60 ? KIND_LABEL[e.kind] || e.kind : "";
      const span = node.children[1];
      if (span.textContent !== label) span.textContent = label;
      node.title = `${KIND_LABEL[e.kind] || e.kind} (${e.status}) ${fmtTime(e.t0)}–` +
        `${fmtTime(e.t1)}${e.reason ? `: ${e.reason}` : ""}`;
    }
    for (const [id, node] of blockEls) {
      if (!keep.has(id)) {
        node.remove();
        blockEls.delete(id);
      }
    }
  }

  function placePlayhead() {
    const x = xOf(playhead);
    playheadLine.style.transform = `translateX(${x.toFixed(1)}px)`;
    playheadLine.style.display = x < 0 || x > width ? "none" : "";
    timeLabel.textContent = `${fmtTime(playhead)} / ${fmtTime(total)}`;
  }

  // ---------------------------------------------------------------- playback
  function cutSegments(from) {
    const cuts = edits.filter((e) => e.status === "accepted").map((e) => [e.t0, e.t1]);
    cuts.sort((a, b) => a[0] - b[0]);
    const segs = [];
    let t = Math.max(0, from);
    for (const [a, b] of cuts) {
      if (b <= t) continue;
      if (a > t) segs.push([t, a]);
      t = Math.max(t, b);
    }
    if (t < total) segs.push([t, total]);
    return segs;
  }

  function setPlayhead(t, playing) {
    playhead = t;
    root.dataset.playhead = t.toFixed(3);
    placePlayhead();
    if (playing) ensureVisible(t, false);
    const now = performance.now();
    // Trait updates are throttled while playing (4/s); a stop or seek is sent at once.
    if (!playing || now - lastSentAt > 250) {
      lastSentAt = now;
      lastSentPlayhead = t;
      model.set("playhead", t);
      model.save_changes();
    }
  }

  const player = new Player(
    video,
    () => ({ clips, urls, total }),
    (t, playing) => setPlayhead(t, playing),
    (mode, phase) => {
      playBtn.textContent = mode === "play" ? "❚❚ Pause" : "▶ Play";
      cutBtn.textContent = mode === "cut" ? "❚❚ Stop" : "▶ Play the cut";
      baBtn.textContent = mode === "ba" ? "❚❚ Stop" : "Before/after";
      phaseLabel.textContent = mode === "ba" ? phase : mode === "cut" ? "playing the cut" : "";
      root.dataset.playing = mode || "";
    },
  );

  function seekTo(t, { send = true } = {}) {
    t = Math.max(0, Math.min(total, t));
    player.seek(t);
    playhead = t;
    root.dataset.playhead = t.toFixed(3);
    ensureVisible(t, true);
    placePlayhead();
    if (send) {
      lastSentPlayhead = t;
      model.set("playhead", t);
      model.save_changes();
    }
  }

  function togglePlay(mode) {
    if (player.mode === mode) {
      player.stop();
      return;
    }
    if (mode === "play") player.start("play", [[playhead >= total - 0.05 ? 0 : playhead, total]]);
    else if (mode === "cut") {
      player.start("cut", cutSegments(playhead >= total - 0.05 ? 0 : playhead));
    } else if (mode === "ba") {
      const e = edits.find((x) => x.id === selectedEdit);
      if (!e) return;
      const a = Math.max(0, e.t0 - 2);
      const b = Math.min(total, e.t1 + 2);
      player.start("ba", [[a, b], [a, e.t0], [e.t1, b]], "before");
    }
  }

  function updateButtons() {
    baBtn.disabled = !edits.some((x) => x.id === selectedEdit);
    cutWordsBtn.disabled = !wordSel;
    const n = clips.filter((c) => c.status === "ready").length;
    info.textContent = clips.length
      ? `${clips.length} clip${clips.length > 1 ? "s" : ""} (${n} ready), ${fmtTime(total)}; ` +
        `${edits.length} edits, ${edits.filter((e) => e.status === "accepted").length} accepted`
      : "no clips yet: upload a recording";
  }

  // ---------------------------------------------------------------- actions
  function setStatus(e, status) {
    overrides.set(e.id, { ...(overrides.get(e.id) || {}), status, at: performance.now() });
    act(model, { type: "set_status", ids: [e.id], status });
    const node = blockEls.get(e.id);
    if (node) node.dataset.status = status; // at once, not at the next frame
    bus.dispatchEvent(new CustomEvent("status", { detail: { ids: [e.id], status, from: el } }));
    applyOverrides();
  }

  function selectEdit(id) {
    selectedEdit = id;
    bus.dispatchEvent(new CustomEvent("select-edit", { detail: { id } }));
    updateButtons();
    schedule();
  }

  function cutWords() {
    if (!wordSel) return;
    act(model, { type: "cut_words", from: wordSel.from, to: wordSel.to });
    wordSel = null;
    updateButtons();
    schedule();
  }

  function wordIndexAt(t) {
    if (!words.length) return -1;
    let i = lowerBound(words, t, (w) => w[1]);
    if (i >= words.length) i = words.length - 1;
    if (i > 0 && t < words[i][0] && t - words[i - 1][1] < words[i][0] - t) i -= 1;
    return i;
  }

  // ---------------------------------------------------------------- pointer
  let drag = null;
  function localX(ev) {
    const r = stack.getBoundingClientRect();
    return { x: ev.clientX - r.left, y: ev.clientY - r.top };
  }

  function onPointerDown(ev) {
    if (ev.button !== 0) return;
    el.focus({ preventScroll: true });
    const { x, y } = localX(ev);
    const t = tOf(x);
    const edge = ev.target.closest && ev.target.closest(".sapari-edge");
    const block = ev.target.closest && ev.target.closest(".sapari-edit");
    stack.setPointerCapture(ev.pointerId);
    if (block) {
      const e = edits.find((x2) => x2.id === block.dataset.editId);
      if (!e) return;
      drag = edge
        ? { kind: "edge", e, edge: edge.dataset.edge, x0: x, moved: false }
        : { kind: "edit", e, x0: x, moved: false, shift: ev.shiftKey };
    } else if (y < RULER) {
      drag = { kind: "ruler", x0: x };
      seekTo(t);
    } else if (y < RULER + WAVE) {
      drag = { kind: "wave", x0: x, t0: t, moved: false };
    } else if (y < RULER + WAVE + WORDS) {
      const i = wordIndexAt(t);
      if (i < 0) return;
      if (ev.shiftKey && wordSel) {
        wordSel = { anchor: wordSel.anchor, from: Math.min(wordSel.anchor, i),
          to: Math.max(wordSel.anchor, i) };
      } else wordSel = { anchor: i, from: i, to: i };
      drag = { kind: "words", x0: x, moved: false, shift: ev.shiftKey, index: i };
      updateButtons();
      schedule();
    } else {
      // Edits lane without DOM blocks (too many visible): hit-test on the canvas.
      const hit = visibleEdits().filter((e) => t >= e.t0 - view.dur / width * 2 &&
        t <= e.t1 + view.dur / width * 2);
      if (hit.length) drag = { kind: "edit", e: hit[0], x0: x, moved: false, shift: ev.shiftKey };
    }
    ev.preventDefault();
  }

  function onPointerMove(ev) {
    if (!drag) return;
    const { x } = localX(ev);
    const t = tOf(x);
    if (Math.abs(x - drag.x0) > 3) drag.moved = true;
    if (drag.kind === "ruler") seekTo(t);
    else if (drag.kind === "wave" && drag.moved) {
      dragSel = { t0: drag.t0, t1: t };
      schedule();
    } else if (drag.kind === "words" && drag.moved) {
      const i = wordIndexAt(t);
      if (i >= 0) {
        wordSel = { anchor: wordSel.anchor, from: Math.min(wordSel.anchor, i),
          to: Math.max(wordSel.anchor, i) };
        updateButtons();
        schedule();
      }
    } else if (drag.kind === "edge" && drag.moved) {
      const e = drag.e;
      const o = { ...(overrides.get(e.id) || {}), at: performance.now() };
      const cur = edits.find((x2) => x2.id === e.id) || e;
      if (drag.edge === "t0") o.t0 = Math.min(t, cur.t1 - 0.01);
      else o.t1 = Math.max(t, cur.t0 + 0.01);
      overrides.set(e.id, o);
      applyOverrides();
    }
  }

  function onPointerUp(ev) {
    if (!drag) return;
    const d = drag;
    drag = null;
    try {
      stack.releasePointerCapture(ev.pointerId);
    } catch {
      /* already released */
    }
    const { x } = localX(ev);
    if (d.kind === "edit" && !d.moved) {
      selectEdit(d.e.id);
      const cur = edits.find((x2) => x2.id === d.e.id) || d.e;
      setStatus(cur, nextStatus(cur.status, d.shift));
    } else if (d.kind === "edge") {
      const cur = edits.find((x2) => x2.id === d.e.id);
      if (d.moved && cur) {
        act(model, { type: "set_bounds", id: cur.id, t0: round3(cur.t0), t1: round3(cur.t1) });
      } else selectEdit(d.e.id);
    } else if (d.kind === "wave") {
      if (d.moved && dragSel) {
        const t0 = Math.max(0, Math.min(dragSel.t0, dragSel.t1));
        const t1 = Math.min(total, Math.max(dragSel.t0, dragSel.t1));
        if (t1 - t0 > 0.01) act(model, { type: "add_cut", t0: round3(t0), t1: round3(t1) });
      } else seekTo(tOf(x));
      dragSel = null;
      schedule();
    } else if (d.kind === "words" && !d.moved && !d.shift) {
      seekTo(words[d.index][0]);
    }
  }

  const round3 = (v) => Math.round(v * 1000) / 1000;

  // ---------------------------------------------------------------- wheel + keys
  function onWheel(ev) {
    ev.preventDefault();
    const unit = ev.deltaMode === 1 ? 16 : ev.deltaMode === 2 ? width : 1;
    const { x } = localX(ev);
    if (ev.ctrlKey || ev.metaKey) {
      // Pinch on a trackpad arrives as ctrl+wheel with small deltas; a mouse wheel step as ~100.
      const f = Math.exp(Math.max(-1, Math.min(1, ev.deltaY * unit * 0.01)));
      zoomAt(f, x);
      return;
    }
    const dx = Math.abs(ev.deltaX) > Math.abs(ev.deltaY) ? ev.deltaX : ev.deltaY;
    scrollBy((dx * unit * view.dur) / Math.max(1, width));
  }

  function onKey(ev) {
    if (ev.target !== el && ev.target.tagName !== "CANVAS") return;
    const k = ev.key;
    let handled = true;
    const cx = Math.min(Math.max(xOf(playhead), 0), width) || width / 2;
    if (k === "+" || k === "=") zoomAt(1 / 1.5, cx);
    else if (k === "-" || k === "_") zoomAt(1.5, cx);
    else if (k === "ArrowLeft") scrollBy(-view.dur * (ev.shiftKey ? 0.5 : 0.1));
    else if (k === "ArrowRight") scrollBy(view.dur * (ev.shiftKey ? 0.5 : 0.1));
    else if (k === "Home") scrollBy(-total);
    else if (k === "End") scrollBy(total);
    else if (k === " ") togglePlay("play");
    else if ((k === "Delete" || k === "Backspace") && wordSel) cutWords();
    else if (k === "Escape") {
      wordSel = null;
      dragSel = null;
      updateButtons();
      schedule();
    } else handled = false;
    if (handled) {
      // Keep JupyterLab's command-mode shortcuts from seeing keys meant for the timeline.
      ev.preventDefault();
      ev.stopPropagation();
    }
  }

  // ---------------------------------------------------------------- wiring
  const on = (node, type, fn, opts) => {
    node.addEventListener(type, fn, opts);
    cleanups.push(() => node.removeEventListener(type, fn, opts));
  };
  on(stack, "pointerdown", onPointerDown);
  on(stack, "pointermove", onPointerMove);
  on(stack, "pointerup", onPointerUp);
  on(stack, "pointercancel", onPointerUp);
  on(stack, "wheel", onWheel, { passive: false });
  on(el, "keydown", onKey);
  on(playBtn, "click", () => togglePlay("play"));
  on(cutBtn, "click", () => togglePlay("cut"));
  on(baBtn, "click", () => togglePlay("ba"));
  on(zoomIn, "click", () => zoomAt(1 / 1.5, Math.min(Math.max(xOf(playhead), 0), width)));
  on(zoomOut, "click", () => zoomAt(1.5, Math.min(Math.max(xOf(playhead), 0), width)));
  on(fitBtn, "click", () => {
    autoFit = true;
    view.start = 0;
    view.dur = total || 60;
    clampView();
    schedule();
  });
  on(cutWordsBtn, "click", cutWords);

  const onSeekBus = (ev) => seekTo(ev.detail.t, { send: false });
  const onSelectBus = (ev) => {
    if (ev.detail.id !== selectedEdit) {
      selectedEdit = ev.detail.id;
      updateButtons();
      schedule();
    }
  };
  // Another view on this model (the review table) changed statuses: show them at once.
  const onStatusBus = (ev) => {
    if (ev.detail.from === el) return;
    const at = performance.now();
    for (const id of ev.detail.ids) {
      overrides.set(id, { ...(overrides.get(id) || {}), status: ev.detail.status, at });
    }
    applyOverrides();
  };
  bus.addEventListener("status", onStatusBus);
  cleanups.push(() => bus.removeEventListener("status", onStatusBus));
  bus.addEventListener("seek", onSeekBus);
  bus.addEventListener("select-edit", onSelectBus);
  cleanups.push(() => {
    bus.removeEventListener("seek", onSeekBus);
    bus.removeEventListener("select-edit", onSelectBus);
  });

  cleanups.push(listen(model, ["peaks", "peaks_meta"], loadPeaks));
  cleanups.push(listen(model, ["clips"], loadClips));
  cleanups.push(listen(model, ["words"], loadWords));
  cleanups.push(listen(model, ["edits"], loadEdits));
  cleanups.push(listen(model, ["server"], () => updateUrls()));
  cleanups.push(listen(model, ["upload_route"], () => {
    route = model.get("upload_route") || route;
    updateUrls();
  }));
  // Show the preview's first frame as soon as it can load, not only after a seek or play.
  function primeVideo() {
    if (player.mode || video.getAttribute("src")) return;
    if (route !== "direct" && route !== "proxy") return;
    video.preload = "metadata";
    player.seek(playhead);
  }
  cleanups.push(listen(model, ["clips", "server", "upload_route"], () => primeVideo()));
  primeVideo();
  cleanups.push(listen(model, ["playhead"], () => {
    const t = Number(model.get("playhead")) || 0;
    if (lastSentPlayhead !== null && Math.abs(t - lastSentPlayhead) < 1e-6) return;
    if (Math.abs(t - playhead) < 1e-6) return;
    if (player.mode) player.stop();
    seekTo(t, { send: false });
  }));

  const ro = new ResizeObserver(() => resize());
  ro.observe(stack);
  cleanups.push(() => ro.disconnect());
  const onDpr = () => resize();
  window.addEventListener("resize", onDpr);
  cleanups.push(() => window.removeEventListener("resize", onDpr));

  ensureRoute(model).then((r) => {
    route = r;
    updateUrls();
  }, () => {});

  loadClips();
  loadWords();
  loadEdits();
  loadPeaks();
  root.dataset.playhead = playhead.toFixed(3);
  resize();
  updateButtons();

  return () => {
    cancelAnimationFrame(pending);
    player.destroy();
    for (const c of cleanups) c();
    el.remove();
  };
}
