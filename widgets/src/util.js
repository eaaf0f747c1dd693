// Small DOM and formatting helpers shared by every view.

/** Create an element: h("div", {class: "x", dataset: {a: 1}, onclick}, ...children). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Seconds -> "h:mm:ss.d" (or "m:ss.d" under an hour). */
export function fmtTime(seconds, digits = 1) {
  if (!Number.isFinite(seconds)) return "–";
  const sign = seconds < 0 ? "-" : "";
  let s = Math.abs(seconds);
  const hours = Math.floor(s / 3600);
  s -= hours * 3600;
  const minutes = Math.floor(s / 60);
  s -= minutes * 60;
  const sec = s.toFixed(digits).padStart(digits ? 3 + digits : 2, "0");
  return hours
    ? `${sign}${hours}:${String(minutes).padStart(2, "0")}:${sec}`
    : `${sign}${minutes}:${sec}`;
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return "";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

export const KINDS = ["silence", "false_start", "repeated_take", "filler", "stutter", "manual"];
export const STATUSES = ["proposed", "accepted", "rejected"];

export const KIND_LABEL = {
  silence: "silence",
  false_start: "false start",
  repeated_take: "repeated take",
  filler: "filler",
  stutter: "stutter",
  manual: "manual",
};

// One colour per kind, used on the canvas (CSS classes carry the same colours for DOM blocks).
export const KIND_COLOR = {
  silence: "#8a94a6",
  false_start: "#e8833a",
  repeated_take: "#c94f7c",
  filler: "#d9b43b",
  stutter: "#4aa3a2",
  manual: "#5a6ee0",
};

/** The status a click gives (contract): proposed -> accepted (shift: rejected), then toggles. */
export function nextStatus(status, shift) {
  if (status === "proposed") return shift ? "rejected" : "accepted";
  return status === "accepted" ? "rejected" : "accepted";
}

/** First index i with arr[i][key] >= value (arr sorted by key), via binary search. */
export function lowerBound(arr, value, get) {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (get(arr[mid]) < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Listen to model trait changes; returns a function removing every listener it added. */
export function listen(model, names, fn) {
  const events = names.map((n) => `change:${n}`);
  for (const e of events) model.on(e, fn);
  return () => {
    for (const e of events) model.off(e, fn);
  };
}

/** Project duration: the end of the last clip on the project axis. */
export function projectDuration(clips) {
  let end = 0;
  for (const c of clips || []) end = Math.max(end, (c.offset || 0) + (c.duration || 0));
  return end;
}

/** The clip covering project time t (last one whose offset <= t). */
export function clipAt(clips, t) {
  let found = null;
  for (const c of clips || []) {
    if (c.duration == null) continue;
    if ((c.offset || 0) <= t + 1e-9) found = c;
  }
  return found;
}
