// keyline console: a plain page over the console API (API.md). The token lives in this
// tab's sessionStorage only and travels as `Authorization: Bearer`; it is never put in a
// URL. Everything shown is written with textContent, never parsed as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "keyline.token";
  const POLL_MS = 2000;
  const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

  const $ = (id) => document.getElementById(id);

  const state = {
    appId: "",        // the app on view
    sourceAppId: "",  // whose backups are listed ("" = the app's own)
    appsNext: "",     // cursor of the next page of apps
    appsOrg: "",
    executions: [],   // {arn, what, appId, status, error, cause, timer}
  };

  // --- token ---

  function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
  function isOrgToken(t) { return t.startsWith("klo_"); }

  // --- messages ---

  function showError(err) {
    const box = $("error");
    box.textContent = err && err.message ? err.message : String(err);
    if (err && err.code) box.textContent = err.code + ": " + box.textContent;
    box.hidden = false;
    $("notice").textContent = "";
  }
  function notice(text) {
    $("error").hidden = true;
    $("error").textContent = "";
    $("notice").textContent = text;
  }
  function clearMessages() { notice(""); }

  // --- API ---

  class APIError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const headers = { "Authorization": "Bearer " + token(), "Accept": "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new APIError(0, "NetworkError", "cannot reach the console API: " + e.message);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (!res.ok) {
      if (data && data.error && data.error.message) {
        throw new APIError(res.status, data.error.code || String(res.status), data.error.message);
      }
      throw new APIError(res.status, "HTTP" + res.status, "the API answered " + res.status + " " + res.statusText);
    }
    return data;
  }

  const enc = encodeURIComponent;

  // --- DOM helpers ---

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function fillTable(table, rows) {
    const body = table.tBodies[0];
    body.replaceChildren(...rows);
  }

  function td(v, cls) {
    return el("td", cls ? { class: cls } : {}, v === undefined || v === null || v === "" ? "—" : v);
  }

  function when(s) {
    if (!s || s.startsWith("0001-01-01")) return "—";
    const d = new Date(s);
    if (isNaN(d.getTime())) return s;
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace("Z", " UTC");
  }

  function size(n) {
    if (typeof n !== "number") return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return (i === 0 ? String(v) : v.toFixed(1)) + " " + units[i];
  }

  function badge(status) {
    return el("span", { class: "badge status-" + String(status || "").replace(/[^A-Z_]/g, ""), text: status || "—" });
  }

  // --- sign in ---

  function applyToken() {
    const t = token();
    $("signed-in").hidden = !t;
    $("forget-token").hidden = !t;
    if (!t) {
      $("whoami").textContent = "Enter an operator or org token. It stays in this browser tab only (session storage) and is sent to the API as an Authorization header.";
      return;
    }
    const org = isOrgToken(t);
    $("whoami").textContent = org
      ? "Using an org token: you see your org's apps only."
      : "Using the operator token: you see every org.";
    $("operator").hidden = org;
    $("filter-org-field").hidden = org;
  }

  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    $("token").value = "";
    if (!t) { showError(new Error("enter a token")); return; }
    sessionStorage.setItem(TOKEN_KEY, t);
    applyToken();
    notice("Token set.");
    listApps(false);
  });

  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    for (const x of state.executions) clearTimeout(x.timer);
    state.executions = [];
    state.appId = "";
    $("app").hidden = true;
    $("apps-table").hidden = true;
    $("apps-more").hidden = true;
    $("issued").hidden = true;
    $("issued-token").value = "";
    history.replaceState(null, "", location.pathname);
    applyToken();
    notice("Token forgotten.");
  });

  // --- operator: orgs and tokens ---

  $("org-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const orgId = $("org-id").value.trim();
    const name = $("org-name").value.trim() || orgId;
    const accounts = $("org-accounts").value.split(",").map((s) => s.trim()).filter((s) => s !== "");
    try {
      await api("POST", "/v1/orgs", { orgId, name, accounts });
      notice("Org " + orgId + " created.");
    } catch (e) { showError(e); }
  });

  $("issue-token").addEventListener("click", async () => {
    const orgId = $("org-id").value.trim();
    if (!ID_RE.test(orgId)) { showError(new Error("enter the org id to issue a token for")); return; }
    try {
      const out = await api("POST", "/v1/orgs/" + enc(orgId) + "/tokens", {});
      $("issued-org").textContent = orgId;
      $("issued-token").value = out.token;
      $("issued").hidden = false;
      notice("Token issued for org " + orgId + ". It is shown once: store it safely.");
    } catch (e) { showError(e); }
  });

  // --- apps ---

  async function listApps(more) {
    const org = token() && !isOrgToken(token()) ? $("filter-org").value.trim() : "";
    if (!more) { state.appsNext = ""; state.appsOrg = org; }
    const q = new URLSearchParams();
    if (state.appsOrg) q.set("orgId", state.appsOrg);
    if (more && state.appsNext) q.set("cursor", state.appsNext);
    try {
      const page = await api("GET", "/v1/apps" + (q.toString() ? "?" + q : ""));
      const rows = page.items.map((a) => el("tr", {},
        el("td", {}, el("button", { type: "button", class: "link", onclick: () => openApp(a.appId) }, a.appId)),
        td(a.orgId), td(a.keyModel), el("td", {}, badge(a.status)), td(a.statusReason, "long")));
      const body = $("apps-table").tBodies[0];
      if (more) body.append(...rows); else body.replaceChildren(...rows);
      state.appsNext = page.next || "";
      $("apps-table").hidden = body.rows.length === 0;
      $("apps-empty").hidden = body.rows.length !== 0;
      $("apps-more").hidden = !state.appsNext;
    } catch (e) { showError(e); }
  }

  $("list-form").addEventListener("submit", (ev) => { ev.preventDefault(); clearMessages(); listApps(false); });
  $("apps-more").addEventListener("click", () => listApps(true));

  $("open-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearMessages();
    openApp($("open-app").value.trim());
  });

  $("create-app-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { appId: $("new-app").value.trim(), orgId: $("new-app-org").value.trim(), keyModel: $("new-app-model").value };
    const key = $("new-app-key").value.trim();
    if (key) body.keyArn = key;
    try {
      const app = await api("POST", "/v1/apps", body);
      notice("App " + app.appId + " created.");
      openApp(app.appId);
    } catch (e) { showError(e); }
  });

  // --- one app ---

  async function openApp(appId) {
    if (!ID_RE.test(appId)) { showError(new Error("app id " + JSON.stringify(appId) + " is not valid: 1–63 letters, digits, '.', '_' or '-'")); return; }
    if (appId !== state.appId) {
      state.sourceAppId = "";
      $("source-app").value = "";
      $("reencrypt-form").hidden = true;
      $("reencrypt-open").setAttribute("aria-expanded", "false");
    }
    state.appId = appId;
    history.replaceState(null, "", "#app=" + enc(appId));
    await loadApp();
  }

  async function loadApp() {
    const id = state.appId;
    const p = "/v1/apps/" + enc(id);
    try {
      const app = await api("GET", p);
      $("app").hidden = false;
      $("app-id").textContent = app.appId;
      const st = $("app-status");
      st.textContent = app.status;
      st.className = "badge status-" + app.status;
      $("app-reason").textContent = app.statusReason || "—";
      $("app-org").textContent = app.orgId;
      $("app-model").textContent = app.keyModel === "cmk" ? "customer-managed (cmk)" : "provider-managed (managed)";
      $("app-gen").textContent = String(app.activeGeneration);
      $("backup-now").disabled = app.status === "DEACTIVATED";
      $("reencrypt-open").disabled = app.keyModel !== "cmk" || app.status !== "ACTIVE";
    } catch (e) {
      if (e.status === 404) $("app").hidden = true;
      showError(e);
      return;
    }
    const [keys, backups, audit] = await Promise.allSettled([
      api("GET", p + "/keys"),
      api("GET", "/v1/apps/" + enc(state.sourceAppId || id) + "/backups"),
      api("GET", p + "/audit"),
    ]);
    if (id !== state.appId) return; // another app was opened meanwhile
    if (keys.status === "fulfilled") renderKeys(keys.value); else showError(keys.reason);
    if (backups.status === "fulfilled") renderBackups(backups.value); else showError(backups.reason);
    if (audit.status === "fulfilled") renderAudit(audit.value); else showError(audit.reason);
    renderExecutions();
  }

  function renderKeys(gens) {
    fillTable($("keys-table"), gens.map((g) => el("tr", {},
      td(String(g.generation)), el("td", { class: "arn" }, g.keyArn), el("td", {}, badge(g.state)),
      el("td", {}, badge(g.keyState || "USABLE")), td(when(g.since), "nowrap"), td(g.reason))));
  }

  function renderBackups(list) {
    const source = state.sourceAppId || state.appId;
    $("backups-caption").textContent = state.sourceAppId
      ? "Backups of app " + source + " (restore puts one into app " + state.appId + ")"
      : "Backups of app " + source;
    const rows = list.map((b) => {
      const restorable = b.restorable
        ? el("td", { class: "ok" }, "Yes")
        : el("td", { class: "no long" }, "No — " + (b.reason || "no reason given"));
      const action = b.restorable
        ? el("td", {}, el("button", {
          type: "button", "aria-label": "Restore backup " + b.backupId + " into app " + state.appId,
          onclick: () => restore(b.backupId, source),
        }, "Restore"))
        : td("");
      return el("tr", {}, el("td", { class: "mono" }, b.backupId), td(String(b.generation)),
        el("td", { class: "arn" }, b.keyArn), td(when(b.createdAt), "nowrap"), td(size(b.sizeBytes), "nowrap"), restorable, action);
    });
    fillTable($("backups-table"), rows);
    $("backups-empty").hidden = rows.length !== 0;
  }

  function renderAudit(entries) {
    fillTable($("audit-table"), entries.map((a) => {
      const c = a.cause || {};
      const cause = [c.eventId && "event " + c.eventId, c.requestId && "request " + c.requestId,
        c.executionArn && "execution " + c.executionArn].filter(Boolean).join(", ");
      const detail = Object.entries(a.detail || {}).map(([k, v]) => k + "=" + v).join(", ");
      return el("tr", {}, td(when(a.time), "nowrap"), el("td", { class: "mono" }, a.action), td(a.actor || c.actor),
        td(cause, "long"), td(detail, "long"));
    }));
  }

  $("refresh").addEventListener("click", () => { clearMessages(); loadApp(); });

  $("source-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearMessages();
    const s = $("source-app").value.trim();
    state.sourceAppId = s === state.appId ? "" : s;
    loadApp();
  });

  // --- actions ---

  $("backup-now").addEventListener("click", async () => {
    const appId = state.appId;
    try {
      const out = await api("POST", "/v1/apps/" + enc(appId) + "/backups", {});
      notice("Backup of " + appId + " started.");
      track(out.executionArn, "Backup of " + appId, appId);
    } catch (e) { showError(e); }
  });

  $("reencrypt-open").addEventListener("click", () => {
    const f = $("reencrypt-form");
    f.hidden = !f.hidden;
    $("reencrypt-open").setAttribute("aria-expanded", String(!f.hidden));
    if (!f.hidden) $("reencrypt-key").focus();
  });
  $("reencrypt-cancel").addEventListener("click", () => {
    $("reencrypt-form").hidden = true;
    $("reencrypt-open").setAttribute("aria-expanded", "false");
  });
  $("reencrypt-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const appId = state.appId;
    const keyArn = $("reencrypt-key").value.trim();
    try {
      const out = await api("POST", "/v1/apps/" + enc(appId) + "/reencryptions", { keyArn });
      $("reencrypt-form").hidden = true;
      $("reencrypt-open").setAttribute("aria-expanded", "false");
      notice("Re-encryption of " + appId + " to " + keyArn + " started.");
      track(out.executionArn, "Re-encryption of " + appId, appId);
    } catch (e) { showError(e); }
  });

  async function restore(backupId, sourceAppId) {
    const appId = state.appId;
    const body = { backupId };
    if (sourceAppId && sourceAppId !== appId) body.sourceAppId = sourceAppId;
    try {
      const out = await api("POST", "/v1/apps/" + enc(appId) + "/restores", body);
      notice("Restore of backup " + backupId + " into " + appId + " started.");
      track(out.executionArn, "Restore of " + backupId + " into " + appId, appId);
    } catch (e) { showError(e); }
  }

  // --- executions ---

  function track(arn, what, appId) {
    if (!arn) return;
    let x = state.executions.find((e) => e.arn === arn);
    if (!x) {
      x = { arn, what, appId, status: "RUNNING", error: "", cause: "", timer: 0 };
      state.executions.unshift(x);
    }
    renderExecutions();
    poll(x);
  }

  async function poll(x) {
    clearTimeout(x.timer);
    try {
      const ex = await api("GET", "/v1/executions/" + enc(x.arn));
      x.status = ex.status;
      x.error = ex.error || "";
      x.cause = ex.cause || "";
    } catch (e) {
      x.status = "UNKNOWN";
      x.error = e.code || "Error";
      x.cause = e.message;
    }
    renderExecutions();
    if (x.status === "RUNNING" || x.status === "PENDING_REDRIVE") {
      x.timer = setTimeout(() => poll(x), POLL_MS);
    } else if (x.appId === state.appId && state.executions.includes(x)) {
      loadApp(); // it ended: show what it changed
    }
  }

  function renderExecutions() {
    const mine = state.executions.filter((x) => x.appId === state.appId);
    fillTable($("execs-table"), mine.map((x) => el("tr", {},
      td(x.what), el("td", { class: "arn" }, x.arn), el("td", {}, badge(x.status)), td(x.error, "long"), td(x.cause, "long"))));
    $("execs-table").hidden = mine.length === 0;
    $("execs-empty").hidden = mine.length !== 0;
  }

  // --- start ---

  applyToken();
  if (token()) {
    listApps(false);
    const m = /^#app=(.+)$/.exec(location.hash);
    if (m) openApp(decodeURIComponent(m[1]));
  }
})();
