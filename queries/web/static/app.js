// lambdalog dashboard. Plain JS, no dependencies. Every value from the
// server is inserted with textContent (log fields are attacker-controlled),
// never as HTML.
'use strict';

(function () {
  const TOKEN_KEY = 'lambdalog_token';
  const SVG = 'http://www.w3.org/2000/svg';
  const MAX_ALERTS = 500;
  const COLORS = ['#4fa3e0', '#e0604f', '#5cb85c', '#e0b04f', '#b07fe0', '#4fe0c8', '#e07fb0'];

  // The token arrives once as ?token=; it is kept in sessionStorage and
  // removed from the address bar so it is not left in history.
  function takeToken() {
    const u = new URL(window.location.href);
    const t = u.searchParams.get('token');
    if (t) {
      sessionStorage.setItem(TOKEN_KEY, t);
      u.searchParams.delete('token');
      history.replaceState(null, '', u.pathname + u.search + u.hash);
    }
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }
  const token = takeToken();

  function headers() {
    return token ? { Authorization: 'Bearer ' + token } : {};
  }

  async function api(path, opts) {
    const o = Object.assign({ headers: headers() }, opts || {});
    const r = await fetch(path, o);
    if (!r.ok) {
      let msg = r.status + ' ' + r.statusText;
      try { const j = await r.json(); if (j.error) msg = j.error; } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    return r;
  }
  async function apiJSON(path, opts) { return (await api(path, opts)).json(); }

  function $(id) { return document.getElementById(id); }
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  function setBadge(id, text, cls) { const b = $(id); b.textContent = text; b.className = 'badge' + (cls ? ' ' + cls : ''); }
  function showError(container, err) { clear(container); container.appendChild(el('p', String(err.message || err), 'error')); }

  function isoDay(d) { return d.toISOString().slice(0, 10); }
  function range() { return { from: $('from').value, to: $('to').value }; }

  // ---- tables ----
  function table(columns, rows) {
    const t = el('table');
    const head = el('tr');
    columns.forEach(function (c) { head.appendChild(el('th', c)); });
    t.appendChild(el('thead')).appendChild(head);
    const body = el('tbody');
    rows.forEach(function (r) {
      const tr = el('tr');
      r.forEach(function (v) { tr.appendChild(el('td', v === null ? '' : v, typeof v === 'number' ? 'num' : '')); });
      body.appendChild(tr);
    });
    t.appendChild(body);
    return t;
  }

  // ---- CSV download: the server's CSV, saved under its file name ----
  async function downloadCSV(report, params) {
    const q = new URLSearchParams(params);
    q.set('format', 'csv');
    const r = await api('/api/reports/' + encodeURIComponent(report) + '?' + q.toString());
    const blob = await r.blob();
    let name = report + '.csv';
    const cd = r.headers.get('Content-Disposition') || '';
    const m = /filename="([^"]+)"/.exec(cd);
    if (m) name = m[1];
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  // ---- charts (own SVG) ----
  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // lineChart draws one polyline per series over shared x labels.
  function lineChart(container, labels, series) {
    clear(container);
    const W = 900, H = 240, L = 50, R = 10, T = 10, B = 40;
    const svg = svgEl('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img' });
    let max = 0, points = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { max = Math.max(max, v); }); });
    max = niceMax(max);
    const x = function (i) { return L + (labels.length <= 1 ? (W - L - R) / 2 : i * (W - L - R) / (labels.length - 1)); };
    const y = function (v) { return H - B - v * (H - T - B) / max; };
    svg.appendChild(svgEl('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis' }));
    svg.appendChild(svgEl('line', { x1: L, y1: T, x2: L, y2: H - B, class: 'axis' }));
    for (let k = 0; k <= 4; k++) {
      const v = max * k / 4;
      svg.appendChild(svgEl('text', { x: L - 4, y: y(v) + 4, 'text-anchor': 'end' }, Math.round(v)));
    }
    const every = Math.max(1, Math.ceil(labels.length / 8));
    labels.forEach(function (lab, i) {
      if (i % every === 0) svg.appendChild(svgEl('text', { x: x(i), y: H - B + 16, 'text-anchor': 'middle' }, lab));
    });
    series.forEach(function (s, si) {
      const color = COLORS[si % COLORS.length];
      const pts = s.values.map(function (v, i) { return x(i) + ',' + y(v); }).join(' ');
      svg.appendChild(svgEl('polyline', { points: pts, class: 'line', stroke: color, 'data-series': s.name }));
      s.values.forEach(function (v, i) {
        const c = svgEl('circle', { cx: x(i), cy: y(v), r: 3, fill: color, class: 'point' });
        c.appendChild(svgEl('title', {}, s.name + ' ' + labels[i] + ': ' + v));
        svg.appendChild(c);
        points++;
      });
      const lg = svgEl('g', { class: 'legend' });
      lg.appendChild(svgEl('rect', { x: L + 10 + si * 110, y: H - 14, width: 10, height: 10, fill: color }));
      lg.appendChild(svgEl('text', { x: L + 24 + si * 110, y: H - 5 }, s.name));
      svg.appendChild(lg);
    });
    svg.setAttribute('data-points', points);
    container.appendChild(svg);
  }

  // barChart draws horizontal bars, largest first.
  function barChart(container, labels, values) {
    clear(container);
    const W = 900, rowH = 18, L = 140, R = 60;
    const H = Math.max(40, labels.length * rowH + 10);
    const svg = svgEl('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img' });
    svg.style.height = H + 'px';
    const max = niceMax(Math.max.apply(null, values.concat([0])));
    labels.forEach(function (lab, i) {
      const w = values[i] * (W - L - R) / max;
      svg.appendChild(svgEl('text', { x: L - 6, y: 5 + i * rowH + 12, 'text-anchor': 'end' }, lab));
      const bar = svgEl('rect', { x: L, y: 5 + i * rowH, width: Math.max(1, w), height: rowH - 4, class: 'bar point' });
      bar.appendChild(svgEl('title', {}, lab + ': ' + values[i]));
      svg.appendChild(bar);
      svg.appendChild(svgEl('text', { x: L + w + 4, y: 5 + i * rowH + 12 }, values[i]));
    });
    svg.setAttribute('data-points', labels.length);
    container.appendChild(svg);
  }

  async function loadEventsChart() {
    const c = $('chart-events');
    try {
      const r = range();
      const res = await apiJSON('/api/reports/events_per_day?' + new URLSearchParams(r).toString());
      const days = [], byDs = {};
      for (let d = new Date(r.from + 'T00:00:00Z'); isoDay(d) <= r.to; d.setUTCDate(d.getUTCDate() + 1)) days.push(isoDay(d));
      res.rows.forEach(function (row) {
        (byDs[row[1]] = byDs[row[1]] || {})[row[0]] = row[2];
      });
      const series = Object.keys(byDs).sort().map(function (ds) {
        return { name: ds, values: days.map(function (d) { return byDs[ds][d] || 0; }) };
      });
      if (series.length === 0) { clear(c); c.appendChild(el('p', 'no events in this range', 'muted')); return; }
      lineChart(c, days, series);
    } catch (e) { showError(c, e); }
  }

  async function loadFailuresChart() {
    const c = $('chart-failures');
    try {
      const q = new URLSearchParams(range());
      q.set('limit', '15');
      const res = await apiJSON('/api/reports/auth_failures_by_ip?' + q.toString());
      if (res.rows.length === 0) { clear(c); c.appendChild(el('p', 'no failed logins in this range', 'muted')); return; }
      barChart(c, res.rows.map(function (r) { return r[0]; }), res.rows.map(function (r) { return r[1]; }));
    } catch (e) { showError(c, e); }
  }

  // ---- merged series ----
  async function loadMetrics() {
    const sel = $('series-metric');
    try {
      const list = await apiJSON('/api/series');
      list.metrics.forEach(function (m) {
        const o = el('option', m.name); o.value = m.name; o.title = m.doc; sel.appendChild(o);
      });
    } catch (e) { $('series-state').textContent = e.message; }
  }
  async function loadSeries() {
    const c = $('chart-series');
    const metric = $('series-metric').value;
    if (!metric) return;
    try {
      const r = range();
      const to = new Date(r.to + 'T00:00:00Z'); to.setUTCDate(to.getUTCDate() + 1);
      const q = new URLSearchParams({ from: r.from, to: isoDay(to), step: '1h' });
      if ($('series-key').value) q.set('key', $('series-key').value);
      const s = await apiJSON('/api/series/' + encodeURIComponent(metric) + '?' + q.toString());
      const labels = s.points.map(function (p) { return p.time.slice(5, 13).replace('T', ' '); });
      lineChart(c, labels, [{ name: metric, values: s.points.map(function (p) { return p.value; }) }]);
      $('series-state').textContent = 'batch watermark: ' + (s.watermark && !s.watermark.startsWith('0001') ? s.watermark : 'none');
    } catch (e) { showError(c, e); }
  }

  // ---- report runner ----
  let catalog = [];
  function reportParams() {
    const out = {};
    document.querySelectorAll('#report-params input, #report-params select').forEach(function (i) {
      if (i.value !== '') out[i.name] = i.value;
    });
    return out;
  }
  function renderParamInputs() {
    const rep = catalog.find(function (r) { return r.name === $('report-name').value; });
    const box = $('report-params');
    clear(box);
    if (!rep) return;
    $('report-desc').textContent = rep.description;
    const r = range();
    rep.params.forEach(function (p) {
      const lab = el('label', p.name + ' ');
      lab.title = p.doc;
      let input;
      if (p.type === 'enum') {
        input = el('select');
        p.values.forEach(function (v) { const o = el('option', v); o.value = v; input.appendChild(o); });
        if (p.default) input.value = p.default;
      } else {
        input = el('input');
        input.type = p.type === 'date' ? 'date' : (p.type === 'int' ? 'number' : 'text');
        if (p.type === 'date') input.value = p.name === 'to' ? r.to : r.from;
        else if (p.default) input.value = p.default;
        if (p.type === 'int') { input.min = p.min; input.max = p.max; }
        if (!p.default && p.type !== 'date') input.placeholder = 'required';
      }
      input.name = p.name;
      lab.appendChild(input);
      box.appendChild(lab);
    });
  }
  async function runReport() {
    const box = $('report-table');
    try {
      const name = $('report-name').value;
      const res = await apiJSON('/api/reports/' + encodeURIComponent(name) + '?' + new URLSearchParams(reportParams()).toString());
      clear(box);
      box.appendChild(el('p', res.rows.length + ' rows', 'muted'));
      box.appendChild(table(res.columns, res.rows));
    } catch (e) { showError(box, e); }
  }
  async function loadCatalog() {
    try {
      const list = await apiJSON('/api/reports');
      catalog = list.reports;
      const sel = $('report-name');
      catalog.forEach(function (r) { const o = el('option', r.title + ' (' + r.name + ')'); o.value = r.name; sel.appendChild(o); });
      sel.value = 'auth_failures_by_ip';
      renderParamInputs();
    } catch (e) { showError($('report-table'), e); }
  }

  // ---- live alerts (SSE through serve, with a short-lived ticket) ----
  const alerts = [];
  const seenRules = new Set(), seenSev = new Set();
  function addOption(sel, set, v) {
    if (!v || set.has(v)) return;
    set.add(v);
    const o = el('option', v); o.value = v; $(sel).appendChild(o);
  }
  function renderAlerts() {
    const ol = $('alerts');
    clear(ol);
    const rule = $('alert-rule').value, sev = $('alert-severity').value;
    let shown = 0;
    for (let i = alerts.length - 1; i >= 0; i--) {
      const a = alerts[i];
      if ((rule && a.rule_id !== rule) || (sev && a.severity !== sev)) continue;
      const li = el('li', null, 'sev-' + (a.severity || 'unknown'));
      li.dataset.id = a.event_id || '';
      li.dataset.rule = a.rule_id || '';
      const kv = (a.key_fields || []).map(function (k, j) { return k + '=' + ((a.key_values || [])[j] || ''); }).join(' ');
      li.appendChild(el('strong', (a.event_type === 'end' ? 'resolved: ' : '') + (a.rule_name || a.rule_id || 'alert')));
      li.appendChild(document.createTextNode(' ' + (a.severity || '') + ' ' + kv + ' value ' + (a.value !== undefined ? a.value : '')));
      li.appendChild(el('div', a['@timestamp'] || '', 'when'));
      ol.appendChild(li);
      shown++;
    }
    $('alert-count').textContent = shown + ' shown, ' + alerts.length + ' received';
  }
  function onAlert(ev) {
    let a;
    try { a = JSON.parse(ev.data); } catch (e) { return; }
    if (!a || typeof a !== 'object') return;
    alerts.push(a);
    if (alerts.length > MAX_ALERTS) alerts.shift();
    addOption('alert-rule', seenRules, a.rule_id);
    addOption('alert-severity', seenSev, a.severity);
    renderAlerts();
  }
  async function connectAlerts() {
    try {
      const t = await apiJSON('/api/stream-ticket', { method: 'POST' });
      const es = new EventSource('/api/alerts/stream?ticket=' + encodeURIComponent(t.ticket));
      es.onopen = function () { setBadge('alerts-state', 'live', 'ok'); };
      es.onmessage = onAlert;
      es.addEventListener('alert', onAlert);
      es.onerror = function () {
        es.close();
        setBadge('alerts-state', 'reconnecting', 'bad');
        setTimeout(connectAlerts, 3000);
      };
    } catch (e) {
      setBadge('alerts-state', 'unavailable: ' + e.message, 'bad');
      setTimeout(connectAlerts, 5000);
    }
  }

  // ---- live top-N and health (polled) ----
  function firstArray(v) {
    if (Array.isArray(v)) return v;
    if (v && typeof v === 'object') for (const k in v) { const a = firstArray(v[k]); if (a) return a; }
    return null;
  }
  function objectsTable(list) {
    const cols = [];
    list.forEach(function (o) { if (o && typeof o === 'object') Object.keys(o).forEach(function (k) { if (cols.indexOf(k) < 0) cols.push(k); }); });
    return table(cols, list.map(function (o) {
      return cols.map(function (c) { const v = o[c]; return v !== null && typeof v === 'object' ? JSON.stringify(v) : (v === undefined ? '' : v); });
    }));
  }
  async function loadTop() {
    const box = $('top');
    try {
      const data = await apiJSON('/api/windows/top');
      const list = firstArray(data) || [];
      clear(box);
      box.appendChild(list.length ? objectsTable(list.slice(0, 20)) : el('p', 'no keys in open windows', 'muted'));
      setBadge('top-state', 'live', 'ok');
    } catch (e) { clear(box); setBadge('top-state', 'unavailable', 'bad'); box.appendChild(el('p', e.message, 'muted')); }
  }
  async function loadHealth() {
    const box = $('health');
    try {
      const h = await apiJSON('/api/health');
      clear(box);
      const rows = [];
      rows.push(['kafka', h.kafka.status + (h.kafka.error ? ' (' + h.kafka.error + ')' : '')]);
      h.kafka.topics.forEach(function (t) {
        rows.push(['topic ' + t.topic, (t.events_per_sec === null ? 'rate pending' : t.events_per_sec.toFixed(1) + ' ev/s') + ', end offset ' + t.end_offset]);
      });
      h.groups.forEach(function (g) {
        rows.push(['group ' + g.group, g.status === 'ok' ? 'lag ' + g.lag + ' (' + g.state + '), last commit ' + g.last_commit : g.status + (g.error ? ' (' + g.error + ')' : '')]);
      });
      const b = h.batch;
      rows.push(['last batch run', b.last_run ? b.last_run.job + ' ' + b.last_run.interval_start + ' ' + b.last_run.status + ' at ' + b.last_run.finished : b.status + (b.error ? ' (' + b.error + ')' : '')]);
      rows.push(['batch watermark', b.watermark]);
      box.appendChild(table(['part', 'state'], rows));
      setBadge('health-state', h.kafka.status === 'ok' && b.status === 'ok' ? 'ok' : 'degraded', h.kafka.status === 'ok' && b.status === 'ok' ? 'ok' : 'bad');
    } catch (e) { showError(box, e); setBadge('health-state', 'unavailable', 'bad'); }
  }

  function refreshHistory() { loadEventsChart(); loadFailuresChart(); loadSeries(); }

  async function start() {
    const today = new Date();
    const from = new Date(today.getTime() - 6 * 86400000);
    $('from').value = isoDay(from);
    $('to').value = isoDay(today);
    const u = new URL(window.location.href);
    if (u.searchParams.get('from')) $('from').value = u.searchParams.get('from');
    if (u.searchParams.get('to')) $('to').value = u.searchParams.get('to');
    $('range').addEventListener('submit', function (e) { e.preventDefault(); refreshHistory(); renderParamInputs(); });
    $('alert-rule').addEventListener('change', renderAlerts);
    $('alert-severity').addEventListener('change', renderAlerts);
    $('series-metric').addEventListener('change', loadSeries);
    $('series-key').addEventListener('change', loadSeries);
    $('report-name').addEventListener('change', renderParamInputs);
    $('report-form').addEventListener('submit', function (e) { e.preventDefault(); runReport(); });
    $('report-csv').addEventListener('click', function () {
      downloadCSV($('report-name').value, reportParams()).catch(function (e) { showError($('report-table'), e); });
    });
    document.querySelectorAll('button.csv').forEach(function (b) {
      b.addEventListener('click', function () {
        downloadCSV(b.dataset.report, range()).catch(function (e) { $('status').textContent = e.message; });
      });
    });
    $('status').textContent = token ? '' : 'no token: add ?token=... to the address';
    connectAlerts();
    loadTop(); loadHealth();
    setInterval(loadTop, 5000);
    setInterval(loadHealth, 5000);
    await Promise.all([loadCatalog(), loadMetrics()]);
    refreshHistory();
  }

  document.addEventListener('DOMContentLoaded', start);
})();
