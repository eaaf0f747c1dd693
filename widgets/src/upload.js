// Upload: a file input and a drop zone; choosing files starts their uploads at once. Python
// presigns (`upload_request`), the browser then moves the bytes by the route the probe found:
// direct PUT to the signed URL, the same through jupyter-server-proxy, or relayed through the
// kernel in 1 MiB chunks (`relay_chunk`, one binary buffer each, waiting for each ack).

import { act, canSend } from "./act.js";
import { ensureRoute, routeUrl } from "./route.js";
import { fmtBytes, h, listen } from "./util.js";

const CHUNK = 1024 * 1024;
const PROGRESS_EVERY_MS = 250;
const ACK_TIMEOUT_MS = 120000;

let uid = 0;
function newId() {
  uid += 1;
  const rand = Math.random().toString(36).slice(2, 8);
  return `u${Date.now().toString(36)}${rand}${uid}`;
}

export function renderUpload({ model, root }) {
  const cleanups = [];
  const files = new Map(); // upload id -> File (only uploads chosen in this view)
  const started = new Set();
  const localSent = new Map();
  const xhrs = new Set();
  let disposed = false;

  const input = h("input", { type: "file", class: "sapari-file", multiple: true,
    accept: "video/*,audio/*" });
  const drop = h("label", { class: "sapari-drop" }, input,
    h("span", {}, "Drop recordings here or choose files"));
  const routeBadge = h("span", { class: "sapari-route", title: "how the bytes travel" }, "route: …");
  const list = h("div", { class: "sapari-uploads" });
  const el = h("div", { class: "sapari-upload" },
    h("div", { class: "sapari-toolbar" }, drop, routeBadge), list);
  root.append(el);

  function showRoute() {
    const r = model.get("upload_route") || "";
    routeBadge.dataset.route = r;
    const text = { direct: "direct to storage", proxy: "through the Jupyter proxy",
      relay: "relayed through the kernel" }[r];
    routeBadge.textContent = r ? `route: ${r}` : "route: probing…";
    routeBadge.title = text || "finding how the browser reaches the job server";
  }

  function choose(fileList) {
    for (const file of Array.from(fileList || [])) {
      const id = newId();
      files.set(id, file);
      act(model, { type: "upload_request", id, name: file.name, size: file.size,
        content_type: file.type || "application/octet-stream" });
    }
    render();
  }

  function progress(id, sent) {
    localSent.set(id, sent);
    renderOne(id);
  }

  function throttledProgress(id) {
    let last = 0;
    return (sent, force) => {
      progress(id, sent);
      const now = performance.now();
      if (force || now - last >= PROGRESS_EVERY_MS) {
        last = now;
        const route = model.get("upload_route") || "";
        act(model, { type: "upload_progress", id, sent, route });
      }
    };
  }

  function xsrfToken() {
    const m = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : null;
  }

  function putXhr(up, file, url, report, viaProxy) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhrs.add(xhr);
      xhr.open("PUT", url);
      const headers = { ...(up.headers || {}) };
      const hasType = Object.keys(headers).some((k) => k.toLowerCase() === "content-type");
      // A binary type: through jupyter-server-proxy a form type makes tornado parse the body.
      if (!hasType) headers["Content-Type"] = file.type || "application/octet-stream";
      for (const [k, v] of Object.entries(headers)) {
        if (k.toLowerCase() === "content-length" || k.toLowerCase() === "host") continue;
        xhr.setRequestHeader(k, v);
      }
      // Jupyter checks XSRF on non-GET requests it serves itself (the proxy route).
      const xsrf = viaProxy ? xsrfToken() : null;
      if (xsrf) xhr.setRequestHeader("X-XSRFToken", xsrf);
      xhr.upload.onprogress = (ev) => report(ev.loaded, false);
      xhr.onload = () => {
        xhrs.delete(xhr);
        if (xhr.status >= 200 && xhr.status < 300) resolve();
        else {
          const body = (xhr.responseText || "").slice(0, 300);
          reject(new Error(`the storage answered ${xhr.status} ${xhr.statusText}` +
            `${body ? `: ${body}` : ""}`));
        }
      };
      xhr.onerror = () => {
        xhrs.delete(xhr);
        const err = new Error("the browser could not reach the upload URL (network or CORS)");
        err.network = true;
        reject(err);
      };
      xhr.onabort = () => {
        xhrs.delete(xhr);
        reject(new Error("the upload was cancelled"));
      };
      xhr.send(file);
    });
  }

  function waitForAck(id, need) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const up = (model.get("uploads") || []).find((u) => u.id === id);
        if (!up) return false;
        if (up.status === "failed") {
          finish();
          reject(new Error(up.error || "the kernel gave up on this upload"));
          return true;
        }
        if ((Number(up.sent) || 0) >= need || ["processing", "ready"].includes(up.status)) {
          finish();
          resolve();
          return true;
        }
        return false;
      };
      const onChange = () => check();
      const timer = setTimeout(() => {
        finish();
        reject(new Error("the kernel did not acknowledge a relayed chunk within 2 minutes"));
      }, ACK_TIMEOUT_MS);
      function finish() {
        clearTimeout(timer);
        model.off("change:uploads", onChange);
      }
      model.on("change:uploads", onChange);
      check();
    });
  }

  async function relay(up, file) {
    // Without binary messages (Panel) chunks go base64-encoded in the action: smaller ones.
    const size = canSend(model) ? CHUNK : CHUNK / 4;
    let offset = 0;
    do {
      if (disposed) throw new Error("the widget was closed during the upload");
      const end = Math.min(file.size, offset + size);
      const buffer = await file.slice(offset, end).arrayBuffer();
      const last = end >= file.size;
      act(model, { type: "relay_chunk", id: up.id, offset, last }, [buffer]);
      await waitForAck(up.id, end);
      progress(up.id, end);
      offset = end;
    } while (offset < file.size);
  }

  async function start(up) {
    const file = files.get(up.id);
    if (!file || started.has(up.id)) return;
    started.add(up.id);
    const report = throttledProgress(up.id);
    try {
      let route = await ensureRoute(model);
      const server = model.get("server") || {};
      if (route !== "relay") {
        const url = routeUrl(up.put_url, route, server);
        try {
          await putXhr(up, file, url, report, route === "proxy");
        } catch (err) {
          // The probe said yes but this PUT could not leave the browser: relay it instead.
          if (!err.network) throw err;
          route = "relay";
        }
      }
      if (route === "relay") {
        await relay(up, file);
        return; // the kernel confirms relayed uploads itself
      }
      report(file.size, true);
      act(model, { type: "upload_done", id: up.id, route });
    } catch (err) {
      act(model, { type: "upload_failed", id: up.id, error: String(err.message || err) });
    }
  }

  function syncUploads() {
    for (const up of model.get("uploads") || []) {
      if (up.status === "uploading" && up.put_url && files.has(up.id) && !started.has(up.id)) {
        start(up);
      }
    }
    render();
  }

  const rowsById = new Map();
  function renderOne(id) {
    const up = (model.get("uploads") || []).find((u) => u.id === id);
    const file = files.get(id);
    const name = (up && up.name) || (file && file.name) || id;
    const size = (up && up.size) || (file && file.size) || 0;
    const sent = Math.max(Number(up && up.sent) || 0, localSent.get(id) || 0);
    const status = (up && up.status) || "waiting_ticket";
    let row = rowsById.get(id);
    if (!row) {
      const bar = h("div", { class: "sapari-bar" }, h("div", { class: "sapari-bar-fill" }));
      row = { node: h("div", { class: "sapari-upload-row" },
        h("span", { class: "sapari-upload-name" }), bar,
        h("span", { class: "sapari-upload-state" }), h("div", { class: "sapari-error" })) };
      rowsById.set(id, row);
      list.append(row.node);
    }
    const [nameEl, bar, stateEl, errEl] = row.node.children;
    row.node.dataset.uploadId = id;
    row.node.dataset.status = status;
    nameEl.textContent = name;
    const done = ["processing", "ready"].includes(status);
    const frac = done ? 1 : size ? Math.min(1, sent / size) : 0;
    bar.firstChild.style.width = `${(frac * 100).toFixed(1)}%`;
    bar.dataset.progress = frac.toFixed(3);
    const via = up && up.route ? ` via ${up.route}` : "";
    stateEl.textContent = status === "uploading"
      ? `${fmtBytes(sent)} of ${fmtBytes(size)}${via}`
      : `${status.replace("_", " ")}${via}`;
    errEl.textContent = (up && up.error) || "";
  }

  function render() {
    const ids = new Set([...(model.get("uploads") || []).map((u) => u.id), ...files.keys()]);
    for (const [id, row] of rowsById) {
      if (!ids.has(id)) {
        row.node.remove();
        rowsById.delete(id);
      }
    }
    for (const id of ids) renderOne(id);
  }

  const on = (node, type, fn) => {
    node.addEventListener(type, fn);
    cleanups.push(() => node.removeEventListener(type, fn));
  };
  on(input, "change", () => {
    choose(input.files);
    input.value = "";
  });
  on(drop, "dragover", (ev) => {
    ev.preventDefault();
    drop.classList.add("sapari-over");
  });
  on(drop, "dragleave", () => drop.classList.remove("sapari-over"));
  on(drop, "drop", (ev) => {
    ev.preventDefault();
    drop.classList.remove("sapari-over");
    choose(ev.dataTransfer && ev.dataTransfer.files);
  });
  cleanups.push(listen(model, ["uploads"], syncUploads));
  cleanups.push(listen(model, ["upload_route"], showRoute));
  ensureRoute(model).then(showRoute, () => {});
  showRoute();
  render();

  return () => {
    disposed = true;
    for (const xhr of xhrs) xhr.abort();
    for (const c of cleanups) c();
    el.remove();
  };
}
