// The importapi-lite dashboard: reads and drives the admin API at /_importapi/v1/.
//
// SECURITY: table, column and field names, values and error bodies are the pushers' input.
// Everything from the API reaches the DOM as text (textContent, createTextNode, append with
// strings); never innerHTML, never an href or style built from data. The token lives in this
// tab's sessionStorage, is sent only as an Authorization header, and is never logged.
"use strict";

(() => {
  const API = "/_importapi/v1";
  const TOKEN_KEY = "importapi-lite.admin-token";
  const PAGE_SIZE = 50;
  const JOURNAL_LIMIT = 200;
  const REFRESH_MS = 3000;

  const $ = (id) => document.getElementById(id);
  let token = null;
  let browsing = null; // {client_id, integration, table, offset}
  let inspecting = null; // the rejected records shown: {client_id, integration, table, offset}
  let timer = null;

  class ApiError extends Error {
    constructor(status, body) {
      const detail = body && typeof body === "object" && body.message ? body.message : String(body);
      super(`${status}: ${detail}`);
      this.status = status;
    }
  }

  // --- DOM helpers: text only ---------------------------------------------------------------

  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    node.append(...children.map((c) => (c instanceof Node ? c : String(c))));
    return node;
  }

  function cell(value, className) {
    return el("td", className, value === null || value === undefined ? "" : value);
  }

  function button(label, onClick, className = "") {
    const node = el("button", className, label);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  function replaceRows(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  function showMessage(text) {
    const node = $("message");
    node.textContent = text || "";
    node.hidden = !text;
  }

  function plural(count, noun) {
    return `${count} ${noun}${count === 1 ? "" : "s"}`;
  }

  function shown(value) {
    if (value === null || value === undefined) return "null";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function segment(name) {
    return encodeURIComponent(String(name));
  }

  function integrationPath(client_id, integration) {
    return `/clients/${segment(client_id)}/integrations/${segment(integration)}`;
  }

  function tablePath(client_id, integration, table) {
    return `${integrationPath(client_id, integration)}/tables/${segment(table)}`;
  }

  // --- the API ------------------------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${token}` };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(API + path, init);
    const text = await response.text();
    let data = text;
    try {
      data = JSON.parse(text);
    } catch (_) {
      // not JSON: keep the text
    }
    if (response.status === 401 || response.status === 403) {
      signOut(`The admin API refused the token (${response.status}). Paste the admin token again.`);
      throw new ApiError(response.status, data);
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // --- sign in and out ----------------------------------------------------------------------

  function tokenFromFragment() {
    const fragment = new URLSearchParams(location.hash.slice(1));
    const found = fragment.get("token");
    if (found) {
      // Off the address bar (and out of bookmarks and screenshots) at once.
      history.replaceState(null, "", location.pathname + location.search);
    }
    return found;
  }

  function signIn(secret) {
    token = secret.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $("login").hidden = true;
    $("app").hidden = false;
    for (const id of ["logout", "refresh", "auto-label"]) $(id).hidden = false;
    $("connection").textContent = "signed in";
    showMessage("");
    refresh();
    schedule();
  }

  function signOut(reason) {
    token = null;
    browsing = null;
    inspecting = null;
    sessionStorage.removeItem(TOKEN_KEY);
    clearInterval(timer);
    timer = null;
    $("login").hidden = false;
    $("app").hidden = true;
    $("browser").hidden = true;
    $("rejected-browser").hidden = true;
    for (const id of ["logout", "refresh", "auto-label"]) $(id).hidden = true;
    $("connection").textContent = "not signed in";
    showMessage(reason || "");
  }

  function schedule() {
    clearInterval(timer);
    timer = $("auto-refresh").checked ? setInterval(refresh, REFRESH_MS) : null;
  }

  async function refresh() {
    if (!token) return;
    try {
      await Promise.all([loadTables(), loadJournal(), loadFaults()]);
      if (browsing) await loadRows();
      if (inspecting) await loadRejected();
      if (token) showMessage("");
    } catch (error) {
      if (token) showMessage(`Could not load: ${error.message}`);
    }
  }

  // --- tables -------------------------------------------------------------------------------

  async function loadTables() {
    const { clients } = await api("GET", "/clients");
    const rows = [];
    const rejecting = []; // integrations with rejected records: their reasons are shown below
    for (const client of clients) {
      for (const integration of client.integrations) {
        const where = [client.client_id, integration.name, integration.state ?? "no token"];
        if (integration.tables.length === 0) {
          rows.push(el("tr", "", ...where.map((v) => cell(v)), cell("no tables", "muted"), cell(""), cell("")));
        }
        for (const table of integration.tables) {
          rows.push(tableRow(where, client.client_id, integration.name, table, ""));
          for (const sub of table.subtables) {
            rows.push(tableRow(where, client.client_id, integration.name, sub, "sub"));
          }
        }
        if (integration.tables.some((t) => t.rejected > 0)) rejecting.push([client.client_id, integration.name]);
      }
    }
    replaceRows($("tables").tBodies[0], rows);
    $("tables").hidden = rows.length === 0;
    $("tables-empty").hidden = rows.length > 0;
    await loadReasons(rejecting);
  }

  function tableRow(where, client_id, integration, table, className) {
    const open = button(table.name, () => browse(client_id, integration, table.name), "link");
    open.dataset.table = table.name;
    const name = el("td", className, open);
    const count = cell(table.rows, "num");
    count.dataset.rowsOf = table.name;
    const rejected = rejectedCell(client_id, integration, table.name, table.rejected);
    return el("tr", "", ...where.map((v) => cell(v)), name, count, rejected);
  }

  // A count of rejected records; when there are any, a button that lists them.
  function rejectedCell(client_id, integration, table, count) {
    if (count === undefined) return cell(""); // a subtable: its rejections count for its table
    if (count === 0) return cell(0, "num");
    const open = button(count, () => inspect(client_id, integration, table), "link");
    const td = el("td", "num warn", open);
    td.dataset.rejectedOf = table;
    return td;
  }

  // --- rejected records ---------------------------------------------------------------------

  async function loadReasons(integrations) {
    const rows = [];
    for (const [client_id, integration] of integrations) {
      const { reasons } = await api("GET", `${integrationPath(client_id, integration)}/rejected?limit=1`);
      for (const reason of reasons) {
        const row = el(
          "tr",
          "",
          cell(client_id),
          cell(integration),
          el("td", "", button(reason.table_name, () => inspect(client_id, integration, reason.table_name), "link")),
          cell(reason.count, "num warn"),
          cell(reason.last_rejected_at, "mono"),
          cell(reason.reason),
        );
        row.dataset.reasonOf = reason.table_name;
        rows.push(row);
      }
    }
    replaceRows($("reasons").tBodies[0], rows);
    $("rejected-section").hidden = rows.length === 0;
  }

  function inspect(client_id, integration, table) {
    inspecting = { client_id, integration, table, offset: 0 };
    $("rejected-browser").hidden = false;
    loadRejected().catch((error) => showMessage(`Could not load rejections: ${error.message}`));
    $("rejected-browser").scrollIntoView({ block: "start" });
  }

  async function loadRejected() {
    const current = inspecting;
    const query = `?table=${segment(current.table)}&limit=${PAGE_SIZE}&offset=${current.offset}`;
    const page = await api("GET", `${integrationPath(current.client_id, current.integration)}/rejected${query}`);
    if (inspecting !== current) return;
    $("rejected-title").textContent = `${current.client_id} / ${current.integration} / ${current.table}`;
    const rows = page.records.map((r) =>
      el("tr", "", cell(r.rejected_at, "mono"), cell(r.reason), el("td", "", el("pre", "", JSON.stringify(r.record)))),
    );
    replaceRows($("rejected-records").tBodies[0], rows);
    const first = page.total === 0 ? 0 : page.offset + 1;
    const last = page.offset + page.records.length;
    $("rejected-info").textContent = `records ${first}–${last} of ${page.total}, newest first`;
    $("rejected-prev").disabled = page.offset === 0;
    $("rejected-next").disabled = last >= page.total;
  }

  function turnRejectedPage(direction) {
    if (!inspecting) return;
    inspecting = { ...inspecting, offset: Math.max(0, inspecting.offset + direction * PAGE_SIZE) };
    loadRejected().catch((error) => showMessage(`Could not load rejections: ${error.message}`));
  }

  // --- the table browser --------------------------------------------------------------------

  function browse(client_id, integration, table) {
    if (table === "." || table === "..") {
      // Browsers resolve these path segments (even as %2E) before sending: no URL reaches them.
      showMessage(`A table named ${table} cannot be opened here; use importapi-lite rows.`);
      return;
    }
    browsing = { client_id, integration, table, offset: 0 };
    $("browser").hidden = false;
    loadRows().catch((error) => showMessage(`Could not load ${table}: ${error.message}`));
    $("browser").scrollIntoView({ block: "start" });
  }

  async function loadRows() {
    const current = browsing;
    const path = tablePath(current.client_id, current.integration, current.table);
    const query = `?limit=${PAGE_SIZE}&offset=${current.offset}`;
    const [description, page] = await Promise.all([
      api("GET", path),
      api("GET", `${path}/rows${query}`),
    ]);
    if (browsing !== current) return; // another table was opened meanwhile
    $("browser-title").textContent = `${current.client_id} / ${current.integration} / ${current.table}`;
    const meta = [
      plural(description.rows, "row"),
      `key_names: ${JSON.stringify(description.key_names)}`,
      `active_version: ${shown(description.active_version)}`,
    ];
    if (description.parent !== null) meta.push(`subtable of ${description.parent}`);
    if (description.subtables.length) meta.push(`subtables: ${description.subtables.join(", ")}`);
    $("browser-meta").textContent = meta.join(" · ");

    const types = new Map(description.columns.map((c) => [c.name, c.type]));
    const header = page.columns.map((name) =>
      el("th", "", el("span", "", name), el("span", "type", types.get(name) ?? "system")),
    );
    $("rows").tHead.rows[0].replaceChildren(...header);
    const body = page.rows.map((row) =>
      el(
        "tr",
        "",
        ...page.columns.map((name) => {
          const value = Object.prototype.hasOwnProperty.call(row, name) ? row[name] : null;
          const td = cell(shown(value), value === null ? "null" : "");
          td.title = shown(value);
          return td;
        }),
      ),
    );
    replaceRows($("rows").tBodies[0], body);
    const first = page.total === 0 ? 0 : page.offset + 1;
    const last = page.offset + page.rows.length;
    $("page-info").textContent = `rows ${first}–${last} of ${page.total}`;
    $("page-prev").disabled = page.offset === 0;
    $("page-next").disabled = last >= page.total;
  }

  function turnPage(direction) {
    if (!browsing) return;
    browsing = { ...browsing, offset: Math.max(0, browsing.offset + direction * PAGE_SIZE) };
    loadRows().catch((error) => showMessage(`Could not load rows: ${error.message}`));
  }

  // --- the journal --------------------------------------------------------------------------

  async function loadJournal() {
    const { entries } = await api("GET", `/journal?limit=${JOURNAL_LIMIT}`);
    const rows = [];
    for (const entry of entries.slice().reverse()) {
      const status = entry.status === null ? "dropped" : String(entry.status);
      const statusClass = entry.status === null ? "status-none" : `status-${status[0]}`;
      const row = el(
        "tr",
        "",
        cell(entry.id, "num"),
        cell(entry.time, "mono"),
        cell(`${entry.method} ${entry.path}`, "mono"),
        cell(status, statusClass),
        cell(entry.client_id),
        cell(entry.tables.join(", ")),
        cell(entry.accepted, "num"),
        cell(entry.stale, "num"),
        cell(entry.rejected, "num"),
        cell(entry.request_bytes, "num"),
        cell(entry.duration_ms, "num"),
        cell(entry.fault === null ? "" : `#${entry.fault}`),
      );
      row.dataset.entry = entry.id;
      rows.push(row);
      if (entry.error !== null && entry.error !== undefined) {
        const td = el("td", "", el("pre", "error", shown(entry.error)));
        td.colSpan = 12;
        const detail = el("tr", "error-body", td);
        detail.dataset.errorOf = entry.id;
        rows.push(detail);
      }
    }
    replaceRows($("journal").tBodies[0], rows);
    $("journal").hidden = entries.length === 0;
    $("journal-empty").hidden = entries.length > 0;
  }

  // --- faults -------------------------------------------------------------------------------

  async function loadFaults() {
    const { faults } = await api("GET", "/faults");
    const rows = faults.map((fault) => {
      const what = fault.drop ? "drop" : fault.status === null ? `delay ${fault.delay_ms} ms` : fault.status;
      const row = el(
        "tr",
        "",
        cell(fault.id, "num"),
        cell(what),
        cell(fault.remaining === null ? "until cleared" : fault.remaining, "num"),
        cell(fault.endpoint ?? "any"),
        cell(fault.table ?? "any"),
        cell(fault.fired, "num"),
        el("td", "", button("remove", () => removeFault(fault.id))),
      );
      row.dataset.fault = fault.id;
      return row;
    });
    replaceRows($("faults").tBodies[0], rows);
    $("faults").hidden = faults.length === 0;
    $("faults-empty").hidden = faults.length > 0;
  }

  async function addFault(event) {
    event.preventDefault();
    const spec = {
      status: Number($("fault-status").value),
      count: Number($("fault-count").value),
    };
    if ($("fault-endpoint").value) spec.endpoint = $("fault-endpoint").value;
    if ($("fault-table").value) spec.table = $("fault-table").value;
    await act(() => api("POST", "/faults", spec));
  }

  const removeFault = (id) => act(() => api("DELETE", `/faults/${segment(id)}`));

  async function act(action) {
    try {
      await action();
      showMessage("");
    } catch (error) {
      showMessage(error.message);
    }
    await refresh();
  }

  // --- wiring -------------------------------------------------------------------------------

  function start() {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const secret = $("token-input").value;
      $("token-input").value = "";
      if (secret.trim()) signIn(secret);
    });
    $("logout").addEventListener("click", () => signOut(""));
    $("refresh").addEventListener("click", refresh);
    $("auto-refresh").addEventListener("change", schedule);
    $("page-prev").addEventListener("click", () => turnPage(-1));
    $("page-next").addEventListener("click", () => turnPage(1));
    $("browser-close").addEventListener("click", () => {
      browsing = null;
      $("browser").hidden = true;
    });
    $("rejected-prev").addEventListener("click", () => turnRejectedPage(-1));
    $("rejected-next").addEventListener("click", () => turnRejectedPage(1));
    $("rejected-close").addEventListener("click", () => {
      inspecting = null;
      $("rejected-browser").hidden = true;
    });
    $("fault-form").addEventListener("submit", addFault);
    $("faults-clear").addEventListener("click", () => act(() => api("DELETE", "/faults")));
    $("journal-clear").addEventListener("click", () => act(() => api("DELETE", "/journal")));

    const secret = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
    if (secret) signIn(secret);
    else signOut("");
  }

  start();
})();
