// How the browser reaches the job server's signed URLs (contract: "Route probe").
// direct = the URL as given (needs CORS); proxy = through jupyter-server-proxy on the page's
// own origin; relay = neither: bytes go through the kernel, no video preview.

/** The page's base URL (JupyterLab/Notebook 7 publish it; on Binder it is /user/<name>/). */
export function pageBaseUrl() {
  const node = document.getElementById("jupyter-config-data");
  let base = "/";
  if (node) {
    try {
      base = JSON.parse(node.textContent || "{}").baseUrl || "/";
    } catch {
      base = "/";
    }
  }
  return base.endsWith("/") ? base : `${base}/`;
}

function trimSlash(url) {
  return String(url || "").replace(/\/+$/, "");
}

/** `<base>proxy/<port><path+query>` of a server URL (null without a proxy port). */
export function proxied(url, server) {
  if (!url || !server || server.proxy_port == null) return null;
  const u = new URL(url, window.location.href);
  return `${pageBaseUrl()}proxy/${server.proxy_port}${u.pathname}${u.search}`;
}

/** Map a signed URL for the route in use (null when the browser cannot reach it). */
export function routeUrl(url, route, server) {
  if (!url) return null;
  if (route === "direct") return url;
  if (route === "proxy") return proxied(url, server);
  return null;
}

async function ok(url, timeoutMs) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  try {
    const res = await fetch(url, { signal: ctrl.signal, credentials: "same-origin" });
    return res.ok;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Try direct, then proxy, else relay. */
export async function probeRoute(server, timeoutMs = 4000) {
  const base = trimSlash(server && server.url);
  if (base && (await ok(`${base}/health`, timeoutMs))) return "direct";
  const via = base ? proxied(`${base}/health`, server) : null;
  if (via && (await ok(via, timeoutMs))) return "proxy";
  return "relay";
}

const probes = new WeakMap();

/**
 * The route for this model: the `upload_route` trait when already known, else one probe per
 * model (shared by every view on it) whose result is written back to `upload_route`.
 */
export function ensureRoute(model) {
  const known = model.get("upload_route");
  if (known) return Promise.resolve(known);
  let pending = probes.get(model);
  if (!pending) {
    pending = waitForServerUrl(model).then(async (server) => {
      const route = await probeRoute(server);
      model.set("upload_route", route);
      model.save_changes();
      return route;
    });
    pending.catch(() => probes.delete(model));
    probes.set(model, pending);
  }
  return pending;
}

function waitForServerUrl(model) {
  const server = model.get("server");
  if (server && server.url) return Promise.resolve(server);
  return new Promise((resolve) => {
    const onChange = () => {
      const s = model.get("server");
      if (s && s.url) {
        model.off("change:server", onChange);
        resolve(s);
      }
    };
    model.on("change:server", onChange);
  });
}
