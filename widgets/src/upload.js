// Upload: a file input and a drop zone; choosing files starts their uploads at once. Python
// presigns (`upload_request`), the browser then moves the bytes by the route the probe found:
// direct PUT to the signed URL, the same through jupyter-server-proxy, or relayed through the
// kernel in 1 MiB chunks (`relay_chunk`, one binary buffer each, waiting for each ack).
//
// A big file (the server's multipart threshold: the row has `multipart`) goes in parts on the
// direct and proxy routes: the kernel signs batches of part URLs (`upload_part_urls`, answered
// in the row's `part_urls`), the browser PUTs File.slice()s, PARALLEL at a time, each tried
// PART_ATTEMPTS times with backoff, and confirms with their ETags (`upload_done`). A part that
// still fails leaves the row failed and resumable: "retry" (`upload_resume`) has the kernel
// ask the server which parts it holds (`held`), and only the others are sent.

import { act, canSend } from "./act.js";
import { ensureRoute, routeUrl } from "./route.js";
import { fmtBytes, h, listen } from "./util.js";

const CHUNK = 1024 * 1024;
const PROGRESS_EVERY_MS = 250;
const ACK_TIMEOUT_MS = 120000;
const PARALLEL = 4;
const PART_ATTEMPTS = 4;
const URL_BATCH = 16;
const BACKOFF_MS = 500;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let uid = 0;
function newId() {
  uid += 1;
  const rand = Math.random().toString(36).slice(2, 8);
  return `u${Date.now().toString(36)}${rand}${uid}`;
}

export function renderUpload({ model, root }) {
  const cleanups = [];
  const files = new Map(); // upload id -> File (only uploads chosen in this view)
  const started = new Set(); // runs (id:attempt) this view has started
  const resuming = new Set(); // runs this view asked for (retry, or the file chosen again)
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
      // The same file chosen again for a stopped multipart upload (after a page reload, say)
      // resumes it: the parts the server holds are not sent again.
      const stopped = (model.get("uploads") || []).find((u) => u.status === "failed"
        && u.resumable && u.multipart && !files.has(u.id) && u.name === file.name
        && Number(u.size) === file.size);
      if (stopped) {
        files.set(stopped.id, file);
        resuming.add(`${stopped.id}:${(Number(stopped.attempt) || 1) + 1}`);
        act(model, { type: "upload_resume", id: stopped.id });
        continue;
      }
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

  // PUT a Blob; resolves with the response's ETag header (null when CORS hides it).
  function putXhr(headersIn, file, url, report, viaProxy) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhrs.add(xhr);
      xhr.open("PUT", url);
      const headers = { ...(headersIn || {}) };
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
        if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.getResponseHeader("ETag"));
        else {
          const body = (xhr.responseText || "").slice(0, 300);
          const err = new Error(`the storage answered ${xhr.status} ${xhr.statusText}` +
            `${body ? `: ${body}` : ""}`);
          err.status = xhr.status;
          reject(err);
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

  // Settles when decide(row) returns a value (an Error rejects), or after ACK_TIMEOUT_MS.
  function watchRow(id, decide, timeoutMessage) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const up = (model.get("uploads") || []).find((u) => u.id === id);
        const outcome = up ? decide(up) : undefined;
        if (outcome === undefined) return;
        finish();
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(timeoutMessage));
      }, ACK_TIMEOUT_MS);
      function finish() {
        clearTimeout(timer);
        model.off("change:uploads", check);
      }
      model.on("change:uploads", check);
      check();
    });
  }

  function waitForAck(id, need) {
    return watchRow(id, (up) => {
      if (up.status === "failed") return new Error(up.error || "the kernel gave up on this upload");
      if ((Number(up.sent) || 0) >= need || ["processing", "ready"].includes(up.status)) return up;
      return undefined;
    }, "the kernel did not acknowledge a relayed chunk within 2 minutes");
  }

  function waitForRow(id, done, what) {
    return watchRow(id, (up) => {
      if (done(up)) return up;
      if (up.status !== "uploading") {
        return new Error(up.error || `the kernel stopped this upload (${up.status})`);
      }
      return undefined;
    }, `the kernel did not answer within 2 minutes (${what})`);
  }

  let reqs = 0;
  // The parts the server lacks, PUT straight to their signed URLs; returns every part's ETag
  // (null where the storage's CORS rules hide it). Throws with `partsSent` set on the error.
  async function sendParts(up, file, route, report) {
    const mp = up.multipart;
    const server = model.get("server") || {};
    const count = Number(mp.part_count);
    const partSize = Number(mp.part_size);
    const sizeOf = (n) => (n < count ? partSize : file.size - partSize * (count - 1));
    const held = new Set((up.held || []).map(Number));
    const etags = new Map();
    const urls = new Map();
    const inFlight = new Map();
    const missing = [];
    let doneBytes = 0;
    for (let n = 1; n <= count; n += 1) {
      if (held.has(n)) doneBytes += sizeOf(n);
      else missing.push(n);
    }
    let sentNow = 0; // parts that arrived in this run
    let failure = null;
    let urlChain = Promise.resolve();

    const show = () => {
      let loaded = doneBytes;
      for (const v of inFlight.values()) loaded += v;
      report(Math.min(loaded, file.size), false);
    };

    // One batch request at a time: the row holds the answer to the latest only.
    function urlFor(n, fresh) {
      if (fresh) urls.delete(n);
      const next = urlChain.then(async () => {
        if (urls.has(n)) return;
        const want = [n, ...missing.filter((m) => !urls.has(m))].slice(0, URL_BATCH);
        reqs += 1;
        const req = `${up.id}:${up.attempt || 1}:${reqs}`;
        act(model, { type: "upload_part_urls", id: up.id, parts: want, req });
        const row = await waitForRow(up.id, (u) => u.part_urls && u.part_urls.req === req,
          "part URLs");
        for (const p of row.part_urls.parts) urls.set(Number(p.part_number), p);
      });
      urlChain = next.catch(() => {});
      return next.then(() => {
        const part = urls.get(n);
        if (!part) throw new Error(`the kernel sent no URL for part ${n}`);
        return part;
      });
    }

    async function putPart(n) {
      let part = await urlFor(n, false);
      for (let attempt = 1; ; attempt += 1) {
        if (disposed) throw new Error("the widget was closed during the upload");
        const url = routeUrl(part.url, route, server);
        const blob = file.slice(part.offset, part.offset + part.size);
        inFlight.set(n, 0);
        try {
          const etag = await putXhr({ "Content-Type": "application/octet-stream" }, blob, url,
            (loaded) => {
              inFlight.set(n, loaded);
              show();
            }, route === "proxy");
          inFlight.delete(n);
          doneBytes += part.size;
          sentNow += 1;
          etags.set(n, etag ? etag.replace(/^W\//, "").replace(/"/g, "") : null);
          show();
          return;
        } catch (err) {
          inFlight.delete(n);
          show();
          const retriable = err.network || !err.status || err.status >= 500
            || [403, 408, 429].includes(err.status);
          if (!retriable || attempt >= PART_ATTEMPTS || disposed) {
            err.message = `part ${n} of ${count} failed after ${attempt} ` +
              `${attempt === 1 ? "try" : "tries"}: ${err.message}`;
            throw err;
          }
          await sleep(Math.min(BACKOFF_MS * 2 ** (attempt - 1), 8000));
          // An expired URL (a slow upload) gets a fresh one.
          if (err.status === 403) part = await urlFor(n, true);
        }
      }
    }

    async function worker() {
      while (!failure && missing.length) {
        const n = missing.shift();
        try {
          await putPart(n);
        } catch (err) {
          failure = failure || err;
        }
      }
    }

    await Promise.all(Array.from({ length: Math.min(PARALLEL, missing.length || 1) }, worker));
    if (failure) {
      failure.partsSent = sentNow + held.size;
      const stored = [...etags.keys()].length + held.size;
      failure.message = `${failure.message}; ${stored} of ${count} parts are stored: ` +
        "retry sends only the rest";
      throw failure;
    }
    report(file.size, true);
    const parts = [];
    for (let n = 1; n <= count; n += 1) {
      if (held.has(n)) return null; // parts from an earlier run: the server knows their ETags
      const etag = etags.get(n);
      if (!etag) return null;
      parts.push({ part_number: n, etag });
    }
    return parts;
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

  const runKey = (up) => `${up.id}:${up.attempt || 1}`;

  async function start(up) {
    const file = files.get(up.id);
    if (!file || started.has(runKey(up))) return;
    started.add(runKey(up));
    localSent.delete(up.id);
    const report = throttledProgress(up.id);
    try {
      let route = await ensureRoute(model);
      const server = model.get("server") || {};
      let parts = null;
      if (route !== "relay") {
        try {
          if (up.multipart) {
            parts = await sendParts(up, file, route, report);
          } else {
            const url = routeUrl(up.put_url, route, server);
            await putXhr(up.headers, file, url, report, route === "proxy");
            report(file.size, true);
          }
        } catch (err) {
          // The probe said yes but no byte could leave the browser this way: relay instead
          // (a multipart upload only when none of its parts got through).
          if (!err.network || err.partsSent) throw err;
          route = "relay";
        }
      }
      if (route === "relay") {
        await relay(up, file);
        return; // the kernel confirms relayed uploads itself
      }
      act(model, parts ? { type: "upload_done", id: up.id, route, parts }
        : { type: "upload_done", id: up.id, route });
    } catch (err) {
      act(model, { type: "upload_failed", id: up.id, error: String(err.message || err) });
    }
  }

  function syncUploads() {
    for (const up of model.get("uploads") || []) {
      // A resumed run is sent by the view that asked for it (another view of the same
      // widget may hold the file too).
      const mine = (Number(up.attempt) || 1) === 1 || resuming.has(runKey(up));
      if (up.status === "uploading" && up.put_url && files.has(up.id) && mine
          && !started.has(runKey(up))) {
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
      const retry = h("button", { class: "sapari-mini sapari-retry", type: "button",
        title: "send the parts the server does not hold yet", hidden: true }, "retry");
      retry.addEventListener("click", () => {
        const now = (model.get("uploads") || []).find((u) => u.id === id);
        retry.disabled = true;
        resuming.add(`${id}:${(Number(now && now.attempt) || 1) + 1}`);
        act(model, { type: "upload_resume", id });
      });
      row = { node: h("div", { class: "sapari-upload-row" },
        h("span", { class: "sapari-upload-name" }), bar,
        h("div", {}, h("span", { class: "sapari-upload-state" }), " ", retry),
        h("div", { class: "sapari-error" })), retry };
      rowsById.set(id, row);
      list.append(row.node);
    }
    const [nameEl, bar, stateCell, errEl] = row.node.children;
    const stateEl = stateCell.firstChild;
    const retryEl = row.retry;
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
    const resumable = status === "failed" && Boolean(up && up.resumable && up.multipart);
    retryEl.hidden = !(resumable && file);
    if (retryEl.hidden) retryEl.disabled = false;
    const hint = resumable && !file ? " (choose the same file again to resume)" : "";
    errEl.textContent = (up && up.error) ? `${up.error}${hint}` : "";
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
