// The connection banner (`server.status/message`) and the analysis bar (button + progress).

import { act } from "./act.js";
import { h, listen } from "./util.js";

export function renderStatus({ model, root }) {
  const el = h("div", { class: "sapari-status", role: "status", "aria-live": "polite" });
  root.prepend(el);
  function render() {
    const s = model.get("server") || {};
    const status = s.status || "connected";
    // Readable errors of the last action (a refused cut, a quota) show here too.
    const note = model.get("message") || "";
    el.dataset.status = status;
    el.hidden = status === "connected" && !note;
    el.textContent = status === "connected" ? note : s.message ||
      (status === "reconnecting" ? "the job server cannot be reached; retrying"
        : "the job server has gone");
    root.dataset.server = status;
  }
  const off = listen(model, ["server", "message"], render);
  render();
  return () => {
    off();
    el.remove();
  };
}

// Summaries hold lists and nested counts (`by_kind: {silence: 4}`): show them as text.
function showValue(v) {
  if (Array.isArray(v)) return v.map(showValue).join(" ");
  if (v && typeof v === "object") {
    return Object.entries(v).map(([k, x]) => `${k} ${showValue(x)}`).join(", ");
  }
  return typeof v === "number" ? String(Math.round(v * 100) / 100) : String(v);
}

export function renderAnalysis({ model, root }) {
  const button = h("button", { type: "button", class: "sapari-btn sapari-primary",
    dataset: { action: "analyze" } }, "Analyze");
  const bar = h("div", { class: "sapari-bar" }, h("div", { class: "sapari-bar-fill" }));
  const message = h("span", { class: "sapari-analysis-message" });
  const el = h("div", { class: "sapari-analysis sapari-toolbar" }, button, bar, message);
  root.append(el);
  function render() {
    const a = model.get("analysis") || {};
    const status = a.status || "idle";
    el.dataset.status = status;
    const busy = status === "queued" || status === "running";
    button.disabled = busy || !(model.get("clips") || []).some((c) => c.status === "ready");
    button.textContent = status === "succeeded" || status === "failed" ? "Analyze again"
      : "Analyze";
    const p = Math.max(0, Math.min(1, Number(a.progress) || 0));
    bar.hidden = !busy;
    bar.firstChild.style.width = `${(p * 100).toFixed(1)}%`;
    const summary = a.summary && typeof a.summary === "object"
      ? Object.entries(a.summary).map(([k, v]) => `${k}: ${showValue(v)}`).join(", ")
      : a.summary || "";
    message.textContent = status === "failed" ? a.error || a.message || "the analysis failed"
      : a.message || (status === "succeeded" ? summary : busy ? status : "");
    message.classList.toggle("sapari-error", status === "failed");
  }
  const onClick = () => act(model, { type: "analyze" });
  button.addEventListener("click", onClick);
  const off = listen(model, ["analysis", "clips"], render);
  render();
  return () => {
    off();
    button.removeEventListener("click", onClick);
    el.remove();
  };
}
