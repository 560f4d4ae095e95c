// The importapi-lite dashboard: reads and drives the admin API at /_importapi/v1/.
//
// SECURITY: table, column and field names, values and error bodies are the pushers' input.
// Everything from the API reaches the DOM as text (textContent, createTextNode, append with
// strings); never innerHTML, never an href or style built from data. SVG is built the same way:
// its attributes are numbers and constants (names go in data-* attributes and text nodes only).
// The token lives in this tab's sessionStorage, is sent only as an Authorization header, and is
// never logged.
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
  let detailed = null; // the journal entry whose detail is shown
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

  const SVG = "http://www.w3.org/2000/svg";

  // An SVG element: attribute names are the code's own; values are numbers, constants, or
  // data-* attributes (setAttribute never parses markup). Children as in el().
  function svg(tag, attributes, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    node.append(...children.map((c) => (c instanceof Node ? c : String(c))));
    return node;
  }

  function utcTime(seconds, withSeconds) {
    return new Date(seconds * 1000).toISOString().slice(11, withSeconds ? 19 : 16);
  }

  function rate(value) {
    if (value === 0) return "0";
    if (value >= 100) return String(Math.round(value));
    return String(Number(value.toPrecision(2)));
  }

  // A definition list from [term, value] pairs; a value may be a node (a button).
  function definitions(dl, pairs) {
    dl.replaceChildren(...pairs.flatMap(([term, value]) => [el("dt", "", term), el("dd", "", value)]));
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
    detailed = null;
    $("journal-detail").hidden = true;
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
      await Promise.all([loadActivity(), loadTables(), loadJournal(), loadFaults()]);
      if (browsing) await loadRows();
      if (inspecting) await loadRejected();
      if (token) showMessage("");
    } catch (error) {
      if (token) showMessage(`Could not load: ${error.message}`);
    }
  }

  // --- activity: records per second per table -----------------------------------------------

  // Line colours by series position (never from data); the tables beyond the server's limit
  // share one grey series. Past ten series the colours repeat, dashed.
  const COLOURS = ["#2458c6", "#d92d20", "#079455", "#dc6803", "#7a5af8", "#c11574", "#0e9384", "#ca8504", "#475467", "#66c61c"];
  const OTHER_COLOUR = "#98a2b3";
  const CHART = { width: 960, height: 260, left: 52, right: 16, top: 14, bottom: 30 };

  async function loadActivity() {
    const activity = await api("GET", "/activity");
    const minutes = activity.window_seconds / 60;
    $("activity-window").textContent = minutes === 1 ? "minute" : `${rate(minutes)} minutes`;
    const qualified = new Set(activity.series.filter((s) => s.table !== null).map((s) => `${s.client_id}\u0000${s.integration}`)).size > 1;
    const series = activity.series.map((s, index) => {
      const perSecond = s.accepted.map((a, i) => (a + s.stale[i] + s.rejected[i]) / activity.bucket_seconds);
      const other = s.table === null;
      return {
        ...s,
        index,
        perSecond,
        label: other ? "other tables" : qualified ? `${s.client_id} / ${s.integration} / ${s.table}` : s.table,
        colour: other ? OTHER_COLOUR : COLOURS[index % COLOURS.length],
        dashed: !other && index >= COLOURS.length,
      };
    });
    $("activity-chart").replaceChildren(chart(activity.buckets, series));
    $("activity-empty").hidden = series.length > 0;
    $("activity-legend").hidden = series.length === 0;
    const lastMinute = Math.max(1, Math.round(60 / activity.bucket_seconds));
    const sum = (values) => values.reduce((a, b) => a + b, 0);
    replaceRows(
      $("activity-legend").tBodies[0],
      series.map((s) => {
        const swatch = svg("svg", { width: 22, height: 10, "aria-hidden": "true" }, line(s, [[1, 5], [21, 5]]));
        const recent = sum(s.perSecond.slice(-lastMinute)) / lastMinute;
        const row = el(
          "tr",
          "",
          el("td", "legend-name", swatch, el("span", s.table === null ? "muted" : "", s.label)),
          cell(rate(recent), "num"),
          cell(rate(Math.max(...s.perSecond)), "num"),
          cell(sum(s.accepted), "num"),
          cell(sum(s.stale), "num"),
          cell(sum(s.rejected), "num"),
        );
        if (s.table !== null) row.dataset.table = s.table;
        return row;
      }),
    );
  }

  function line(s, points) {
    const attributes = { points: points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "), fill: "none", stroke: s.colour, "stroke-width": 2, "stroke-linejoin": "round" };
    if (s.dashed) attributes["stroke-dasharray"] = "6 3";
    return svg("polyline", attributes);
  }

  // The chart: one line per series over the window's buckets, rates on a rounded scale.
  function chart(buckets, series) {
    const { width, height, left, right, top, bottom } = CHART;
    const plotWidth = width - left - right;
    const plotHeight = height - top - bottom;
    const peak = Math.max(0, ...series.flatMap((s) => s.perSecond));
    const scale = niceCeiling(peak);
    const x = (i) => left + (buckets.length > 1 ? (i * plotWidth) / (buckets.length - 1) : 0);
    const y = (value) => top + plotHeight * (1 - value / scale);
    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "records per second per table" });
    root.append(svg("title", {}, "Records per second per table"));
    const grid = svg("g", { class: "grid" });
    for (let step = 0; step <= 4; step += 1) {
      const value = (scale * step) / 4;
      grid.append(
        svg("line", { x1: left, x2: width - right, y1: y(value), y2: y(value) }),
        svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, rate(value)),
      );
    }
    const bucketSeconds = buckets.length > 1 ? buckets[1] - buckets[0] : 1;
    const every = Math.max(bucketSeconds, 120); // a time label every two minutes
    buckets.forEach((start, i) => {
      if (start % every !== 0) return;
      grid.append(
        svg("line", { x1: x(i), x2: x(i), y1: top, y2: top + plotHeight, class: "tick" }),
        svg("text", { x: x(i), y: height - 10, "text-anchor": "middle" }, utcTime(start, false)),
      );
    });
    grid.append(svg("text", { x: left + 4, y: top + 10, class: "unit" }, "records/s"));
    root.append(grid);
    for (const s of series) {
      const group = svg("g", { class: "series" });
      if (s.table !== null) group.dataset.table = s.table;
      else group.dataset.other = "true";
      const path = line(s, s.perSecond.map((value, i) => [x(i), y(value)]));
      path.append(svg("title", {}, `${s.label}: peak ${rate(Math.max(...s.perSecond))} records/s`));
      group.append(path);
      s.perSecond.forEach((value, i) => {
        if (value === 0) return;
        const what = `${s.label} · ${utcTime(buckets[i], true)} UTC · ${rate(value)} records/s (accepted ${s.accepted[i]}, stale ${s.stale[i]}, rejected ${s.rejected[i]})`;
        group.append(svg("circle", { cx: x(i), cy: y(value), r: 3, fill: s.colour }, svg("title", {}, what)));
      });
      root.append(group);
    }
    root.append(svg("rect", { x: left, y: top, width: plotWidth, height: plotHeight, class: "frame" }));
    return root;
  }

  // 1, 2 or 5 times a power of ten, at least the peak (1 when there is nothing).
  function niceCeiling(peak) {
    if (!(peak > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(peak));
    for (const step of [1, 2, 5, 10]) if (step * power >= peak) return step * power;
    return 10 * power;
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
    const found = []; // [client_id, integration, reason]
    for (const [client_id, integration] of integrations) {
      const { reasons } = await api("GET", `${integrationPath(client_id, integration)}/rejected?limit=1`);
      for (const reason of reasons) found.push([client_id, integration, reason]);
    }
    const most = Math.max(1, ...found.map(([, , reason]) => reason.count));
    const rows = found.map(([client_id, integration, reason]) => {
      const row = el(
        "tr",
        "",
        cell(client_id),
        cell(integration),
        el("td", "", button(reason.table_name, () => inspect(client_id, integration, reason.table_name), "link")),
        cell(reason.count, "num warn"),
        el("td", "bar", bar(reason.count / most)),
        cell(reason.last_rejected_at, "mono"),
        cell(reason.reason),
      );
      row.dataset.reasonOf = reason.table_name;
      return row;
    });
    replaceRows($("reasons").tBodies[0], rows);
    $("rejected-section").hidden = rows.length === 0;
  }

  // A horizontal bar for a share between 0 and 1 (of the most frequent reason's count).
  function bar(share) {
    const width = 120;
    return svg(
      "svg",
      { width, height: 12, viewBox: `0 0 ${width} 12`, "aria-hidden": "true" },
      svg("rect", { x: 0, y: 1, width, height: 10, class: "bar-track" }),
      svg("rect", { x: 0, y: 1, width: Math.max(2, Math.round(share * width)), height: 10, class: "bar-fill" }),
    );
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
    showLayout(current, description);

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

  // The table's layout: what it is, and its columns in order with their Stitch types and roles.
  function showLayout(current, description) {
    const open = (name) => button(name, () => browse(current.client_id, current.integration, name), "link");
    const names = (list) => (list.length ? list.join(", ") : "none");
    const pairs = [
      ["rows", String(description.rows)],
      ["key_names", description.key_names.length ? names(description.key_names) : "none (append-only)"],
      ["active_version", shown(description.active_version)],
    ];
    if (description.bookmark_names !== null) pairs.push(["bookmark_names", names(description.bookmark_names)]);
    pairs.push(["created", description.created_at]);
    if (description.parent !== null) pairs.push(["subtable of", open(description.parent)]);
    const subtables = el("span", "subtables");
    description.subtables.forEach((name, i) => subtables.append(...(i ? [", "] : []), open(name)));
    if (description.subtables.length === 0) subtables.append("none");
    pairs.push(["subtables", subtables]);
    definitions($("layout-meta"), pairs);

    const keys = new Set(description.key_names);
    const rows = description.columns.map((column, i) => {
      const row = el(
        "tr",
        "",
        cell(i + 1, "num"),
        cell(column.name, "mono"),
        el("td", "", el("span", `badge ${typeClass(column.type)}`, column.type)),
        cell(role(column, keys, description.parent !== null), column.split_of ? "split" : ""),
      );
      row.dataset.column = column.name;
      return row;
    });
    replaceRows($("layout-columns").tBodies[0], rows);
  }

  const TYPES = new Set(["integer", "double", "decimal", "string", "boolean", "timestamp"]);

  function typeClass(type) {
    return TYPES.has(type) ? `type-${type}` : "type-other"; // a class never made of data
  }

  const SYSTEM = {
    _sdc_sequence: "system: the sequence that decides which version wins",
    _sdc_table_version: "system: table version",
    _sdc_received_at: "system: when the request arrived",
    _sdc_batched_at: "system: when it was loaded",
    _sdc_extracted_at: "system: when the source extracted it",
    __sdc_primary_key: "system: the key of an append-only row",
  };

  function role(column, keys, isSubtable) {
    const name = column.name;
    if (column.split_of) return `split: ${column.type} values of ${column.split_of}`;
    if (!isSubtable && keys.has(name)) return "key";
    if (Object.prototype.hasOwnProperty.call(SYSTEM, name)) return SYSTEM[name];
    if (isSubtable && name.startsWith("_sdc_source_key_")) return `system: the parent row's ${name.slice(16)}`;
    const level = /^_sdc_level_(\d+)_id$/.exec(name);
    if (isSubtable && level) return `system: position in the array (level ${level[1]})`;
    return "";
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
      const open = button(`#${entry.id}`, () => showEntry(entry), "link");
      open.dataset.entry = entry.id;
      const row = el(
        "tr",
        detailed && detailed.id === entry.id ? "selected" : "",
        el("td", "num", open),
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

  // One entry in full: what the journal kept of the request's headers (never Authorization:
  // the server keeps only a few harmless ones), the tables it loaded, the error body it got.
  function showEntry(entry) {
    detailed = entry;
    const status = entry.status === null ? "dropped (no answer sent)" : String(entry.status);
    $("detail-title").textContent = `#${entry.id}: ${entry.method} ${entry.path}`;
    const pairs = [
      ["time", entry.time],
      ["status", status],
      ["client", entry.client_id === null ? "none (not authenticated)" : String(entry.client_id)],
      ["bytes", String(entry.request_bytes)],
      ["ms", String(entry.duration_ms)],
    ];
    if (entry.request_id) pairs.push(["request id", entry.request_id]);
    if (entry.fault !== null) pairs.push(["fault", `#${entry.fault}`]);
    definitions($("detail-meta"), pairs);

    const headers = Object.entries(entry.headers || {});
    replaceRows(
      $("detail-headers").tBodies[0],
      headers.map(([name, value]) => el("tr", "", el("th", "", name), cell(value, "mono"))),
    );
    $("detail-headers").hidden = headers.length === 0;
    $("detail-headers-empty").hidden = headers.length > 0;

    const tables = entry.per_table || entry.tables.map((table_name) => ({ table_name }));
    replaceRows(
      $("detail-tables").tBodies[0],
      tables.map((t) => {
        const row = el("tr", "", cell(t.table_name), cell(t.accepted, "num"), cell(t.stale, "num"), cell(t.rejected, "num"));
        row.dataset.table = t.table_name;
        return row;
      }),
    );
    $("detail-tables").hidden = tables.length === 0;
    $("detail-tables-empty").hidden = tables.length > 0;

    const hasError = entry.error !== null && entry.error !== undefined;
    $("detail-error").textContent = hasError ? (typeof entry.error === "string" ? entry.error : JSON.stringify(entry.error, null, 2)) : "";
    $("detail-error-part").hidden = !hasError;
    $("journal-detail").hidden = false;
    for (const row of $("journal").tBodies[0].rows) {
      row.classList.toggle("selected", row.dataset.entry === String(entry.id));
    }
    $("journal-detail").scrollIntoView({ block: "start" });
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
    $("detail-close").addEventListener("click", () => {
      detailed = null;
      $("journal-detail").hidden = true;
      for (const row of $("journal").tBodies[0].rows) row.classList.remove("selected");
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
