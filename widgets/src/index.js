// anywidget entry: one bundle for every sapari widget; `render` dispatches on the `view` trait.
import "./sapari.css";
import { renderExport } from "./export.js";
import { renderReview } from "./review.js";
import { renderAnalysis, renderStatus } from "./status.js";
import { renderTimeline } from "./timeline.js";
import { renderUpload } from "./upload.js";
import { h, listen } from "./util.js";

const VIEWS = {
  upload: (ctx) => [renderUpload(ctx)],
  timeline: (ctx) => [renderAnalysis(ctx), renderTimeline(ctx)],
  review: (ctx) => [renderReview(ctx)],
  export: (ctx) => [renderExport(ctx)],
  project: (ctx) => {
    // One view of everything, sharing the local bus: a row click moves the timeline at once.
    const header = h("div", { class: "sapari-header" });
    ctx.root.append(header);
    const title = h("span", { class: "sapari-title" });
    header.append(title);
    const setTitle = () => {
      const p = ctx.model.get("project") || {};
      title.textContent = p.name || p.id || "project";
    };
    setTitle();
    const off = listen(ctx.model, ["project"], setTitle);
    const section = (name, label) => {
      const node = h("section", { class: `sapari-section sapari-section-${name}` },
        h("h4", { class: "sapari-section-title" }, label));
      ctx.root.append(node);
      return { ...ctx, root: node, viewRoot: ctx.root };
    };
    const analysis = renderAnalysis({ ...ctx, root: header });
    const tl = section("timeline", "Timeline");
    const timeline = renderTimeline({ ...tl, root: ctx.root, mount: tl.root });
    const review = renderReview(section("review", "Edits"));
    const upload = renderUpload(section("upload", "Upload"));
    const exp = renderExport(section("export", "Export"));
    return [() => off(), () => header.remove(), analysis, timeline, review, upload, exp];
  },
};

function render({ model, el }) {
  const view = model.get("view") || "project";
  const root = document.createElement("div");
  root.className = "sapari-root";
  root.dataset.view = view;
  el.append(root);
  const bus = new EventTarget();
  const ctx = { model, el, root, bus };
  const cleanups = [renderStatus(ctx)];
  const make = VIEWS[view];
  if (!make) {
    root.append(h("div", { class: "sapari-error" },
      `unknown view "${view}": expected upload, timeline, review, export or project`));
  } else {
    cleanups.push(...make(ctx));
  }
  return () => {
    for (const c of cleanups.reverse()) {
      try {
        c();
      } catch (err) {
        console.error("sapari: cleanup failed", err);
      }
    }
    root.remove();
  };
}

export default { render };
