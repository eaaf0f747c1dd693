// Export: render settings, progress from `export_state`, the download link and timeline files
// when done, the readable reason and a retry when it failed.

import { act } from "./act.js";
import { h, listen } from "./util.js";

const CONTAINERS = ["mp4", "mov", "mkv", "webm"];
const CODECS = ["h264", "vp9", "av1"];
const MODES = ["auto", "exact", "smart"];
const PRESETS = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow"];
const TIMELINES = [
  ["fcpxml", "Final Cut (FCPXML)"],
  ["premiere", "Premiere XML"],
  ["edl", "EDL (CMX3600)"],
  ["otio", "OpenTimelineIO"],
  ["srt", "SRT captions"],
  ["vtt", "WebVTT captions"],
];
const DEFAULTS = { container: "mp4", video_codec: "h264", mode: "auto", crf: 20,
  preset: "veryfast", timelines: [] };

export function renderExport({ model, root }) {
  const cleanups = [];
  const select = (name, values) => h("select", { name, class: `sapari-set-${name}` },
    ...values.map((v) => h("option", { value: v }, v)));
  const container = select("container", CONTAINERS);
  const codec = select("video_codec", CODECS);
  const mode = select("mode", MODES);
  const preset = select("preset", PRESETS);
  const crf = h("input", { type: "number", name: "crf", min: "0", max: "51", step: "1",
    class: "sapari-set-crf" });
  const checks = TIMELINES.map(([value, label]) => h("label", { class: "sapari-check" },
    h("input", { type: "checkbox", name: "timelines", value }), label));
  const exportBtn = h("button", { type: "button", class: "sapari-btn sapari-primary",
    dataset: { action: "export" } }, "Export");
  const retryBtn = h("button", { type: "button", class: "sapari-btn",
    dataset: { action: "retry-export" } }, "Retry");
  const bar = h("div", { class: "sapari-bar" }, h("div", { class: "sapari-bar-fill" }));
  const message = h("span", { class: "sapari-export-message" });
  const error = h("div", { class: "sapari-error" });
  const links = h("div", { class: "sapari-links" });
  const field = (label, node) => h("label", { class: "sapari-field" }, h("span", {}, label), node);
  const form = h("div", { class: "sapari-form" },
    field("container", container), field("codec", codec), field("render mode", mode),
    field("quality (crf, lower = better)", crf), field("speed", preset),
    h("div", { class: "sapari-field sapari-timelines" }, h("span", {}, "timeline files"),
      ...checks));
  const el = h("div", { class: "sapari-export" }, form,
    h("div", { class: "sapari-toolbar" }, exportBtn, retryBtn, bar, message), error, links);
  root.append(el);

  let editing = false; // the user touched the form: do not overwrite it from the trait

  function readForm() {
    return {
      container: container.value,
      video_codec: codec.value,
      mode: mode.value,
      crf: Math.max(0, Math.min(51, Math.round(Number(crf.value) || DEFAULTS.crf))),
      preset: preset.value,
      timelines: checks.map((c) => c.firstChild).filter((i) => i.checked).map((i) => i.value),
    };
  }

  function fillForm() {
    if (editing) return;
    const s = { ...DEFAULTS, ...(model.get("export_settings") || {}) };
    container.value = s.container;
    codec.value = s.video_codec;
    mode.value = s.mode;
    crf.value = String(s.crf);
    preset.value = s.preset;
    for (const c of checks) c.firstChild.checked = (s.timelines || []).includes(c.firstChild.value);
    validate();
  }

  function validate() {
    // The server refuses h264 in webm; say so before the click.
    const bad = container.value === "webm" && codec.value === "h264";
    exportBtn.disabled = bad || isRunning();
    exportBtn.title = bad ? "webm carries vp9 or av1, not h264: pick vp9/av1 or mp4" : "";
  }

  function isRunning() {
    const st = (model.get("export_state") || {}).status;
    return st === "queued" || st === "running";
  }

  function renderState() {
    const s = model.get("export_state") || {};
    const status = s.status || "idle";
    el.dataset.status = status;
    const p = Math.max(0, Math.min(1, Number(s.progress) || 0));
    bar.firstChild.style.width = `${((status === "succeeded" ? 1 : p) * 100).toFixed(1)}%`;
    bar.dataset.progress = p.toFixed(3);
    bar.hidden = status === "idle" || !status;
    message.textContent = s.message || (status === "idle" ? "" : status);
    error.textContent = status === "failed" ? s.error || "the export failed" : "";
    retryBtn.hidden = status !== "failed";
    links.replaceChildren();
    if (status === "succeeded" && s.download_url) {
      links.append(h("a", { class: "sapari-download", href: s.download_url,
        download: s.filename || "", target: "_blank", rel: "noopener" },
      `Download ${s.filename || "the video"}`));
    }
    for (const t of s.timelines || []) {
      if (!t.url) continue;
      links.append(h("a", { class: "sapari-timeline-file", href: t.url, download: t.filename || "",
        dataset: { format: t.format } }, t.filename || t.format));
    }
    validate();
  }

  const on = (node, type, fn) => {
    node.addEventListener(type, fn);
    cleanups.push(() => node.removeEventListener(type, fn));
  };
  on(form, "change", () => {
    editing = true;
    validate();
    model.set("export_settings", readForm());
    model.save_changes();
  });
  on(exportBtn, "click", () => {
    const settings = readForm();
    model.set("export_settings", settings);
    model.save_changes();
    act(model, { type: "export", settings });
  });
  on(retryBtn, "click", () => act(model, { type: "retry_export" }));
  cleanups.push(listen(model, ["export_settings"], fillForm));
  cleanups.push(listen(model, ["export_state"], renderState));
  fillForm();
  renderState();

  return () => {
    for (const c of cleanups) c();
    el.remove();
  };
}
