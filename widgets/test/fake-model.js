// A stand-in for anywidget's model (get/set/on/off/save_changes/send), recording every action,
// plus a tiny fake kernel that answers actions the way the Python side does, so the front end
// can be exercised in a plain page without Jupyter.

export class FakeModel {
  constructor(traits, { send = true } = {}) {
    this.traits = { ...traits };
    this.listeners = new Map();
    this.actions = []; // every action, in order, with the buffers' byte lengths
    this.saves = 0;
    this.kernel = null;
    if (send) {
      // anywidget: model.send(content, callbacks, buffers)
      this.send = (content, _callbacks, buffers) => {
        const sizes = (buffers || []).map((b) => b.byteLength);
        this.actions.push({ ...content, _buffers: sizes });
        if (this.kernel) this.kernel(content, buffers || []);
      };
    }
  }

  get(name) {
    return this.traits[name];
  }

  set(name, value) {
    const old = this.traits[name];
    this.traits[name] = value;
    if (old !== value) this.emit(`change:${name}`);
  }

  /** Like Python changing traits: set several, then fire their change events. */
  update(changes) {
    const changed = [];
    for (const [k, v] of Object.entries(changes)) {
      if (this.traits[k] !== v) changed.push(k);
      this.traits[k] = v;
    }
    for (const k of changed) this.emit(`change:${k}`);
  }

  emit(event, ...args) {
    for (const fn of [...(this.listeners.get(event) || [])]) fn(...args);
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
  }

  off(event, fn) {
    if (!event) this.listeners.clear();
    else if (!fn) this.listeners.delete(event);
    else if (this.listeners.has(event)) this.listeners.get(event).delete(fn);
  }

  save_changes() {
    this.saves += 1;
    // Panel route: actions travel in _outbox; the fake kernel handles entries past _acked.
    const outbox = this.traits._outbox || [];
    const acked = this.traits._acked || 0;
    const fresh = outbox.filter((a) => a.seq > acked);
    if (!this.send && fresh.length) {
      for (const a of fresh) {
        this.actions.push({ ...a, _buffers: [], _via: "outbox" });
        if (this.kernel) this.kernel(a, []);
      }
      const top = Math.max(...fresh.map((a) => a.seq));
      setTimeout(() => this.set("_acked", top), 0);
    }
  }

  listenerCount() {
    let n = 0;
    for (const s of this.listeners.values()) n += s.size;
    return n;
  }
}

/** A fake kernel: applies actions to the traits after `delay` ms, like ProjectState would. */
export function attachKernel(model, { delay = 30 } = {}) {
  const later = (fn) => setTimeout(fn, delay);
  const relayed = new Map();
  model.kernel = (a) => {
    const edits = () => model.get("edits") || [];
    if (a.type === "set_status") {
      const ids = new Set(a.ids);
      later(() => model.set("edits", edits().map((e) => (ids.has(e.id) ? { ...e, status: a.status } : e))));
    } else if (a.type === "set_all") {
      later(() => model.set("edits", edits().map((e) =>
        (!a.kind || e.kind === a.kind ? { ...e, status: a.status } : e))));
    } else if (a.type === "set_bounds") {
      later(() => model.set("edits", edits().map((e) =>
        (e.id === a.id ? { ...e, t0: a.t0, t1: a.t1 } : e))));
    } else if (a.type === "add_cut" || a.type === "cut_words") {
      const words = model.get("words") || [];
      const t0 = a.type === "add_cut" ? a.t0 : words[a.from][0];
      const t1 = a.type === "add_cut" ? a.t1 : words[a.to][1];
      later(() => model.set("edits", [...edits(), { id: `m${Date.now()}`, clip_id: "c1",
        kind: "manual", status: "accepted", t0, t1, start: t0, end: t1, reason: "manual cut",
        source: "user", confidence: null, words: "" }]));
    } else if (a.type === "seek") {
      later(() => model.set("playhead", a.t));
    } else if (a.type === "upload_request") {
      const server = model.get("server") || {};
      later(() => model.set("uploads", [...(model.get("uploads") || []), {
        id: a.id, name: a.name, size: a.size, sent: 0, status: "uploading", route: "",
        error: null, clip_id: `clip-${a.id}`, put_url: `${server.url}/put/${a.id}?sig=abc`,
        headers: { "Content-Type": a.content_type } }]));
    } else if (a.type === "upload_progress" || a.type === "upload_done") {
      later(() => model.set("uploads", (model.get("uploads") || []).map((u) => (u.id === a.id
        ? { ...u, sent: a.type === "upload_done" ? u.size : a.sent,
          status: a.type === "upload_done" ? "processing" : u.status, route: a.route || u.route }
        : u))));
    } else if (a.type === "relay_chunk") {
      relayed.set(a.id, (relayed.get(a.id) || 0) + 1);
      later(() => model.set("uploads", (model.get("uploads") || []).map((u) => (u.id === a.id
        ? { ...u, sent: Math.min(u.size, a.offset + 1024 * 1024), route: "relay",
          status: a.last ? "processing" : "uploading" }
        : u))));
    } else if (a.type === "upload_failed") {
      later(() => model.set("uploads", (model.get("uploads") || []).map((u) => (u.id === a.id
        ? { ...u, status: "failed", error: a.error } : u))));
    } else if (a.type === "export" || a.type === "retry_export") {
      later(() => model.set("export_state", { status: "running", progress: 0.5,
        message: "rendering", error: null, export_id: "x1", download_url: null, filename: null,
        timelines: [] }));
      setTimeout(() => model.set("export_state", { status: "succeeded", progress: 1,
        message: "done", error: null, export_id: "x1", download_url: "data:video/mp4;base64,AAAA",
        filename: "talk-edited.mp4",
        timelines: [{ format: "edl", filename: "talk.edl", url: "data:text/plain,TITLE" }] }),
      delay * 4);
    } else if (a.type === "analyze") {
      later(() => model.set("analysis", { status: "running", progress: 0.3, message: "transcribing",
        error: null, summary: null }));
    }
  };
}
