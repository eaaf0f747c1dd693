// The edits as a table: filters by kind and status, accept/reject per row, all of a kind, all;
// a row click seeks the timeline (the `seek` action, the `playhead` trait and, inside
// ProjectView, the local bus so the timeline moves at once).

import { act } from "./act.js";
import { KINDS, KIND_LABEL, STATUSES, fmtTime, h, listen, nextStatus } from "./util.js";

export function renderReview({ model, root, bus, viewRoot }) {
  const cleanups = [];
  const filters = { kind: "", status: "" };
  const overrides = new Map(); // id -> {status, at}: optimistic until the trait follows

  const kindSel = h("select", { class: "sapari-filter-kind", "aria-label": "kind" },
    h("option", { value: "" }, "all kinds"),
    ...KINDS.map((k) => h("option", { value: k }, KIND_LABEL[k])));
  const statusSel = h("select", { class: "sapari-filter-status", "aria-label": "status" },
    h("option", { value: "" }, "all statuses"),
    ...STATUSES.map((s) => h("option", { value: s }, s)));
  const acceptAll = h("button", { type: "button", class: "sapari-btn",
    dataset: { action: "accept-all" } }, "Accept all");
  const rejectAll = h("button", { type: "button", class: "sapari-btn",
    dataset: { action: "reject-all" } }, "Reject all");
  const count = h("span", { class: "sapari-count" });
  const tbody = h("tbody");
  const table = h("table", { class: "sapari-table" },
    h("thead", {}, h("tr", {},
      h("th", {}, "time"), h("th", {}, "length"), h("th", {}, "kind"), h("th", {}, "reason"),
      h("th", {}, "confidence"), h("th", {}, "words"), h("th", {}, "status"), h("th", {}, ""))),
    tbody);
  const el = h("div", { class: "sapari-review" },
    h("div", { class: "sapari-toolbar" }, kindSel, statusSel, acceptAll, rejectAll, count),
    h("div", { class: "sapari-tablewrap" }, table));
  root.append(el);

  const rows = new Map(); // id -> {tr, sig}
  let order = "";
  let selected = null;

  function effective() {
    const now = performance.now();
    return (model.get("edits") || []).map((e) => {
      const o = overrides.get(e.id);
      if (!o) return e;
      if (e.status === o.status || now - o.at > 5000) {
        overrides.delete(e.id);
        return e;
      }
      return { ...e, status: o.status };
    });
  }

  function rowFor(e) {
    const sig = `${e.status}|${e.t0}|${e.t1}|${e.kind}|${e.reason}|${e.confidence}|${e.words}`;
    let r = rows.get(e.id);
    if (r && r.sig === sig) return r.tr;
    const accept = h("button", { type: "button", class: "sapari-mini", dataset: { do: "accepted" },
      title: "accept" }, "✓");
    const reject = h("button", { type: "button", class: "sapari-mini", dataset: { do: "rejected" },
      title: "reject" }, "✕");
    const conf = e.confidence == null ? "" : `${Math.round(Number(e.confidence) * 100)}%`;
    const tr = h("tr", { class: "sapari-row" },
      h("td", { class: "sapari-num" }, fmtTime(e.t0)),
      h("td", { class: "sapari-num" }, `${(e.t1 - e.t0).toFixed(2)} s`),
      h("td", {}, h("span", { class: "sapari-kind", dataset: { kind: e.kind } },
        KIND_LABEL[e.kind] || e.kind)),
      h("td", { class: "sapari-reason" }, e.reason || ""),
      h("td", { class: "sapari-num" }, conf),
      h("td", { class: "sapari-words" }, e.words || ""),
      h("td", { class: "sapari-state" }, e.status),
      h("td", { class: "sapari-rowbtns" }, accept, reject));
    tr.dataset.editId = e.id;
    tr.dataset.status = e.status;
    tr.dataset.kind = e.kind;
    if (e.id === selected) tr.classList.add("sapari-selected");
    if (r) r.tr.replaceWith(tr);
    rows.set(e.id, { tr, sig, t0: e.t0 });
    return tr;
  }

  function render() {
    const all = effective();
    const list = all.filter((e) => (!filters.kind || e.kind === filters.kind) &&
      (!filters.status || e.status === filters.status));
    list.sort((a, b) => a.t0 - b.t0);
    const ids = list.map((e) => e.id).join(",");
    const keep = new Set(list.map((e) => e.id));
    for (const [id, r] of rows) {
      if (!keep.has(id)) {
        r.tr.remove();
        rows.delete(id);
      }
    }
    const trs = list.map(rowFor);
    if (ids !== order) {
      // Order or membership changed: one re-append in order (existing rows are moved).
      const frag = document.createDocumentFragment();
      for (const tr of trs) frag.append(tr);
      tbody.append(frag);
      order = ids;
    }
    const accepted = all.filter((e) => e.status === "accepted").length;
    count.textContent = `${list.length} of ${all.length} edits shown, ${accepted} accepted`;
    const scope = filters.kind ? ` ${KIND_LABEL[filters.kind]}` : "";
    acceptAll.textContent = `Accept all${scope}`;
    rejectAll.textContent = `Reject all${scope}`;
  }

  function setStatus(id, status) {
    overrides.set(id, { status, at: performance.now() });
    act(model, { type: "set_status", ids: [id], status });
    bus.dispatchEvent(new CustomEvent("status", { detail: { ids: [id], status, from: el } }));
    render();
  }

  function setAll(status) {
    const kind = filters.kind || null;
    const ids = [];
    for (const e of model.get("edits") || []) {
      if (!kind || e.kind === kind) {
        overrides.set(e.id, { status, at: performance.now() });
        ids.push(e.id);
      }
    }
    act(model, { type: "set_all", status, kind });
    bus.dispatchEvent(new CustomEvent("status", { detail: { ids, status, from: el } }));
    render();
  }

  function onClick(ev) {
    const tr = ev.target.closest("tr.sapari-row");
    if (!tr) return;
    const id = tr.dataset.editId;
    const button = ev.target.closest("button[data-do]");
    if (button) {
      setStatus(id, button.dataset.do);
      return;
    }
    const r = rows.get(id);
    if (!r) return;
    select(id);
    bus.dispatchEvent(new CustomEvent("select-edit", { detail: { id } }));
    const t = r.t0;
    act(model, { type: "seek", t });
    bus.dispatchEvent(new CustomEvent("seek", { detail: { t } }));
    model.set("playhead", t);
    model.save_changes();
    (viewRoot || root).dataset.playhead = t.toFixed(3);
  }

  function onDblClick(ev) {
    const tr = ev.target.closest("tr.sapari-row");
    if (!tr || ev.target.closest("button")) return;
    setStatus(tr.dataset.editId, nextStatus(tr.dataset.status, ev.shiftKey));
  }

  function select(id) {
    if (selected && rows.get(selected)) rows.get(selected).tr.classList.remove("sapari-selected");
    selected = id;
    if (id && rows.get(id)) rows.get(id).tr.classList.add("sapari-selected");
  }

  const on = (node, type, fn) => {
    node.addEventListener(type, fn);
    cleanups.push(() => node.removeEventListener(type, fn));
  };
  on(tbody, "click", onClick);
  on(tbody, "dblclick", onDblClick);
  on(kindSel, "change", () => {
    filters.kind = kindSel.value;
    render();
  });
  on(statusSel, "change", () => {
    filters.status = statusSel.value;
    render();
  });
  on(acceptAll, "click", () => setAll("accepted"));
  on(rejectAll, "click", () => setAll("rejected"));
  const onSelectBus = (ev) => {
    select(ev.detail.id);
    const r = rows.get(ev.detail.id);
    if (r && r.tr.scrollIntoView) r.tr.scrollIntoView({ block: "nearest" });
  };
  const onStatusBus = (ev) => {
    if (ev.detail.from === el) return;
    const at = performance.now();
    for (const id of ev.detail.ids) overrides.set(id, { status: ev.detail.status, at });
    render();
  };
  bus.addEventListener("status", onStatusBus);
  cleanups.push(() => bus.removeEventListener("status", onStatusBus));
  bus.addEventListener("select-edit", onSelectBus);
  cleanups.push(() => bus.removeEventListener("select-edit", onSelectBus));
  cleanups.push(listen(model, ["edits"], render));
  render();

  return () => {
    for (const c of cleanups) c();
    el.remove();
  };
}
