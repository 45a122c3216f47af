// The testnet page: reads /snapshot (built by `gossipcoin testnet ui` from every node's API)
// every second and draws the nodes as cards, the peer graph as SVG, and for the latest blocks
// when each node had them; a banner says when the nodes are on more than one tip (a fork), when
// the network is partitioned, or the peer graph split. Above TABLE_ABOVE nodes the cards and
// the graph give way to one table. Everything goes in as text nodes or attributes set one by one.
'use strict';

(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const EVERY_MS = 1000;
  const TABLE_ABOVE = 30;
  const live = document.getElementById('live');

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  const short = (h) => (typeof h === 'string' && h.length > 20 ? h.slice(0, 10) + '…' + h.slice(-6) : (h || '–'));
  const dash = (v) => (v === null || v === undefined ? '–' : v);

  // What a node's state badge says: a node off the best tip is not "synced", whatever it thinks.
  function stateOf(n) {
    if (!n.up) return ['down', false];
    if (n.error) return ['no answer', false];
    if (n.chain === 'fork') return ['on another tip', false];
    if (n.chain === 'behind') return ['behind', false];
    return [dash(n.sync), true];
  }

  function card(n) {
    const [state, good] = stateOf(n);
    const c = el('div', { class: n.up ? 'card' : 'card down', 'data-node': n.name, 'data-up': n.up },
      el('span', { class: 'state ' + (good ? 'ok' : 'bad') }, state),
      el('h3', {}, n.name),
      el('dl', { class: 'facts' },
        el('dt', {}, 'role'), el('dd', {}, n.role),
        el('dt', {}, 'height'), el('dd', { class: 'height' }, dash(n.height)),
        el('dt', {}, 'tip'), el('dd', { class: 'hash' }, short(n.tip)),
        el('dt', {}, 'peers'), el('dd', {}, dash(n.peers)),
        el('dt', {}, 'mempool'), el('dd', {}, n.mempool_txs === null ? '–' : n.mempool_txs + ' txs'),
        el('dt', {}, 'API'), el('dd', { class: 'mono' }, n.api)));
    if (n.error) c.append(el('p', { class: 'error' }, n.error));
    return c;
  }

  function graph(nodes, edges) {
    const size = 360, mid = size / 2, radius = size / 2 - 50;
    const at = new Map();
    nodes.forEach((n, i) => {
      const a = (2 * Math.PI * i) / Math.max(nodes.length, 1) - Math.PI / 2;
      at.set(n.name, [mid + radius * Math.cos(a), mid + radius * Math.sin(a)]);
    });
    const root = svg('svg', { class: 'graph', viewBox: '0 0 ' + size + ' ' + size, role: 'img' });
    root.append(svg('title', {}, 'Who is connected to whom'));
    for (const [a, b] of edges) {
      if (!at.has(a) || !at.has(b)) continue;
      const [x1, y1] = at.get(a), [x2, y2] = at.get(b);
      root.append(svg('line', { x1, y1, x2, y2, 'data-edge': a + ' ' + b }));
    }
    for (const n of nodes) {
      const [x, y] = at.get(n.name);
      root.append(svg('circle', { cx: x, cy: y, r: 14, class: n.up ? '' : 'down' }));
      root.append(svg('text', { x: x + 18, y: y + 4 }, n.name));
    }
    return root;
  }

  function banner(s) {
    const lines = [];
    const tips = s.tips || [];
    if (tips.length > 1) {
      lines.push('FORK: the running nodes are on ' + tips.length + ' tips — ' + tips.slice(0, 4)
        .map((t) => short(t.tip) + ' at height ' + t.height + ' (' + t.nodes + ' nodes)').join(', '));
    }
    if (s.partition) {
      lines.push('PARTITIONED into ' + s.partition.length + ' groups: ' + s.partition
        .map((g) => (g.length > 6 ? g.slice(0, 6).join(', ') + ' … (' + g.length + ')' : g.join(', ')))
        .join(' | ') + ' — undo with testnet heal');
    }
    if ((s.graph_parts || 0) > 1) lines.push('The peer graph is split into ' + s.graph_parts + ' parts.');
    const b = document.getElementById('banner');
    b.replaceChildren(...lines.map((l) => el('p', {}, l)));
    b.hidden = lines.length === 0;
  }

  // Above TABLE_ABOVE nodes: one row per node, the unusual ones first.
  function nodeTable(nodes, edges) {
    const degree = new Map(nodes.map((n) => [n.name, 0]));
    for (const [a, b] of edges) {
      degree.set(a, (degree.get(a) || 0) + 1);
      degree.set(b, (degree.get(b) || 0) + 1);
    }
    const sorted = [...nodes].sort((a, b) => Number(stateOf(a)[1]) - Number(stateOf(b)[1]));
    const head = el('tr', {}, ...['Node', 'Role', 'State', 'Height', 'Tip', 'Peers', 'Mempool']
      .map((h) => el('th', {}, h)));
    const rows = sorted.map((n) => {
      const [state, good] = stateOf(n);
      return el('tr', { 'data-node': n.name, 'data-up': n.up },
        el('td', {}, n.name), el('td', {}, n.role),
        el('td', { class: 'state ' + (good ? 'ok' : 'bad') }, state),
        el('td', { class: 'num' }, dash(n.height)), el('td', { class: 'hash' }, short(n.tip)),
        el('td', { class: 'num' }, dash(n.peers) + ' (' + degree.get(n.name) + ' in testnet)'),
        el('td', { class: 'num' }, dash(n.mempool_txs)));
    });
    return el('table', { id: 'node-table' }, el('thead', {}, head), el('tbody', {}, ...rows));
  }

  function timeline(nodes, blocks) {
    if (!blocks.length) return el('p', { class: 'muted' }, 'No block has arrived since the nodes started.');
    const head = el('tr', {}, el('th', {}, 'Height'), el('th', {}, 'Block'), el('th', {}, 'Mined by'),
      ...nodes.map((n) => el('th', {}, n.name)));
    const worst = Math.max(1, ...blocks.flatMap((b) => b.arrivals.map((a) => a.delay_ms || 0)));
    const rows = blocks.map((b) => el('tr', { class: 'arrival', 'data-height': b.height, 'data-hash': b.hash },
      el('td', { class: 'num' }, b.height),
      el('td', { class: 'hash' }, short(b.hash)),
      el('td', {}, dash(b.miner)),
      ...b.arrivals.map((a) => {
        if (a.ms === null) return el('td', { class: 'muted', 'data-node': a.node }, '–');
        const w = 'bar w' + Math.round((10 * (a.delay_ms || 0)) / worst);
        return el('td', { 'data-node': a.node, 'data-delay-ms': a.delay_ms },
          el('span', { class: w }), '+' + a.delay_ms + ' ms');
      })));
    const t = el('table', { id: 'arrivals' }, el('thead', {}, head), el('tbody', {}, ...rows));
    return t;
  }

  async function refresh() {
    try {
      const r = await fetch('/snapshot', { headers: { Accept: 'application/json' } });
      if (!r.ok) throw new Error('HTTP ' + r.status);
      const s = await r.json();
      document.getElementById('where').textContent = s.dir;
      banner(s);
      if (s.nodes.length > TABLE_ABOVE) {
        document.getElementById('cards').replaceChildren(nodeTable(s.nodes, s.edges));
        document.getElementById('graph').replaceChildren(el('p', { class: 'muted' },
          s.nodes.length + ' nodes, ' + s.edges.length + ' connections: too many to draw; '
          + ((s.graph_parts || 0) > 1 ? 'split into ' + s.graph_parts + ' parts.' : 'connected.')));
      } else {
        document.getElementById('cards').replaceChildren(...s.nodes.map(card));
        document.getElementById('graph').replaceChildren(graph(s.nodes, s.edges));
      }
      document.getElementById('timeline').replaceChildren(timeline(s.nodes, s.blocks));
      live.textContent = 'updated ' + new Date().toISOString().slice(11, 19);
      live.className = 'live on';
      document.body.dataset.rendered = String(Date.now());
    } catch (e) {
      live.textContent = 'testnet ui unreachable';
      live.className = 'live';
    }
  }

  refresh();
  setInterval(refresh, EVERY_MS);
})();
