// The gossipcoin explorer: renders this node's JSON API into the page. Every value is put in
// with text nodes (el() below), never parsed as HTML; links are "#/kind/<encoded id>" routes.
// Live: the node's /events stream (server-sent events) says when the chain or mempool changed;
// if the stream cannot be opened, /status is polled instead.
'use strict';

(function () {
  const view = document.getElementById('view');
  const live = document.getElementById('live');
  const POLL_MS = 3000;
  let generation = 0;   // a render started later wins over an earlier one still loading
  let last = null;      // the last state the node reported
  const seen = new Set(); // block hashes already shown, to mark fresh rows

  // ---- DOM building: the only way anything reaches the page ----
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
  const route = (kind, id) => '#/' + kind + '/' + encodeURIComponent(String(id));
  const link = (kind, id, text) => el('a', { href: route(kind, id) }, text === undefined ? id : text);
  const short = (h) => (typeof h === 'string' && h.length > 20 ? h.slice(0, 10) + '…' + h.slice(-8) : h);
  const time = (secs) => new Date(secs * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  const clock = (ms) => (ms ? new Date(ms).toISOString().slice(11, 23) : '–');
  const coins = (a) => (a === null || a === undefined ? '?' : a + ' coins');

  function facts(rows) {
    const dl = el('dl', { class: 'facts' });
    for (const [name, value, attrs] of rows) {
      dl.append(el('dt', {}, name), el('dd', attrs || {}, value));
    }
    return dl;
  }

  function table(headers, rows, attrs) {
    const t = el('table', attrs || {});
    t.append(el('thead', {}, el('tr', {}, ...headers.map((h) => el('th', {}, h)))));
    const body = el('tbody');
    for (const r of rows) body.append(r);
    t.append(body);
    return t;
  }

  function show(gen, ...nodes) {
    if (gen !== generation) return false;
    view.replaceChildren(...nodes);
    document.body.dataset.rendered = String(Date.now());
    if (!document.body.dataset.firstRenderMs) {
      // ms from the start of navigation to the first page drawn with the node's data
      document.body.dataset.firstRenderMs = String(Math.round(performance.now()));
    }
    return true;
  }

  function failure(gen, message) {
    show(gen, el('p', { class: 'error', id: 'error' }, message));
  }

  async function api(path) {
    const r = await fetch(path, { headers: { Accept: 'application/json' } });
    let body = null;
    try {
      body = await r.json();
    } catch (_) {
      body = { error: r.status + ' ' + r.statusText };
    }
    if (!r.ok) {
      const e = new Error(body && body.error ? body.error : 'HTTP ' + r.status);
      e.status = r.status;
      throw e;
    }
    return body;
  }

  // ---- pages ----
  async function overview(gen) {
    const [st, recent] = await Promise.all([api('/status'), api('/blocks/recent?count=15')]);
    const rows = recent.blocks.map((b) => {
      const fresh = seen.size > 0 && !seen.has(b.hash);
      seen.add(b.hash);
      return el('tr', { class: fresh ? 'block fresh' : 'block', 'data-height': b.height, 'data-hash': b.hash },
        el('td', { class: 'num' }, link('block', b.height, String(b.height))),
        el('td', { class: 'hash' }, link('block', b.hash, short(b.hash))),
        el('td', {}, time(b.time)),
        el('td', { class: 'num' }, b.txs),
        el('td', { class: 'num' }, coins(b.fees)),
        el('td', { class: 'hash' }, b.reward_to ? link('address', b.reward_to) : '–'),
        el('td', { class: 'mono' }, clock(b.arrived_ms)));
    });
    const height = el('span', { id: 'height', 'data-shown-ms': Date.now() }, st.height);
    show(gen,
      el('h2', {}, 'This node'),
      facts([
        ['Role', st.role, { id: 'role' }],
        ['Peer id', st.peer_id, { class: 'hash' }],
        ['Height', height],
        ['Tip', link('block', st.tip), { class: 'hash', id: 'tip' }],
        ['Chain work', st.chain_work, { class: 'hash' }],
        ['Difficulty', st.difficulty + ' × the limit (next bits ' + st.bits + '); mean interval ' +
          (st.mean_interval_secs === null ? '–' : st.mean_interval_secs + ' s') + ' over the last blocks', { id: 'difficulty' }],
        ['Sync', st.sync],
        ['Peers', link('peers', '', String(st.peers))],
        ['Mempool', link('mempool', '', st.mempool.txs + ' transactions, ' + st.mempool.bytes + ' bytes'), { id: 'mempool-size' }],
        ['Up for', st.uptime_secs + ' s'],
      ]),
      el('h3', {}, 'Latest blocks'),
      table(['Height', 'Hash', 'Time', 'Txs', 'Fees', 'Reward to', 'Arrived here'], rows, { id: 'blocks' }));
  }

  function txRows(txs) {
    return txs.map((t) => el('tr', { class: 'tx', 'data-txid': t.txid },
      el('td', { class: 'hash' }, link('tx', t.txid, short(t.txid)), t.coinbase ? el('span', { class: 'muted' }, ' coinbase') : null),
      el('td', {}, inputList(t)),
      el('td', {}, outputList(t)),
      el('td', { class: 'num' }, coins(t.fee))));
  }

  function inputList(t) {
    if (t.coinbase) return el('span', { class: 'muted' }, 'new coins');
    return el('ul', { class: 'plain' }, ...t.inputs.map((i) => el('li', {},
      link('tx', i.txid, short(i.txid) + ':' + i.vout), ' ',
      link('address', i.address || i.sender), ' ', coins(i.amount))));
  }

  function outputList(t) {
    return el('ul', { class: 'plain' }, ...t.outputs.map((o) => el('li', {},
      link('address', o.recipient), ' ', coins(o.amount))));
  }

  async function block(gen, id) {
    const b = await api('/blocks/' + encodeURIComponent(id));
    const pow = b.pow.hash_meets_target
      ? el('span', { class: 'ok', id: 'pow' }, 'hash ≤ target: valid')
      : el('span', { class: 'bad', id: 'pow' }, 'hash > target: INVALID');
    const merkle = el('span', { class: b.merkle_root_ok ? 'ok' : 'bad' }, b.merkle_root_ok ? ' (recomputed: matches)' : ' (recomputed: DIFFERS)');
    show(gen,
      el('h2', {}, 'Block ', el('span', { id: 'block-height' }, b.index)),
      facts([
        ['Hash', b.hash, { class: 'hash', id: 'block-hash' }],
        ['Main chain', b.main_chain ? 'yes, ' + b.confirmations + ' confirmations' : 'no (side branch)'],
        ['Previous', b.index > 0 ? link('block', b.previous_hash) : 'none (genesis)', { class: 'hash' }],
        ['Merkle root', el('span', {}, b.merkle_root, merkle), { class: 'hash' }],
        ['Time', time(b.timestamp) + ' (' + b.timestamp + ')'],
        ['Bits', b.bits, { class: 'mono' }],
        ['Target', b.pow.target, { class: 'hash' }],
        ['Proof of work', pow],
        ['Nonce', b.proof],
        ['Size', b.size + ' bytes'],
        ['Chain work', b.chain_work, { class: 'hash' }],
        ['Fees', coins(b.fees)],
        ['Arrived here', b.arrived_ms ? new Date(b.arrived_ms).toISOString() : 'before this node started'],
      ]),
      el('h3', {}, b.transactions.length + ' transactions'),
      table(['Txid', 'Inputs (coins spent)', 'Outputs', 'Fee'], txRows(b.transactions), { id: 'txs' }));
  }

  async function tx(gen, id) {
    const r = await api('/tx/' + encodeURIComponent(id));
    const t = r.tx;
    const where = r.status === 'mempool'
      ? el('span', {}, 'in the mempool (unconfirmed)')
      : el('span', {}, 'block ', link('block', r.block, String(r.height)), ', position ' + r.index + ', ' + r.confirmations + ' confirmations');
    const inputs = t.coinbase ? [] : t.inputs.map((i) => el('tr', {},
      el('td', { class: 'hash' }, link('tx', i.txid, short(i.txid) + ':' + i.vout)),
      el('td', { class: 'hash' }, link('address', i.address || i.sender)),
      el('td', { class: 'num' }, coins(i.amount))));
    const outputs = t.outputs.map((o, n) => el('tr', {},
      el('td', { class: 'num' }, n),
      el('td', { class: 'hash' }, link('address', o.recipient)),
      el('td', { class: 'num' }, coins(o.amount))));
    show(gen,
      el('h2', {}, t.coinbase ? 'Coinbase transaction' : 'Transaction'),
      facts([
        ['Txid', t.txid, { class: 'hash', id: 'txid' }],
        ['Where', where, { id: 'tx-where' }],
        ['Size', t.size + ' bytes'],
        ['Fee', coins(r.fee === undefined ? t.fee : r.fee), { id: 'tx-fee' }],
      ]),
      el('h3', {}, 'Inputs: the coins it spends'),
      t.coinbase ? el('p', { class: 'muted' }, 'A coinbase spends nothing: it creates the block reward.')
        : table(['Coin (txid:vout)', 'Address', 'Amount'], inputs, { id: 'inputs' }),
      el('h3', {}, 'Outputs'),
      table(['#', 'Address', 'Amount'], outputs, { id: 'outputs' }));
  }

  async function address(gen, id) {
    const a = await api('/address/' + encodeURIComponent(id));
    const rows = a.utxos.map((u) => el('tr', {},
      el('td', { class: 'hash' }, link('tx', u.txid, short(u.txid) + ':' + u.vout)),
      el('td', { class: 'num' }, coins(u.amount)),
      el('td', { class: 'num' }, link('block', u.height, String(u.height))),
      el('td', {}, u.coinbase ? 'yes' : '')));
    show(gen,
      el('h2', {}, 'Address'),
      facts([
        ['Address', a.address, { class: 'hash', id: 'address' }],
        ['Balance', el('span', { id: 'balance' }, a.balance), {}],
        ['Unspent outputs', a.utxo_count + (a.truncated ? ' (first ' + a.utxos.length + ' listed)' : '')],
      ]),
      el('h3', {}, 'Unspent outputs'),
      table(['Coin (txid:vout)', 'Amount', 'Height', 'Coinbase'], rows, { id: 'utxos' }));
  }

  async function mempool(gen) {
    const m = await api('/mempool');
    const rows = m.transactions.map((t) => el('tr', { class: 'tx', 'data-txid': t.txid },
      el('td', { class: 'hash' }, link('tx', t.txid)),
      el('td', { class: 'num' }, t.size),
      el('td', { class: 'num' }, coins(t.fee)),
      el('td', { class: 'num' }, Number(t.fee_rate).toFixed(3))));
    show(gen,
      el('h2', {}, 'Mempool: ', el('span', { id: 'mempool-count' }, m.txs), ' transactions, ' + m.bytes + ' bytes'),
      el('p', {}, 'Minimum fee rate: ' + Number(m.min_fee_rate).toFixed(3) + ' units/vB'),
      table(['Txid', 'Size', 'Fee', 'Fee rate (units/vB)'], rows, { id: 'mempool' }));
  }

  async function peers(gen) {
    const p = await api('/peers');
    const rows = p.peers.map((q) => el('tr', { class: 'peer' },
      el('td', { class: 'hash' }, q.peer_id),
      el('td', { class: 'mono' }, q.address),
      el('td', {}, q.role || '?'),
      el('td', { class: 'num' }, q.height === null ? '?' : link('block', q.height, String(q.height))),
      el('td', { class: 'num' }, q.score.toFixed(1)),
      el('td', { class: 'num' }, q.ping_ms === null ? '–' : q.ping_ms.toFixed(1) + ' ms')));
    show(gen,
      el('h2', {}, 'Peers: ', el('span', { id: 'peer-count' }, p.peers.length)),
      table(['Peer id', 'Address', 'Role', 'Height', 'Score', 'Ping'], rows, { id: 'peers' }));
  }

  // A height, block hash, txid or address: digits are a height; 64 hex digits a block hash if
  // the node has such a block, else a txid; anything else is taken as an address.
  async function search(gen, q) {
    q = q.trim();
    let to = null;
    if (/^[0-9]{1,10}$/.test(q)) {
      to = route('block', q);
    } else if (/^[0-9a-fA-F]{64}$/.test(q)) {
      try {
        await api('/blocks/' + q);
        to = route('block', q);
      } catch (e) {
        if (e.status !== 404) throw e;
        to = route('tx', q);
      }
    } else {
      to = route('address', q);
    }
    if (gen === generation) location.replace(to);
  }

  // ---- routing and live updates ----
  function render() {
    const gen = ++generation;
    const parts = location.hash.replace(/^#\/?/, '').split('/');
    let kind = '';
    let arg = '';
    try {
      kind = decodeURIComponent(parts[0]);
      arg = decodeURIComponent(parts.slice(1).join('/'));
    } catch (_) {
      return failure(gen, 'That address in the URL is malformed.');
    }
    const pages = { '': overview, block, tx, address, mempool, peers, search };
    const page = Object.prototype.hasOwnProperty.call(pages, kind) ? pages[kind] : null;
    if (!page) return failure(gen, 'No such page: ' + kind);
    return page(gen, arg).catch((e) => failure(gen, (arg ? kind + ' ' + arg + ': ' : '') + e.message));
  }

  function onState(s) {
    const changed = !last || s.tip !== last.tip || s.mempool_txs !== last.mempool_txs;
    last = s;
    if (changed) render();
  }

  function poll() {
    live.textContent = 'polling';
    live.className = 'live';
    const tick = () => api('/status')
      .then((st) => onState({ height: st.height, tip: st.tip, mempool_txs: st.mempool.txs }))
      .catch(() => { live.textContent = 'node unreachable'; });
    setInterval(tick, POLL_MS);
  }

  function connect() {
    if (!window.EventSource) return poll();
    const stream = new EventSource('/events');
    stream.addEventListener('state', (ev) => {
      live.textContent = 'live';
      live.className = 'live on';
      onState(JSON.parse(ev.data));
    });
    stream.addEventListener('error', () => {
      if (stream.readyState === EventSource.CLOSED) {
        poll(); // refused (too many streams) or not supported: fall back
      } else {
        live.textContent = 'reconnecting';
        live.className = 'live';
      }
    });
  }

  document.getElementById('search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = document.getElementById('q').value.trim();
    if (q) location.hash = route('search', q);
  });
  window.addEventListener('hashchange', render);
  render();
  connect();
})();
