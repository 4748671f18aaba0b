// shardwire live dashboard.
//
// Once a second it reads this node's admin API (api/v1/cluster, api/v1/shardmap,
// api/v1/cache) and its Prometheus metrics (metrics), and redraws the page. Rates and
// latency percentiles come from two successive scrapes: counters and histogram buckets are
// differenced in the browser, over the time between the two answers. Without the admin API
// (a node started without it answers 404) the page says so and shows what the metrics give.
//
// Everything is built with DOM calls and textContent: no HTML is made from data.
'use strict';

(() => {
  const POLL_INTERVAL_MS = 1000;
  const REQUEST_TIMEOUT_MS = 3000;
  // SPARK_POINTS is how many throughput samples a sparkline shows (about a minute).
  const SPARK_POINTS = 60;
  // LAG_WARN_SECONDS matches the replica lag alert.
  const LAG_WARN_SECONDS = 1;
  // Pool saturation thresholds: warn at 70 % of the limit, critical at 90 % (the alert).
  const POOL_WARN = 0.7;
  const POOL_CRITICAL = 0.9;
  // SVG_NS is the XML namespace name of SVG elements; an identifier, never fetched.
  const SVG_NS = 'http://www.w3.org/2000/svg';
  // NODE_WIDE is the scope of histogram series without a group label.
  const NODE_WIDE = '';
  const GROUP_COLORS = ['#2f6fdf', '#e0802b', '#2aa876', '#c8414b', '#8a5cd1', '#1fa2b8', '#b8a01f', '#d0589e',
    '#5b7083', '#7aa33a', '#a8643a', '#4a55c9'];

  // ---------------------------------------------------------------------------------------
  // Prometheus text exposition format.

  // parseValue reads a sample value: a float, NaN, +Inf or -Inf. It returns undefined for
  // anything else.
  function parseValue(s) {
    switch (s) {
      case undefined: case '': return undefined;
      case 'NaN': return NaN;
      case '+Inf': case 'Inf': return Infinity;
      case '-Inf': return -Infinity;
    }
    const v = Number(s);
    return Number.isNaN(v) ? undefined : v;
  }

  // parsePrometheus parses the text format into a Map from metric name to its samples,
  // [{labels: {name: value}, value}]. Comment lines (# HELP, # TYPE) and blank lines are
  // skipped; a malformed line is skipped too, so one bad line never hides the rest.
  function parsePrometheus(text) {
    const out = new Map();
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (line === '' || line[0] === '#') continue;
      const sample = parseSampleLine(line);
      if (!sample) continue;
      let list = out.get(sample.name);
      if (!list) {
        list = [];
        out.set(sample.name, list);
      }
      list.push({labels: sample.labels, value: sample.value});
    }
    return out;
  }

  // parseSampleLine parses `name{label="value",...} value [timestamp]`, or returns null.
  function parseSampleLine(line) {
    let i = 0;
    while (i < line.length && line[i] !== '{' && line[i] !== ' ' && line[i] !== '\t') i++;
    const name = line.slice(0, i);
    if (name === '') return null;
    const labels = {};
    if (line[i] === '{') {
      i++;
      for (;;) {
        while (i < line.length && (line[i] === ' ' || line[i] === ',')) i++;
        if (i >= line.length) return null;
        if (line[i] === '}') {
          i++;
          break;
        }
        const eq = line.indexOf('=', i);
        if (eq < 0) return null;
        const key = line.slice(i, eq).trim();
        i = eq + 1;
        if (line[i] !== '"') return null;
        i++;
        let value = '';
        while (i < line.length && line[i] !== '"') {
          if (line[i] === '\\' && i + 1 < line.length) {
            const c = line[i + 1];
            value += c === 'n' ? '\n' : c;
            i += 2;
          } else {
            value += line[i];
            i++;
          }
        }
        if (i >= line.length) return null;
        i++;
        labels[key] = value;
      }
    }
    const fields = line.slice(i).trim().split(/\s+/);
    const value = parseValue(fields[0]);
    if (value === undefined) return null;
    return {name, labels, value};
  }

  // seriesKey identifies a series by its labels, less the ones named in omit.
  function seriesKey(labels, omit) {
    return Object.keys(labels).filter((k) => !(omit && omit.includes(k))).sort()
      .map((k) => k + '=' + JSON.stringify(labels[k])).join(',');
  }

  // samples returns the samples of a metric in a scrape, [] when it has none.
  function samples(scrape, name) {
    return (scrape && scrape.metrics.get(name)) || [];
  }

  // counterDelta is how much a counter grew between two readings; a counter that went down
  // was reset (the process restarted), and then all of its value is new.
  function counterDelta(now, before) {
    if (before === undefined) return now;
    return now >= before ? now - before : now;
  }

  // counterDeltas pairs a counter's series in two scrapes and returns [{labels, delta}].
  function counterDeltas(cur, prev, name) {
    const before = new Map(samples(prev, name).map((s) => [seriesKey(s.labels), s.value]));
    return samples(cur, name).map((s) => ({labels: s.labels, delta: counterDelta(s.value, before.get(seriesKey(s.labels)))}));
  }

  // sumDelta adds up a counter's growth over all its series that match pred (all when
  // pred is omitted).
  function sumDelta(cur, prev, name, pred) {
    let sum = 0;
    for (const d of counterDeltas(cur, prev, name)) {
      if (!pred || pred(d.labels)) sum += d.delta;
    }
    return sum;
  }

  // gaugeSum adds up a gauge's series that match pred.
  function gaugeSum(scrape, name, pred) {
    let sum = 0;
    for (const s of samples(scrape, name)) {
      if (!pred || pred(s.labels)) sum += s.value;
    }
    return sum;
  }

  // ---------------------------------------------------------------------------------------
  // Histograms.

  // histogramDeltas returns, per scope, the histogram's cumulative bucket counts observed
  // between two scrapes: Map scope -> [{le, count}] sorted by le, the last one +Inf. The
  // scope is the series' `group` label when the histogram has one, else NODE_WIDE (all
  // series summed: the node-wide distribution).
  function histogramDeltas(cur, prev, name) {
    const bucketName = name + '_bucket';
    const countName = name + '_count';
    // A series whose count went down was reset: all of its buckets are new.
    const prevCounts = new Map(samples(prev, countName).map((s) => [seriesKey(s.labels), s.value]));
    const reset = new Set();
    for (const s of samples(cur, countName)) {
      const key = seriesKey(s.labels);
      const before = prevCounts.get(key);
      if (before !== undefined && s.value < before) reset.add(key);
    }
    const prevBuckets = new Map(samples(prev, bucketName).map((s) => [seriesKey(s.labels), s.value]));
    const scopes = new Map();
    for (const s of samples(cur, bucketName)) {
      const le = parseValue(s.labels.le);
      if (le === undefined) continue;
      const series = seriesKey(s.labels, ['le']);
      const before = reset.has(series) ? undefined : prevBuckets.get(seriesKey(s.labels));
      const scope = s.labels.group !== undefined ? s.labels.group : NODE_WIDE;
      let byLe = scopes.get(scope);
      if (!byLe) {
        byLe = new Map();
        scopes.set(scope, byLe);
      }
      byLe.set(le, (byLe.get(le) || 0) + counterDelta(s.value, before));
    }
    const out = new Map();
    for (const [scope, byLe] of scopes) {
      out.set(scope, [...byLe].map(([le, count]) => ({le, count})).sort((a, b) => a.le - b.le));
    }
    return out;
  }

  // quantile estimates the q-quantile from cumulative buckets as Prometheus'
  // histogram_quantile does: linear interpolation inside the bucket holding the rank, the
  // lowest bucket starting at 0, and the highest finite bound when the rank falls in +Inf.
  // NaN when the buckets hold no observation.
  function quantile(q, buckets) {
    if (buckets.length === 0) return NaN;
    const total = buckets[buckets.length - 1].count;
    if (!(total > 0)) return NaN;
    const rank = q * total;
    let i = buckets.findIndex((b) => b.count >= rank);
    if (i < 0) i = buckets.length - 1;
    if (buckets[i].le === Infinity) return buckets.length > 1 ? buckets[buckets.length - 2].le : NaN;
    const lower = i === 0 ? 0 : buckets[i - 1].le;
    const below = i === 0 ? 0 : buckets[i - 1].count;
    const inBucket = buckets[i].count - below;
    if (inBucket <= 0) return buckets[i].le;
    return lower + (buckets[i].le - lower) * (rank - below) / inBucket;
  }

  // ---------------------------------------------------------------------------------------
  // Formatting and DOM helpers.

  // el builds an element: el('td', {class: 'num', dataset: {group: 'g0'}}, 'text', child).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function svg(tag, attrs) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k === 'class') e.className = v;
      else if (k === 'colorVar') e.style.setProperty('--group-color', v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }

  // table builds a table from header labels and rows of cells (a cell: a node, text, or
  // {v: content, class, attrs}); rowAttrs(i) gives each row's attributes.
  function table(headers, rows, rowAttrs) {
    const thead = el('thead', null, el('tr', null, ...headers.map((h) => el('th', null, h))));
    const tbody = el('tbody');
    rows.forEach((cells, i) => {
      const tr = el('tr', rowAttrs ? rowAttrs(i) : null);
      for (const c of cells) {
        if (c !== null && typeof c === 'object' && !(c instanceof Node)) {
          tr.append(el('td', Object.assign({class: c.class}, c.attrs), c.v));
        } else {
          tr.append(el('td', null, c));
        }
      }
      tbody.append(tr);
    });
    return el('table', null, thead, tbody);
  }

  function empty(text) {
    return el('p', {class: 'empty'}, text);
  }

  function fmtRate(perSecond) {
    if (perSecond === undefined || Number.isNaN(perSecond)) return '—';
    if (perSecond >= 1000) return (perSecond / 1000).toFixed(1) + 'k/s';
    if (perSecond >= 10) return perSecond.toFixed(0) + '/s';
    return perSecond.toFixed(1) + '/s';
  }

  function fmtSeconds(s) {
    if (s === undefined || s === null || Number.isNaN(s)) return '—';
    if (s === Infinity) return '∞';
    if (s === 0) return '0 ms';
    if (s < 0.001) return (s * 1e6).toFixed(0) + ' µs';
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms';
    return s.toFixed(2) + ' s';
  }

  function fmtPercent(x) {
    if (x === undefined || Number.isNaN(x)) return '—';
    return (x * 100).toFixed(x >= 0.999 || x === 0 ? 0 : 1) + ' %';
  }

  function fmtBytes(n) {
    if (n < 1024) return n + ' B';
    if (n < 1 << 20) return (n / 1024).toFixed(1) + ' KiB';
    if (n < 1 << 30) return (n / (1 << 20)).toFixed(1) + ' MiB';
    return (n / (1 << 30)).toFixed(2) + ' GiB';
  }

  function fmtAgo(iso, now) {
    if (!iso) return '—';
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return '—';
    const s = Math.max(0, Math.round((now - t) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }

  function badge(text, kind) {
    return el('span', {class: 'badge ' + kind}, text);
  }

  function yesNo(ok, yes, no) {
    return ok ? badge(yes, 'ok') : badge(no, 'bad');
  }

  // swatch is a small square in a group's colour, then the group's name.
  function groupLabel(name, colors) {
    return el('span', {class: 'group-label'}, el('span', {class: 'swatch', colorVar: colors.get(name) || '#999'}), name);
  }

  // bar is a horizontal gauge of fraction (0..1).
  function bar(fraction, level) {
    const fill = el('span', {class: 'fill ' + level});
    fill.style.width = Math.max(0, Math.min(1, fraction)) * 100 + '%';
    return el('span', {class: 'bar'}, fill);
  }

  // sparkline draws values (oldest first) as an SVG line over an area, scaled to their max.
  function sparkline(values, color) {
    const w = 120;
    const h = 28;
    const s = svg('svg', {width: w, height: h, viewBox: `0 0 ${w} ${h}`, class: 'spark', role: 'img',
      'aria-label': 'last minute'});
    if (values.length < 2) return s;
    const max = Math.max(...values, 1e-9);
    const step = w / (SPARK_POINTS - 1);
    const x0 = w - step * (values.length - 1);
    const pts = values.map((v, i) => [x0 + i * step, h - 2 - (v / max) * (h - 4)]);
    const line = pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
    s.append(svg('polygon', {points: `${x0.toFixed(1)},${h} ${line} ${w},${h}`, fill: color, 'fill-opacity': 0.18}));
    s.append(svg('polyline', {points: line, fill: 'none', stroke: color, 'stroke-width': 1.5, 'stroke-linejoin': 'round'}));
    return s;
  }

  // ---------------------------------------------------------------------------------------
  // Fetching.

  // getJSON fetches an API path: {ok, status, data} or {ok: false, status, error}.
  async function getJSON(path) {
    try {
      const res = await fetchWithTimeout(path, 'application/json');
      const text = await res.text();
      let data;
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = undefined;
      }
      if (!res.ok) {
        const msg = data && data.error ? data.error : text.trim() || res.statusText;
        return {ok: false, status: res.status, error: `${path}: ${res.status} ${msg}`};
      }
      if (data === undefined) return {ok: false, status: res.status, error: `${path}: not JSON`};
      return {ok: true, status: res.status, data};
    } catch (e) {
      return {ok: false, status: 0, error: `${path}: ${e.message || e}`};
    }
  }

  // getMetrics scrapes metrics: {ok, scrape: {at, metrics}} or {ok: false, error}.
  async function getMetrics() {
    try {
      const res = await fetchWithTimeout('metrics', 'text/plain;version=0.0.4;q=1,*/*;q=0.1');
      if (!res.ok) return {ok: false, error: `metrics: ${res.status} ${res.statusText}`};
      const text = await res.text();
      return {ok: true, scrape: {at: performance.now(), metrics: parsePrometheus(text)}};
    } catch (e) {
      return {ok: false, error: `metrics: ${e.message || e}`};
    }
  }

  async function fetchWithTimeout(path, accept) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(new Error('no answer within ' + REQUEST_TIMEOUT_MS / 1000 + ' s')), REQUEST_TIMEOUT_MS);
    try {
      return await fetch(path, {cache: 'no-store', headers: {Accept: accept}, signal: ctl.signal});
    } finally {
      clearTimeout(timer);
    }
  }

  // ---------------------------------------------------------------------------------------
  // State kept between polls.

  const state = {
    prevScrape: null, // the previous successful metrics scrape
    history: new Map(), // group -> throughput samples (per second), oldest first
    polls: 0,
  };

  function $(id) {
    return document.getElementById(id);
  }

  // groupColors assigns each group a colour by its place in the map (then by first sight).
  function groupColors(shardmap, extraGroups) {
    const names = [];
    if (shardmap) for (const g of shardmap.groups || []) names.push(g.name);
    for (const g of extraGroups) if (!names.includes(g)) names.push(g);
    return new Map(names.map((n, i) => [n, GROUP_COLORS[i % GROUP_COLORS.length]]));
  }

  // endpointIndex maps a backend address to its group and role, from the health checker's
  // metrics, the shard map and the cluster view (the later ones win).
  function endpointIndex(cluster, shardmap, scrape) {
    const idx = new Map();
    for (const s of samples(scrape, 'shardwire_endpoint_up')) idx.set(s.labels.endpoint, {group: s.labels.group, role: s.labels.role});
    if (shardmap) {
      for (const g of shardmap.groups || []) {
        idx.set(g.writer, {group: g.name, role: 'writer'});
        for (const r of g.replicas || []) idx.set(r, {group: g.name, role: 'replica'});
      }
    }
    if (cluster) for (const e of cluster.endpoints || []) idx.set(e.addr, {group: e.group, role: e.role});
    return idx;
  }

  // ---------------------------------------------------------------------------------------
  // Rendering, one function per section.

  function renderHeader(cluster, shardmap, apiMissing) {
    const self = cluster ? (cluster.members || []).find((m) => m.self) : null;
    const name = cluster ? cluster.node : location.host;
    $('node-name').textContent = name;
    document.title = 'shardwire · ' + name;
    const facts = [];
    if (self) {
      facts.push(['region', self.region || '—'], ['version', self.version || '—']);
    }
    if (shardmap) {
      facts.push(['map epoch', String(shardmap.epoch)]);
      const lease = shardmap.lease || {};
      facts.push(['lease', lease.valid ? (lease.ttl_seconds > 0 ? `valid (${lease.age_seconds.toFixed(1)} s old)` : 'valid') : 'EXPIRED']);
    }
    if (cluster) facts.push(['mode', cluster.clustered ? 'clustered' : 'standalone']);
    if (apiMissing) facts.push(['admin API', 'off']);
    $('facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', null, k), el('dd', {class: v === 'EXPIRED' ? 'bad-text' : null}, v)]));
  }

  function renderStatus(errors, now) {
    const st = $('status');
    if (errors.length === 0) {
      st.dataset.ok = 'true';
      $('status-text').textContent = 'live · updated ' + new Date(now).toLocaleTimeString();
    } else {
      st.dataset.ok = 'false';
      $('status-text').textContent = errors.join(' · ');
    }
  }

  function renderNotice(apiMissing) {
    const n = $('notice');
    if (apiMissing) {
      n.hidden = false;
      n.textContent = 'The admin API is not enabled on this node: cluster members, the shard map, backend health ' +
        'and the cache status cannot be shown. Throughput, latency, replica lag, pools and cache rates below ' +
        'come from its metrics alone.';
    } else {
      n.hidden = true;
      n.textContent = '';
    }
  }

  function renderKPIs(cur, prev, dt) {
    const items = [];
    const rate = (name) => (prev ? sumDelta(cur, prev, name) / dt : NaN);
    items.push(['queries', fmtRate(rate('shardwire_query_duration_seconds_count'))]);
    items.push(['errors', fmtRate(rate('shardwire_errors_total'))]);
    items.push(['clients', cur ? String(gaugeSum(cur, 'shardwire_clients_active')) : '—']);
    items.push(['waiting clients', cur ? String(gaugeSum(cur, 'shardwire_pool_waiting_clients')) : '—']);
    $('kpis').replaceChildren(...items.map(([k, v]) => el('div', {class: 'kpi'}, el('div', {class: 'kpi-value'}, v), el('div', {class: 'kpi-label'}, k))));
  }

  function renderMembers(cluster, shardmap, apiMissing, apiError) {
    const box = $('members');
    if (apiMissing) return box.replaceChildren(empty('Needs the admin API.'));
    if (!cluster) return box.replaceChildren(empty(apiError || 'Waiting for api/v1/cluster…'));
    const members = cluster.members || [];
    const now = Date.now();
    const counts = {alive: 0, dead: 0, left: 0};
    for (const m of members) counts[m.state] = (counts[m.state] || 0) + 1;
    const summary = el('p', {class: 'summary', id: 'members-summary'},
      `${members.length} members: ${counts.alive} alive, ${counts.dead} dead, ${counts.left} left`);
    const mapEpoch = shardmap ? shardmap.epoch : undefined;
    // The version column appears while members run different builds (a rolling upgrade).
    const mixedVersions = new Set(members.map((m) => m.version)).size > 1;
    const rows = members.map((m) => {
      const kind = m.state === 'alive' ? 'ok' : m.state === 'left' ? 'muted' : 'bad';
      const nameCell = el('span', {title: 'version ' + (m.version || '?') + ', gossip ' + (m.gossip_addr || '?')}, m.name,
        m.self ? el('span', {class: 'self'}, 'this node') : null);
      let nameNode = nameCell;
      if (!m.self && m.state === 'alive' && m.admin_addr && !m.admin_addr.startsWith(':') && !m.admin_addr.startsWith('0.0.0.0')) {
        nameNode = el('a', {href: location.protocol + '//' + m.admin_addr + '/', title: 'open its dashboard'}, nameCell);
      }
      const epochCell = mapEpoch !== undefined && m.state === 'alive' && m.epoch !== mapEpoch
        ? {v: `${m.epoch} (this node: ${mapEpoch})`, class: 'warn-text'} : String(m.epoch);
      const alive = m.state === 'alive';
      return [
        nameNode,
        {v: badge(m.state, kind), class: 'state'},
        m.region || '—',
        epochCell,
        alive ? yesNo(m.lease_ok, 'ok', 'expired') : '—',
        alive ? yesNo(m.ready, 'ready', 'not ready') : '—',
        mixedVersions ? m.version || '—' : null,
        m.pg_addr || '—',
        fmtAgo(m.since, now),
      ].filter((c) => c !== null);
    });
    const headers = ['node', 'state', 'region', 'epoch', 'lease', 'readiness', mixedVersions ? 'version' : null, 'client address', 'since'];
    box.replaceChildren(summary, table(headers.filter((h) => h !== null),
      rows, (i) => ({dataset: {member: members[i].name, state: members[i].state}, class: 'member state-' + members[i].state})));
  }

  function renderShardMap(shardmap, colors, apiMissing, apiError) {
    const grid = $('shards');
    const legend = $('group-legend');
    if (apiMissing || !shardmap) {
      $('map-epoch').textContent = '';
      grid.replaceChildren();
      legend.replaceChildren(empty(apiMissing ? 'Needs the admin API.' : apiError || 'Waiting for api/v1/shardmap…'));
      return;
    }
    $('map-epoch').textContent = `epoch ${shardmap.epoch} · default group ${shardmap.default_group}`;
    const cells = (shardmap.shards || []).map((s) => el('div', {
      class: 'shard state-' + s.state, role: 'gridcell', colorVar: colors.get(s.group) || '#999',
      dataset: {shard: String(s.shard), group: s.group, state: s.state},
      title: `shard ${s.shard}: group ${s.group}, ${s.state}`,
    }, el('span', {class: 'shard-no'}, String(s.shard)), el('span', {class: 'shard-group'}, s.group),
    el('span', {class: 'shard-state'}, s.state)));
    grid.replaceChildren(...cells);
    const moving = (shardmap.shards || []).filter((s) => s.state !== 'active').length;
    legend.replaceChildren(
      ...(shardmap.groups || []).map((g) => el('span', {class: 'legend-item'}, groupLabel(g.name, colors),
        el('span', {class: 'legend-detail'}, `${(g.shards || []).length} shards · ${g.region || '—'} · ${1 + (g.replicas || []).length} servers`))),
      el('span', {class: 'legend-item legend-states'}, badge('active', 'ok'), badge('moving', 'warn'), badge('frozen', 'frozen'),
        el('span', {class: 'legend-detail'}, moving === 0 ? 'no move in progress' : `${moving} shard(s) not active`)),
    );
  }

  function renderThroughput(cur, prev, dt, shardmap, colors) {
    const box = $('throughput');
    if (!cur) return box.replaceChildren(empty('Waiting for metrics…'));
    const perGroup = new Map();
    const groupsSeen = [];
    if (shardmap) for (const g of shardmap.groups || []) groupsSeen.push(g.name);
    for (const s of samples(cur, 'shardwire_routed_total')) if (!groupsSeen.includes(s.labels.group)) groupsSeen.push(s.labels.group);
    if (prev) {
      for (const d of counterDeltas(cur, prev, 'shardwire_routed_total')) {
        const g = perGroup.get(d.labels.group) || {writer: 0, replica: 0};
        g[d.labels.role === 'replica' ? 'replica' : 'writer'] += d.delta / dt;
        perGroup.set(d.labels.group, g);
      }
      for (const name of groupsSeen) {
        const g = perGroup.get(name) || {writer: 0, replica: 0};
        const hist = state.history.get(name) || [];
        hist.push(g.writer + g.replica);
        if (hist.length > SPARK_POINTS) hist.shift();
        state.history.set(name, hist);
      }
    }
    if (groupsSeen.length === 0) return box.replaceChildren(empty('No routed work yet.'));
    const rows = groupsSeen.map((name) => {
      const g = perGroup.get(name);
      const total = g ? g.writer + g.replica : NaN;
      return [
        groupLabel(name, colors),
        {v: g ? fmtRate(g.writer) : '—', class: 'num'},
        {v: g ? fmtRate(g.replica) : '—', class: 'num'},
        {v: fmtRate(total), class: 'num strong', attrs: {dataset: {rate: Number.isNaN(total) ? '' : String(total)}}},
        sparkline(state.history.get(name) || [], colors.get(name) || '#888'),
      ];
    });
    box.replaceChildren(table(['group', 'writer', 'replicas', 'total', 'last minute'], rows,
      (i) => ({dataset: {group: groupsSeen[i]}})));
  }

  function renderLatency(cur, prev, dt) {
    const box = $('latency');
    const name = 'shardwire_query_duration_seconds';
    if (!cur) return box.replaceChildren(empty('Waiting for metrics…'));
    if (samples(cur, name + '_bucket').length === 0) {
      $('latency-scope').textContent = '';
      return box.replaceChildren(empty('This node exports no query latency histogram.'));
    }
    if (!prev) return box.replaceChildren(empty('Needs two scrapes: a second or so…'));
    const scopes = histogramDeltas(cur, prev, name);
    const perGroup = !scopes.has(NODE_WIDE);
    $('latency-scope').textContent = perGroup
      ? 'per group, over the last interval'
      : 'node-wide (the histogram has no group label), over the last interval';
    const rows = [...scopes].sort(([a], [b]) => a.localeCompare(b)).map(([scope, buckets]) => {
      const count = buckets.length ? buckets[buckets.length - 1].count : 0;
      const q = (p) => (count > 0 ? fmtSeconds(quantile(p, buckets)) : 'idle');
      return [scope === NODE_WIDE ? 'all queries' : scope, {v: fmtRate(count / dt), class: 'num'},
        {v: q(0.5), class: 'num'}, {v: q(0.95), class: 'num strong'}, {v: q(0.99), class: 'num'}];
    });
    box.replaceChildren(table([perGroup ? 'group' : 'scope', 'queries', 'p50', 'p95', 'p99'], rows,
      (i) => ({dataset: {scope: [...scopes.keys()].sort()[i]}})));
  }

  function lagCell(role, lag, up) {
    if (role === 'writer') return {v: 'writer', class: 'num muted'};
    if (!up) return {v: 'down', class: 'num bad-text'};
    if (lag === null || lag === undefined || lag === Infinity || Number.isNaN(lag)) return {v: 'unknown', class: 'num warn-text'};
    return {v: fmtSeconds(lag), class: 'num ' + (lag > LAG_WARN_SECONDS ? 'bad-text' : 'ok-text'), attrs: {dataset: {lag: String(lag)}}};
  }

  function renderLag(cluster, cur, colors, apiMissing) {
    const box = $('lag');
    if (cluster && (cluster.endpoints || []).length > 0) {
      const eps = cluster.endpoints;
      const rows = eps.map((e) => [
        groupLabel(e.group, colors), e.role, e.addr, e.region || '—',
        e.up ? (e.banned ? badge('banned', 'warn') : badge('up', 'ok')) : badge('down', 'bad'),
        lagCell(e.role, e.lag_seconds, e.up),
        e.last_error ? {v: e.last_error, class: 'error-text'} : '',
      ]);
      return box.replaceChildren(table(['group', 'role', 'address', 'region', 'health', 'lag', 'last error'], rows,
        (i) => ({dataset: {endpoint: eps[i].addr, role: eps[i].role}})));
    }
    // Without the API (or before its first answer): the health checker's gauges.
    const lags = samples(cur, 'shardwire_replica_lag_seconds');
    if (lags.length === 0) return box.replaceChildren(empty(apiMissing || cur ? 'No backend is health-checked.' : 'Waiting…'));
    const up = new Map(samples(cur, 'shardwire_endpoint_up').map((s) => [s.labels.endpoint, s]));
    const rows = lags.map((s) => {
      const u = up.get(s.labels.endpoint);
      const role = u ? u.labels.role : (s.value === 0 ? 'writer' : 'replica');
      const isUp = u ? u.value === 1 : s.value !== Infinity;
      return [groupLabel(s.labels.group, colors), role, s.labels.endpoint, '—',
        isUp ? badge('up', 'ok') : badge('down', 'bad'), lagCell(role, s.value, isUp), ''];
    });
    box.replaceChildren(table(['group', 'role', 'address', 'region', 'health', 'lag', ''], rows));
  }

  // roleOrder sorts a group's writer before its replicas.
  function roleOrder(role) {
    return role === 'writer' ? 0 : 1;
  }

  function renderPools(cur, cluster, shardmap, colors) {
    const box = $('pools');
    if (!cur) return box.replaceChildren(empty('Waiting for metrics…'));
    const idx = endpointIndex(cluster, shardmap, cur);
    const pools = new Map();
    const pool = (labels) => {
      const key = seriesKey(labels, ['state']);
      let p = pools.get(key);
      if (!p) {
        p = {endpoint: labels.endpoint, database: labels.database, user: labels.user, active: 0, idle: 0, size: 0, waiting: 0};
        pools.set(key, p);
      }
      return p;
    };
    for (const s of samples(cur, 'shardwire_pool_servers')) {
      const p = pool(s.labels);
      if (s.labels.state === 'active') p.active += s.value;
      else if (s.labels.state === 'idle') p.idle += s.value;
    }
    for (const s of samples(cur, 'shardwire_pool_size')) pool(s.labels).size += s.value;
    for (const s of samples(cur, 'shardwire_pool_waiting_clients')) pool(s.labels).waiting += s.value;
    if (pools.size === 0) return box.replaceChildren(empty('No server pool yet: pools open with the first client of each database and user.'));
    const list = [...pools.values()].map((p) => Object.assign(p, idx.get(p.endpoint) || {group: '?', role: '?'}))
      .sort((a, b) => a.group.localeCompare(b.group) || roleOrder(a.role) - roleOrder(b.role) || a.endpoint.localeCompare(b.endpoint) ||
        a.database.localeCompare(b.database) || a.user.localeCompare(b.user));
    let inUse = 0;
    let limit = 0;
    const rows = list.map((p) => {
      inUse += p.active;
      limit += p.size;
      const sat = p.size > 0 ? p.active / p.size : 0;
      const level = sat >= POOL_CRITICAL ? 'bad' : sat >= POOL_WARN ? 'warn' : 'ok';
      return [groupLabel(p.group, colors), p.role, p.endpoint, `${p.database} / ${p.user}`,
        el('span', {class: 'bar-cell'}, bar(sat, level), el('span', {class: 'num'}, `${p.active}/${p.size} · ${fmtPercent(sat)}`)),
        {v: String(p.idle), class: 'num'}, {v: String(p.waiting), class: 'num ' + (p.waiting > 0 ? 'warn-text' : '')}];
    });
    box.replaceChildren(
      el('p', {class: 'summary'}, `${inUse} of ${limit} server connections in use (${fmtPercent(limit > 0 ? inUse / limit : 0)})`),
      table(['group', 'role', 'endpoint', 'database / user', 'in use', 'idle', 'waiting'], rows,
        (i) => ({dataset: {endpoint: list[i].endpoint}})));
  }

  function renderCache(cache, cur, prev, apiMissing, apiError) {
    const box = $('cache');
    const parts = [];
    const hitsAPI = new Map();
    if (cache) {
      if (!cache.enabled) return box.replaceChildren(empty('Cache off: no table is cacheable on this node.'));
      parts.push(el('p', {class: 'summary'},
        cache.usable ? badge('serving', 'ok') : badge('not serving', 'bad'), ' ',
        cache.redis_up ? badge('Redis up', 'ok') : badge('no Redis', 'muted'),
        ` ${cache.entries} entries in memory (${fmtBytes(cache.bytes)}) · ${cache.fills} fills · hit rate since start ${fmtPercent(cache.hit_rate)}`));
      for (const l of cache.layers || []) hitsAPI.set(l.layer, l.hit_rate);
    } else if (!apiMissing && apiError) {
      parts.push(el('p', {class: 'summary error-text'}, apiError));
    }
    const hitSeries = samples(cur, 'shardwire_cache_hits_total');
    if (!cur || hitSeries.length === 0) {
      parts.push(empty(cur ? 'This node exports no cache metrics.' : 'Waiting for metrics…'));
      return box.replaceChildren(...parts);
    }
    const layers = [...new Set(hitSeries.map((s) => s.labels.layer))].sort();
    const hits = new Map(layers.map((l) => [l, prev ? sumDelta(cur, prev, 'shardwire_cache_hits_total', (lb) => lb.layer === l) : NaN]));
    const misses = prev ? sumDelta(cur, prev, 'shardwire_cache_misses_total') : NaN;
    // A lookup reaches a layer when every layer before it missed: l1 sees every lookup.
    const rows = layers.map((l, i) => {
      let reached = misses;
      for (const later of layers.slice(i)) reached += hits.get(later);
      const h = hits.get(l);
      return [l === 'l1' ? 'l1 (memory)' : l === 'l2' ? 'l2 (Redis)' : l, {v: fmtRate(h / dt(cur, prev)), class: 'num'},
        {v: reached > 0 ? fmtPercent(h / reached) : 'idle', class: 'num strong'},
        {v: hitsAPI.has(l) ? fmtPercent(hitsAPI.get(l)) : '—', class: 'num'}];
    });
    let allHits = 0;
    for (const h of hits.values()) allHits += h;
    const lookups = allHits + misses;
    rows.push(['all layers', {v: fmtRate(allHits / dt(cur, prev)), class: 'num'},
      {v: lookups > 0 ? fmtPercent(allHits / lookups) : 'idle', class: 'num strong'},
      {v: cache ? fmtPercent(cache.hit_rate) : '—', class: 'num'}]);
    parts.push(table(['layer', 'hits', 'hit rate (interval)', 'since start'], rows));
    box.replaceChildren(...parts);
  }

  // dt is the time between two scrapes, in seconds (NaN without a previous one).
  function dt(cur, prev) {
    return cur && prev ? Math.max(0.001, (cur.at - prev.at) / 1000) : NaN;
  }

  // ---------------------------------------------------------------------------------------
  // The poll loop.

  // poll reads everything once, redraws, and schedules the next poll whatever happened.
  async function poll() {
    const started = performance.now();
    try {
      await refresh();
    } catch (e) {
      renderStatus(['dashboard: ' + (e.message || e)], Date.now());
    }
    state.polls++;
    document.body.dataset.polls = String(state.polls);
    setTimeout(poll, Math.max(0, POLL_INTERVAL_MS - (performance.now() - started)));
  }

  async function refresh() {
    const [clusterRes, mapRes, cacheRes, metricsRes] = await Promise.all([
      getJSON('api/v1/cluster'), getJSON('api/v1/shardmap'), getJSON('api/v1/cache'), getMetrics(),
    ]);
    const apiMissing = clusterRes.status === 404 && mapRes.status === 404;
    document.body.dataset.api = apiMissing ? 'off' : clusterRes.ok ? 'on' : 'error';
    const errors = [];
    if (!apiMissing) {
      for (const r of [clusterRes, mapRes, cacheRes]) if (!r.ok) errors.push(r.error);
    }
    if (!metricsRes.ok) errors.push(metricsRes.error);
    const cluster = clusterRes.ok ? clusterRes.data : null;
    const shardmap = mapRes.ok ? mapRes.data : null;
    const cache = cacheRes.ok ? cacheRes.data : null;
    // On a failed scrape, keep the last one: rates pick up again from it on the next success.
    const cur = metricsRes.ok ? metricsRes.scrape : null;
    const prev = state.prevScrape;
    const interval = dt(cur, prev);
    const routedGroups = samples(cur, 'shardwire_routed_total').map((s) => s.labels.group);
    const lagGroups = samples(cur, 'shardwire_replica_lag_seconds').map((s) => s.labels.group);
    const colors = groupColors(shardmap, [...routedGroups, ...lagGroups]);

    renderHeader(cluster, shardmap, apiMissing);
    renderNotice(apiMissing);
    renderStatus(errors, Date.now());
    renderMembers(cluster, shardmap, apiMissing, clusterRes.error);
    renderShardMap(shardmap, colors, apiMissing, mapRes.error);
    if (cur) {
      renderKPIs(cur, prev, interval);
      renderThroughput(cur, prev, interval, shardmap, colors);
      renderLatency(cur, prev, interval);
      renderPools(cur, cluster, shardmap, colors);
      renderCache(cache, cur, prev, apiMissing, cacheRes.error);
      state.prevScrape = cur;
    } else if (cache || cacheRes.error) {
      renderCache(cache, null, null, apiMissing, cacheRes.error);
    }
    renderLag(cluster, cur || prev, colors, apiMissing);
    document.body.classList.toggle('stale', errors.length > 0 && !cluster && !cur);
  }

  // The parser and the quantile estimate, for checks from a browser console or a test.
  window.shardwireDashboard = {parsePrometheus, quantile, histogramDeltas};

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', poll);
  else poll();
})();
