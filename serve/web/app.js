/*
 * app.js - the web view of `hoptrace serve`. Plain DOM, no framework, no
 * build step. Every value from the store reaches the page as text
 * (textContent, createTextNode, setAttribute on fixed attribute names):
 * nothing is ever parsed as HTML, so a service named
 * `<img src=x onerror=alert(1)>` shows as exactly that. No inline script
 * or handler anywhere: the server's Content-Security-Policy forbids them.
 *
 * Pages: `/` (body[data-page=index]) reads /api/v1/endpoints, /stalls and
 * /functions; `/trace/{id}` (body[data-page=trace]) reads
 * /api/v1/trace/{id}, the document of `hoptrace trace ID --format json`.
 */
'use strict';

(function () {
    const SVGNS = 'http://www.w3.org/2000/svg';

    /* ---- DOM helpers: text only ---------------------------------------- */

    function add(parent, kids) {
        for (const k of kids) {
            if (k === null || k === undefined || k === false)
                continue;
            if (typeof k === 'string' || typeof k === 'number')
                parent.appendChild(document.createTextNode(String(k)));
            else
                parent.appendChild(k);
        }
        return parent;
    }

    /* el('td', {class: 'num'}, 'text', child, ...) */
    function el(tag, attrs, ...kids) {
        const e = document.createElement(tag);
        setAttrs(e, attrs);
        return add(e, kids);
    }

    function svgEl(tag, attrs, ...kids) {
        const e = document.createElementNS(SVGNS, tag);
        setAttrs(e, attrs);
        return add(e, kids);
    }

    function setAttrs(e, attrs) {
        if (!attrs)
            return;
        for (const k of Object.keys(attrs)) {
            const v = attrs[k];
            if (v === null || v === undefined || v === false)
                continue;
            if (k.startsWith('on'))
                throw new Error('no handler attributes');
            e.setAttribute(k, v === true ? '' : String(v));
        }
    }

    function clear(e) {
        while (e.firstChild)
            e.removeChild(e.firstChild);
    }

    /* A number exactly as the API gave it (JSON number -> JS shortest). */
    function num(x) {
        return x === null || x === undefined ? '–' : String(x);
    }

    function ms(x) {
        return num(x) + ' ms';
    }

    function traceHref(id) {
        return '/trace/' + encodeURIComponent(id);
    }

    function isoTime(us) {
        if (typeof us !== 'number' || !isFinite(us))
            return '–';
        const d = new Date(Math.floor(us / 1000));
        return isNaN(d.getTime()) ? String(us) : d.toISOString();
    }

    /* Axis and offset labels (computed here, not API values). */
    function fmtOffset(msv) {
        if (msv >= 10000)
            return (msv / 1000).toFixed(1) + ' s';
        if (msv >= 1000)
            return (msv / 1000).toFixed(2) + ' s';
        if (msv >= 10)
            return msv.toFixed(0) + ' ms';
        return msv.toFixed(1) + ' ms';
    }

    async function getJSON(url) {
        let r;
        try {
            r = await fetch(url, {headers: {Accept: 'application/json'},
                                  credentials: 'same-origin'});
        } catch (e) {
            throw new Error('cannot reach the server: ' + e.message);
        }
        let body = null;
        try {
            body = await r.json();
        } catch (e) {
            body = null;
        }
        if (!r.ok) {
            const msg = body && typeof body.error === 'string'
                            ? body.error
                            : 'HTTP ' + r.status;
            const err = new Error(msg);
            err.status = r.status;
            throw err;
        }
        if (body === null)
            throw new Error('the server sent no JSON');
        return body;
    }

    function stateLine(section, text, isError) {
        let p = section.querySelector('.state');
        if (!p) {
            p = el('p', {class: 'state', role: 'status'});
            section.appendChild(p);
        }
        p.textContent = text;
        p.classList.toggle('error', !!isError);
        return p;
    }

    function table(caption, heads, rows) {
        const t = el('table', {class: 'data'});
        if (caption)
            t.appendChild(el('caption', null, caption));
        const tr = el('tr');
        for (const h of heads)
            tr.appendChild(el('th', {scope: 'col', class: h.cls || null},
                              h.label));
        t.appendChild(el('thead', null, tr));
        const tb = el('tbody');
        for (const r of rows) {
            const row = el('tr', r.attrs || null);
            r.cells.forEach((c, i) => {
                const td = el('td', {class: heads[i].cls || null});
                add(td, Array.isArray(c) ? c : [c]);
                row.appendChild(td);
            });
            tb.appendChild(row);
        }
        t.appendChild(tb);
        return t;
    }

    function wireSearch() {
        const form = document.querySelector('form.search');
        if (!form)
            return;
        form.addEventListener('submit', (ev) => {
            ev.preventDefault();
            const q = form.querySelector('input').value.trim();
            if (q)
                window.location.href = traceHref(q);
        });
    }

    /* ---- `/`: routes, stages, functions --------------------------------- */

    function pct(o, k) {
        return o && typeof o === 'object' ? num(o[k]) : '–';
    }

    async function loadRoutes() {
        const sec = document.getElementById('routes');
        try {
            const d = await getJSON('/api/v1/endpoints');
            const routes = Array.isArray(d.routes) ? d.routes : [];
            if (!routes.length) {
                stateLine(sec, 'No requests through API Gateway yet.');
                return;
            }
            const N = {cls: 'num'};
            const heads = [
                {label: 'Route'}, {label: 'API / stage'},
                Object.assign({label: 'Requests'}, N),
                Object.assign({label: 'Errors'}, N),
                Object.assign({label: 'Faults'}, N),
                Object.assign({label: 'Throttles'}, N),
                Object.assign({label: 'Incomplete'}, N),
                Object.assign({label: 'Sync p50'}, N),
                Object.assign({label: 'Sync p90'}, N),
                Object.assign({label: 'Sync p99'}, N),
                Object.assign({label: 'Sync max'}, N),
                Object.assign({label: 'E2E p50'}, N),
                Object.assign({label: 'E2E p90'}, N),
                Object.assign({label: 'E2E p99'}, N),
                Object.assign({label: 'E2E max'}, N),
            ];
            const rows = routes.map((r) => ({
                cells: [
                    r.route, [num(r.api), ' / ', num(r.stage)], num(r.count),
                    num(r.errors), num(r.faults), num(r.throttles),
                    num(r.incomplete), pct(r.sync_ms, 'p50'),
                    pct(r.sync_ms, 'p90'), pct(r.sync_ms, 'p99'),
                    pct(r.sync_ms, 'max'), pct(r.e2e_ms, 'p50'),
                    pct(r.e2e_ms, 'p90'), pct(r.e2e_ms, 'p99'),
                    pct(r.e2e_ms, 'max')
                ]
            }));
            stateLine(sec, routes.length + ' route(s)');
            sec.appendChild(table(null, heads, rows));
        } catch (e) {
            stateLine(sec, 'Routes unavailable: ' + e.message, true);
        }
    }

    async function loadStages() {
        const sec = document.getElementById('stages');
        try {
            const d = await getJSON('/api/v1/stalls');
            const stages = Array.isArray(d.stages) ? d.stages : [];
            if (!stages.length) {
                stateLine(sec, 'No asynchronous stage seen yet.');
                return;
            }
            const N = {cls: 'num'};
            const heads = [
                {label: 'Stage'}, {label: 'Status'},
                Object.assign({label: 'Pending'}, N),
                Object.assign({label: 'Oldest pending (s)'}, N),
                Object.assign({label: 'Entered'}, N),
                Object.assign({label: 'Consumed'}, N),
                Object.assign({label: 'Delay p50 (ms)'}, N),
                Object.assign({label: 'Delay p99 (ms)'}, N),
                {label: 'Stuck requests'},
            ];
            const rows = stages.map((s) => {
                const status = String(s.status);
                const stuck = Array.isArray(s.stuck) ? s.stuck : [];
                const links = [];
                /* Each stuck item links to its request, at the write that
                 * waits (#span=). */
                for (const it of stuck) {
                    if (!it || typeof it !== 'object')
                        continue;
                    const id = typeof it.root === 'string' ? it.root : it.span;
                    if (typeof id !== 'string')
                        continue;
                    const at = typeof it.span === 'string'
                                   ? '#span=' + encodeURIComponent(it.span)
                                   : '';
                    if (links.length)
                        links.push(' ');
                    links.push(el('a', {href: traceHref(id) + at},
                                  typeof it.correlation_id === 'string'
                                      ? it.correlation_id
                                      : id));
                }
                return {
                    attrs: {'data-status': status},
                    cells: [
                        s.stage,
                        el('span', {class: 'status status-' +
                                                status.replace(/[^a-z]/g, '')},
                           status),
                        num(s.pending), num(s.oldest_pending_age_s),
                        num(s.entered), num(s.consumed), num(s.delay_p50_ms),
                        num(s.delay_p99_ms), links.length ? links : '–'
                    ]
                };
            });
            const bad = stages.filter((s) => s.status !== 'ok').length;
            stateLine(sec, stages.length + ' stage(s), ' + bad +
                               ' not ok, as of ' + isoTime(d.now_us));
            sec.appendChild(table(null, heads, rows));
        } catch (e) {
            stateLine(sec, 'Stages unavailable: ' + e.message, true);
        }
    }

    async function loadFunctions() {
        const sec = document.getElementById('functions');
        try {
            const d = await getJSON('/api/v1/functions');
            const fns = Array.isArray(d.functions) ? d.functions : [];
            if (!fns.length) {
                stateLine(sec, 'No Lambda invocation seen yet.');
                return;
            }
            const N = {cls: 'num'};
            const heads = [
                {label: 'Function'},
                Object.assign({label: 'Invocations'}, N),
                Object.assign({label: 'Cold starts'}, N),
                Object.assign({label: 'Init p50'}, N),
                Object.assign({label: 'Init p99'}, N),
                Object.assign({label: 'Duration p50'}, N),
                Object.assign({label: 'Duration p99'}, N),
                Object.assign({label: 'Billed ms'}, N),
                Object.assign({label: 'Memory MB'}, N),
                Object.assign({label: 'GB-s'}, N),
                Object.assign({label: 'Cost USD'}, N),
            ];
            const rows = fns.map((f) => ({
                cells: [
                    f.name, num(f.invocations), num(f.cold_starts),
                    pct(f.init_ms, 'p50'), pct(f.init_ms, 'p99'),
                    pct(f.duration_ms, 'p50'), pct(f.duration_ms, 'p99'),
                    num(f.billed_ms), num(f.memory_mb), num(f.gb_seconds),
                    num(f.cost_usd)
                ]
            }));
            stateLine(sec, fns.length + ' function(s)');
            sec.appendChild(table(null, heads, rows));
        } catch (e) {
            stateLine(sec, 'Functions unavailable: ' + e.message, true);
        }
    }

    function indexPage() {
        /* Without script the form lands on /?id=…: go on to its page. */
        const q = new URLSearchParams(window.location.search).get('id');
        if (q && q.trim()) {
            window.location.replace(traceHref(q.trim()));
            return;
        }
        loadRoutes();
        loadStages();
        loadFunctions();
    }

    /* ---- `/trace/{id}` -------------------------------------------------- */

    function spanService(s) {
        return typeof s.service === 'string' && s.service ? s.service
                                                          : String(s.name);
    }

    function hopLabel(h) {
        return String(h.via) + ' ' + String(h.resource);
    }

    /*
     * The waterfall's rows as a tree: a span's children are the spans whose
     * parent it is, in start order, plus one node per hop it produced; a
     * hop's child is the consumer invocation it leads into (with its whole
     * subtree), so the rows read in causal order across the asynchronous
     * hops. A pending hop has no child.
     */
    function buildTree(req) {
        const spans = Array.isArray(req.spans) ? req.spans : [];
        const hops = Array.isArray(req.hops) ? req.hops : [];
        const byId = new Map();
        for (const s of spans)
            if (!byId.has(s.id))
                byId.set(s.id, s);
        const kids = new Map();
        const kidOf = (id) => {
            if (!kids.has(id))
                kids.set(id, []);
            return kids.get(id);
        };
        const hasParent = new Set();
        for (const s of byId.values()) {
            if (s.parent_id !== null && s.parent_id !== undefined &&
                byId.has(s.parent_id) && s.parent_id !== s.id) {
                kidOf(s.parent_id).push({type: 'span', span: s});
                hasParent.add(s.id);
            }
        }
        const roots = [];
        const hopTo = new Set();
        /* Where a wait starts: as the critical path places it when it is
         * on the path; an async invoke's wait is its Dwell Time (inside
         * the invoked segment); else it ends where the consumer starts. */
        const waitStart = new Map();
        for (const c of Array.isArray(req.critical_path) ? req.critical_path
                                                         : [])
            if (c.kind === 'wait' && typeof c.start_us === 'number')
                waitStart.set(c.span + '\u0000' + c.via + '\u0000' +
                                  c.resource,
                              c.start_us);
        const dwell = new Map();
        for (const s of byId.values())
            if (s.name === 'Dwell Time' && byId.has(s.parent_id))
                dwell.set(s.parent_id, s.start_us);
        hops.forEach((h, i) => {
            const consumer =
                h.to !== null && h.to !== undefined ? byId.get(h.to) : null;
            const producer = byId.get(h.from);
            const wkey = h.to + '\u0000' + h.via + '\u0000' + h.resource;
            let start;
            if (consumer && waitStart.has(wkey))
                start = waitStart.get(wkey);
            else if (consumer && h.via === 'lambda' && dwell.has(consumer.id))
                start = dwell.get(consumer.id);
            else if (consumer && typeof h.wait_ms === 'number')
                start = consumer.start_us - h.wait_ms * 1000;
            else if (producer)
                start = producer.end_us;
            else
                start = req.start_us;
            const node = {type: 'hop', hop: h, index: i, start_us: start,
                          end_us: start + (Number(h.wait_ms) || 0) * 1000};
            /* The consumer hangs under its hop unless it already has a
             * parent of its own (an async Lambda invoke stays the call's
             * child): then the hop row stands just before it. */
            node.consumer = consumer || null;
            node.under = consumer && !hasParent.has(consumer.id) &&
                         !hopTo.has(consumer.id);
            if (consumer)
                hopTo.add(consumer.id);
            if (producer)
                kidOf(producer.id).push(node);
            else
                roots.push(node);
        });
        const attached = new Set();
        for (const list of kids.values())
            for (const n of list)
                if (n.type === 'hop' && n.under)
                    attached.add(n.consumer.id);
        for (const s of byId.values())
            if (!hasParent.has(s.id) && !attached.has(s.id))
                roots.push({type: 'span', span: s});

        /* A hop whose consumer stays where it is (an async invoke, the
         * call's child) comes just before that consumer's row. */
        const startOf = (n) => {
            if (n.type === 'span')
                return n.span.start_us;
            if (!n.under && n.consumer)
                return Math.min(n.start_us, n.consumer.start_us);
            return n.start_us;
        };
        const order = (list) => list.sort((a, b) => {
            const d = startOf(a) - startOf(b);
            if (d !== 0 && !isNaN(d))
                return d;
            return (a.type === 'hop' ? 0 : 1) - (b.type === 'hop' ? 0 : 1);
        });

        /* Depth-first, each span once (parent loops are cut). */
        const seen = new Set();
        /* depth is the tree level (aria-level); indent is how far the row
         * is drawn in: a consumer invocation sits under its hop's row at
         * the hop's indent, so that hops do not push the rows off. */
        const build = (n, depth, indent) => {
            n.depth = depth;
            if (indent === undefined)
                indent = depth;
            n.indent = indent;
            n.children = [];
            if (n.type === 'span') {
                if (seen.has(n.span.id))
                    return null;
                seen.add(n.span.id);
                for (const c of order(kids.get(n.span.id) || [])) {
                    const b = build(c, depth + 1, indent + 1);
                    if (b)
                        n.children.push(b);
                }
            } else if (n.under) {
                const b = build({type: 'span', span: n.consumer}, depth + 1,
                                indent);
                if (b)
                    n.children.push(b);
            }
            return n;
        };
        const out = [];
        for (const r of order(roots)) {
            const b = build(r, 0);
            if (b)
                out.push(b);
        }
        /* Whatever a loop left unreached still gets its row. */
        for (const s of byId.values())
            if (!seen.has(s.id)) {
                const b = build({type: 'span', span: s}, 0);
                if (b)
                    out.push(b);
            }
        return out;
    }

    /* Which rows the critical path goes through. */
    function criticalSets(req) {
        const spans = new Set();
        const waits = new Set();
        const kinds = new Map();
        for (const c of Array.isArray(req.critical_path) ? req.critical_path
                                                         : []) {
            if (c.kind === 'wait') {
                waits.add(c.span + '\u0000' + c.via + '\u0000' + c.resource);
            } else {
                spans.add(c.span);
                if (!kinds.has(c.span))
                    kinds.set(c.span, new Set());
                kinds.get(c.span).add(c.kind);
            }
        }
        return {spans, waits, kinds};
    }

    function hopCritical(crit, h) {
        return h.to !== null && h.to !== undefined &&
               crit.waits.has(h.to + '\u0000' + h.via + '\u0000' + h.resource);
    }

    function isInit(s, crit) {
        const k = crit.kinds.get(s.id);
        return s.name === 'Initialization' || (k && k.has('init'));
    }

    function badge(text, cls) {
        return el('span', {class: 'badge ' + cls}, text);
    }

    function spanBadges(s, crit, onPath) {
        const b = [];
        if (onPath)
            b.push(badge('critical', 'b-critical'));
        if (s.cold_start)
            b.push(badge('cold start', 'b-cold'));
        if (isInit(s, crit))
            b.push(badge('init', 'b-init'));
        if (s.fault)
            b.push(badge('fault', 'b-fault'));
        if (s.error)
            b.push(badge('error', 'b-error'));
        if (s.throttle)
            b.push(badge('throttle', 'b-error'));
        if (s.in_progress)
            b.push(badge('in progress', 'b-pending'));
        if (s.shared)
            b.push(badge('shared (batch)', 'b-shared'));
        if (s.logs_only)
            b.push(badge('logs only', 'b-shared'));
        return b;
    }

    function detailFields(n) {
        if (n.type === 'span') {
            const s = n.span;
            const f = [
                ['name', s.name], ['span id', s.id], ['trace id', s.trace_id],
                ['parent id', s.parent_id], ['request id', s.request_id],
                ['service', s.service], ['origin', s.origin],
                ['operation', s.operation], ['resource', s.resource],
                ['start_us', s.start_us], ['end_us', s.end_us],
                ['duration_ms', s.duration_ms]
            ];
            const flags = ['cold_start', 'error', 'fault', 'throttle',
                           'in_progress', 'shared', 'logs_only']
                              .filter((k) => s[k] === true);
            f.push(['flags', flags.length ? flags.join(', ') : 'none']);
            return f;
        }
        const h = n.hop;
        return [
            ['hop', h.pending ? 'pending write' : 'asynchronous hop'],
            ['via', h.via], ['resource', h.resource],
            ['wait_ms', h.wait_ms], ['evidence', h.evidence],
            ['from (producer span id)', h.from],
            ['to (consumer span id)',
             h.to === null || h.to === undefined ? 'none yet' : h.to]
        ];
    }

    function showDetails(panel, n) {
        clear(panel);
        panel.appendChild(el('h3', null, n.type === 'span'
                                             ? 'Span ' + String(n.span.name)
                                             : 'Hop ' + hopLabel(n.hop)));
        const dl = el('dl');
        for (const [k, v] of detailFields(n)) {
            dl.appendChild(el('dt', null, k));
            dl.appendChild(el('dd', {class: 'mono'},
                              v === null || v === undefined ? '–' : String(v)));
        }
        panel.appendChild(dl);
    }

    function waterfall(req, reqIndex, crit, panel) {
        const tree = buildTree(req);
        const spans = Array.isArray(req.spans) ? req.spans : [];
        let t0 = typeof req.start_us === 'number' ? req.start_us : Infinity;
        let t1 = typeof req.end_us === 'number' ? req.end_us : -Infinity;
        const walkAll = (list, fn) => {
            for (const n of list) {
                fn(n);
                walkAll(n.children, fn);
            }
        };
        walkAll(tree, (n) => {
            const a = n.type === 'span' ? n.span.start_us : n.start_us;
            const b = n.type === 'span' ? n.span.end_us : n.end_us;
            if (typeof a === 'number' && isFinite(a))
                t0 = Math.min(t0, a);
            if (typeof b === 'number' && isFinite(b))
                t1 = Math.max(t1, b);
        });
        if (!isFinite(t0) || !isFinite(t1) || t1 <= t0)
            t1 = (isFinite(t0) ? t0 : 0) + 1000;
        if (!isFinite(t0))
            t0 = 0;
        const span = t1 - t0;
        const pos = (us) => Math.max(0, Math.min(100, (us - t0) / span * 100));

        const wrap = el('div', {class: 'wf-wrap'});
        const bar = el('div', {class: 'wf-tools'});
        const collapseAll = el('button', {type: 'button'}, 'Collapse all');
        const expandAll = el('button', {type: 'button'}, 'Expand all');
        const critOnly = el('button', {type: 'button', 'aria-pressed': 'false'},
                            'Critical path only');
        add(bar, [collapseAll, ' ', expandAll, ' ', critOnly, ' ',
                  el('span', {class: 'hint'},
                     'Keys: Tab or ↑/↓ move between rows, → / ← expand or ' +
                         'collapse, Enter or Space shows every id of the row.')]);
        wrap.appendChild(bar);

        const box = el('div', {class: 'wf', role: 'tree',
                               'aria-label': 'Waterfall of request ' +
                                                 (reqIndex + 1)});
        /* The time axis stays on top while the rows scroll under it. */
        const axis = el('div', {class: 'wf-axis', 'aria-hidden': 'true'});
        const axL = el('div', {class: 'wf-name'}, 'span / hop');
        const axD = el('div', {class: 'wf-dur'}, 'duration');
        const axT = el('div', {class: 'wf-track'});
        for (let i = 0; i <= 5; i++) {
            const tick = el('span', {class: 'tick'},
                            fmtOffset(span / 1000 * i / 5));
            tick.style.left = (i * 20) + '%';
            if (i === 5)
                tick.classList.add('tick-end');
            axT.appendChild(tick);
        }
        add(axis, [axL, axD, axT]);
        box.appendChild(axis);

        const rows = [];
        let selected = null;

        const makeRow = (n, parentRow) => {
            const row = el('div', {class: 'wf-row', role: 'treeitem',
                                   tabindex: '0', 'aria-level': n.depth + 1,
                                   'aria-selected': 'false'});
            n.row = row;
            n.parentRow = parentRow;
            n.expanded = true;
            const name = el('div', {class: 'wf-name'});
            name.style.paddingLeft = (Math.min(n.indent, 30) * 11 + 4) + 'px';
            const tog = el('span', {class: 'tog', 'aria-hidden': 'true'},
                           n.children.length ? '▾' : '');
            name.appendChild(tog);
            const dur = el('div', {class: 'wf-dur'});
            const track = el('div', {class: 'wf-track'});
            const b = el('div', {class: 'bar'});
            let onPath;
            let label;
            if (n.type === 'span') {
                const s = n.span;
                onPath = crit.spans.has(s.id);
                row.dataset.span = String(s.id);
                row.classList.add('span');
                add(name, [el('span', {class: 'nm'}, String(s.name))]);
                name.title = String(s.name) + ' (' + spanService(s) + ')';
                /* What kind of span, muted: the AWS call (operation and
                 * resource), else the segment's origin, else its service. */
                const meta = [];
                if (typeof s.operation === 'string' && s.operation)
                    meta.push(s.operation);
                if (typeof s.resource === 'string' && s.resource &&
                    s.resource !== s.name)
                    meta.push(s.resource);
                if (!meta.length && typeof s.origin === 'string' && s.origin)
                    meta.push(s.origin.replace(/^AWS::/, ''));
                if (spanService(s) !== String(s.name))
                    meta.push(spanService(s));
                /* Labels first: they must not be cut off by the rest. */
                add(name, spanBadges(s, crit, onPath));
                if (meta.length)
                    add(name, [' ', el('span', {class: 'svc'},
                                       meta.join(' · '))]);
                dur.textContent = ms(s.duration_ms);
                b.style.left = pos(s.start_us) + '%';
                b.style.width = Math.max(0.15, pos(s.end_us) -
                                                   pos(s.start_us)) + '%';
                if (s.cold_start)
                    b.classList.add('cold');
                if (isInit(s, crit))
                    b.classList.add('init');
                if (s.fault || s.error || s.throttle)
                    b.classList.add('err');
                if (s.in_progress)
                    b.classList.add('open');
                label = String(s.name) + ', ' + ms(s.duration_ms);
            } else {
                const h = n.hop;
                onPath = hopCritical(crit, h);
                row.dataset.hop = String(n.index);
                row.classList.add('hop');
                if (h.pending)
                    row.classList.add('pending');
                const what = h.pending ? 'pending ' : 'wait ';
                add(name, [el('span', {class: 'nm hopnm'},
                              '⇢ ' + what + hopLabel(h))]);
                name.title = what + hopLabel(h);
                if (onPath)
                    add(name, [badge('critical', 'b-critical')]);
                if (h.pending)
                    add(name, [badge('pending: no consumer yet', 'b-pending')]);
                dur.textContent = ms(h.wait_ms);
                b.classList.add('wait');
                b.style.left = pos(n.start_us) + '%';
                b.style.width = Math.max(0.15, pos(n.end_us) -
                                                   pos(n.start_us)) + '%';
                /* The wait bar says what it is: via, resource, ms. */
                const tag = el('span', {class: 'bar-label'},
                               String(h.via) + ' · ' + String(h.resource) +
                                   ' · ' + ms(h.wait_ms));
                /* Right of the bar when there is room, else left of it,
                 * else over it. */
                const need = tag.textContent.length * 1.25;
                if (100 - pos(n.end_us) < need)
                    tag.classList.add(pos(n.start_us) >= need ? 'left'
                                                              : 'inside');
                b.appendChild(tag);
                label = (h.pending ? 'pending write ' : 'wait in ') +
                        hopLabel(h) + ', ' + ms(h.wait_ms);
            }
            if (onPath) {
                row.classList.add('critical');
                row.dataset.critical = 'true';
                label += ', on the critical path';
            }
            row.setAttribute('aria-label', label);
            if (n.children.length)
                row.setAttribute('aria-expanded', 'true');
            track.appendChild(b);
            add(row, [name, dur, track]);
            box.appendChild(row);
            rows.push(n);
            for (const c of n.children)
                makeRow(c, n);
        };
        for (const n of tree)
            makeRow(n, null);

        const hiddenByAncestor = (n) => {
            for (let p = n.parentRow; p; p = p.parentRow)
                if (!p.expanded)
                    return true;
            return false;
        };
        let onlyCritical = false;
        const refresh = () => {
            for (const n of rows) {
                const hide = hiddenByAncestor(n) ||
                             (onlyCritical && !n.row.classList.contains(
                                                  'critical'));
                n.row.hidden = hide;
                if (n.children.length) {
                    n.row.setAttribute('aria-expanded', String(n.expanded));
                    n.row.querySelector('.tog').textContent =
                        n.expanded ? '▾' : '▸';
                }
            }
        };
        const setExpanded = (n, v) => {
            if (!n.children.length)
                return;
            n.expanded = v;
            refresh();
        };
        const select = (n) => {
            if (selected)
                selected.row.setAttribute('aria-selected', 'false');
            selected = n;
            n.row.setAttribute('aria-selected', 'true');
            showDetails(panel, n);
        };
        const visible = () => rows.filter((n) => !n.row.hidden);
        const move = (n, delta) => {
            const v = visible();
            const i = v.indexOf(n);
            const j = Math.max(0, Math.min(v.length - 1, i + delta));
            if (v[j])
                v[j].row.focus();
        };
        for (const n of rows) {
            n.row.addEventListener('click', (ev) => {
                if (ev.target.classList.contains('tog'))
                    setExpanded(n, !n.expanded);
                select(n);
            });
            n.row.addEventListener('keydown', (ev) => {
                switch (ev.key) {
                case 'Enter':
                case ' ':
                    ev.preventDefault();
                    select(n);
                    break;
                case 'ArrowDown':
                    ev.preventDefault();
                    move(n, 1);
                    break;
                case 'ArrowUp':
                    ev.preventDefault();
                    move(n, -1);
                    break;
                case 'ArrowRight':
                    ev.preventDefault();
                    if (n.children.length && !n.expanded)
                        setExpanded(n, true);
                    else
                        move(n, 1);
                    break;
                case 'ArrowLeft':
                    ev.preventDefault();
                    if (n.children.length && n.expanded)
                        setExpanded(n, false);
                    else if (n.parentRow)
                        n.parentRow.row.focus();
                    break;
                case 'Home':
                    ev.preventDefault();
                    move(n, -rows.length);
                    break;
                case 'End':
                    ev.preventDefault();
                    move(n, rows.length);
                    break;
                default:
                    break;
                }
            });
        }
        collapseAll.addEventListener('click', () => {
            for (const n of rows)
                if (n.children.length && n.depth > 0)
                    n.expanded = false;
            refresh();
        });
        expandAll.addEventListener('click', () => {
            for (const n of rows)
                n.expanded = true;
            refresh();
        });
        critOnly.addEventListener('click', () => {
            onlyCritical = !onlyCritical;
            critOnly.setAttribute('aria-pressed', String(onlyCritical));
            refresh();
        });

        /* A big request starts with the branches off the critical path
         * folded (each still one row with its toggle). */
        if (spans.length > 150) {
            /* Whether a subtree holds a critical row: children first
             * (rows are in depth-first order), so each node once. */
            const holds = new Map();
            for (let i = rows.length - 1; i >= 0; i--) {
                const n = rows[i];
                holds.set(n, n.row.classList.contains('critical') ||
                                 n.children.some((c) => holds.get(c)));
            }
            for (const n of rows)
                if (n.children.length && n.depth > 0 && !holds.get(n))
                    n.expanded = false;
        }
        refresh();
        wrap.appendChild(box);
        const reveal = (n) => {
            for (let p = n.parentRow; p; p = p.parentRow)
                p.expanded = true;
            if (onlyCritical && !n.row.classList.contains('critical')) {
                onlyCritical = false;
                critOnly.setAttribute('aria-pressed', 'false');
            }
            refresh();
            select(n);
            n.row.focus();
        };
        return {wrap, rows, reveal};
    }

    function criticalTable(req) {
        const path = Array.isArray(req.critical_path) ? req.critical_path : [];
        const t0 = req.start_us;
        const heads = [
            {label: '#', cls: 'num'}, {label: 'Kind'}, {label: 'Service'},
            {label: 'Span'}, {label: 'Via / resource'},
            {label: 'Starts at', cls: 'num'}, {label: 'Duration', cls: 'num'}
        ];
        const rows = path.map((c, i) => ({
            attrs: {'data-kind': String(c.kind), 'data-span': String(c.span)},
            cells: [
                String(i + 1), el('span', {class: 'kind k-' +
                                               String(c.kind).replace(
                                                   /[^a-z]/g, '')},
                                  String(c.kind)),
                num(c.service), num(c.name),
                c.kind === 'wait' ? num(c.via) + ' ' + num(c.resource) : '',
                typeof c.start_us === 'number' && typeof t0 === 'number'
                    ? '+' + fmtOffset((c.start_us - t0) / 1000)
                    : '–',
                ms(c.duration_ms)
            ]
        }));
        return table('Critical path: ' + path.length + ' step(s), in time ' +
                         'order', heads, rows);
    }

    function warningText(w) {
        if (!w || typeof w !== 'object')
            return String(w);
        switch (w.type) {
        case 'skew':
            return 'clock skew between ' +
                   (Array.isArray(w.names) ? w.names.join(' and ') : '?') +
                   ' (spans ' +
                   (Array.isArray(w.spans) ? w.spans.join(', ') : '?') +
                   '): clamped by ' + ms(w.ms);
        case 'pending':
            return 'pending: ' + num(w.name) + ' (span ' + num(w.span) +
                   ') wrote to ' + num(w.via) + ' ' + num(w.resource) +
                   ' and no consumer has received it; waited ' +
                   ms(w.waited_ms) + ' so far';
        case 'parent_cycle':
            return 'spans name each other as parents (the loop was cut)' +
                   (Array.isArray(w.spans) ? ': ' + w.spans.join(', ') : '');
        case 'truncated':
            return 'truncated: ' + num(w.message);
        default:
            return JSON.stringify(w);
        }
    }

    /*
     * The request's service graph: one node per service, solid edges for
     * synchronous calls between services, dashed edges for hops labelled
     * with via, resource and wait. Columns by distance from the root's
     * service. Built with createElementNS; text through textContent.
     */
    let graphCount = 0;

    function serviceGraph(req, crit) {
        const gid = 'g' + (++graphCount);
        const spans = Array.isArray(req.spans) ? req.spans : [];
        const hops = Array.isArray(req.hops) ? req.hops : [];
        const byId = new Map(spans.map((s) => [s.id, s]));
        const nodes = new Map();
        const node = (name) => {
            if (!nodes.has(name))
                nodes.set(name, {name, cold: false, err: false,
                                 critical: false, pending: false,
                                 order: nodes.size});
            return nodes.get(name);
        };
        const rootSpan = byId.get(req.root) || spans[0];
        if (rootSpan)
            node(spanService(rootSpan));
        for (const s of spans) {
            const n = node(spanService(s));
            if (s.cold_start)
                n.cold = true;
            if (s.error || s.fault || s.throttle)
                n.err = true;
            if (crit.spans.has(s.id))
                n.critical = true;
        }
        const edges = new Map();
        const edge = (a, b, kind) => {
            const k = a + '\u0000' + b + '\u0000' + kind;
            if (!edges.has(k))
                edges.set(k, {a, b, kind, labels: [], critical: false,
                              calls: 0});
            return edges.get(k);
        };
        for (const s of spans) {
            const p = byId.get(s.parent_id);
            if (p && spanService(p) !== spanService(s)) {
                const e = edge(spanService(p), spanService(s), 'call');
                e.calls++;
                if (crit.spans.has(s.id) && crit.spans.has(p.id))
                    e.critical = true;
            }
        }
        for (const h of hops) {
            const from = byId.get(h.from);
            const to = h.to !== null && h.to !== undefined ? byId.get(h.to)
                                                           : null;
            const a = from ? spanService(from) : '?';
            let b;
            if (to) {
                b = spanService(to);
            } else {
                b = String(h.via) + ':' + String(h.resource) + ' (pending)';
                node(b).pending = true;
            }
            node(a);
            const e = edge(a, b, h.pending ? 'pending' : 'hop');
            e.labels.push({what: hopLabel(h),
                           wait: (h.pending ? 'waited ' : 'wait ') +
                                     ms(h.wait_ms)});
            if (hopCritical(crit, h))
                e.critical = true;
        }

        /* Columns: longest distance from the root service (BFS, capped). */
        const col = new Map();
        for (const n of nodes.keys())
            col.set(n, 0);
        const list = [...edges.values()];
        for (let round = 0; round < nodes.size; round++) {
            let changed = false;
            for (const e of list) {
                if (e.a === e.b)
                    continue;
                const c = col.get(e.a) + 1;
                if (c > col.get(e.b) && c < nodes.size) {
                    col.set(e.b, c);
                    changed = true;
                }
            }
            if (!changed)
                break;
        }
        const columns = [];
        for (const n of [...nodes.values()].sort((x, y) => x.order - y.order)) {
            const c = col.get(n.name);
            (columns[c] = columns[c] || []).push(n);
        }
        const W = 176, H = 46, GX = 170, GY = 64, PAD = 20;
        let maxRows = 1;
        columns.forEach((colNodes, ci) => {
            (colNodes || []).forEach((n, ri) => {
                n.x = PAD + ci * (W + GX);
                n.y = PAD + 16 + ri * (H + GY);
            });
            maxRows = Math.max(maxRows, (colNodes || []).length);
        });
        const width = PAD * 2 + columns.length * (W + GX) - GX;
        const height = PAD * 2 + 16 + maxRows * (H + GY) - GY + 24;

        /* A few columns scale down to the page's width; more scroll. */
        const s = svgEl('svg', {class: 'graph' + (columns.length <= 6 ? ' fit'
                                                                     : ''),
                                width, height,
                                viewBox: '0 0 ' + width + ' ' + height,
                                role: 'img'});
        const title = svgEl('title', null,
                            'Service graph: ' + nodes.size + ' services, ' +
                                edges.size + ' edges');
        s.appendChild(title);
        const defs = svgEl('defs');
        for (const id of ['arrow', 'arrow-crit']) {
            const m = svgEl('marker', {id: id + '-' + gid, viewBox: '0 0 10 10',
                                       refX: '10', refY: '5',
                                       markerWidth: '7', markerHeight: '7',
                                       orient: 'auto-start-reverse'});
            m.appendChild(svgEl('path', {d: 'M0,0 L10,5 L0,10 z',
                                         class: id}));
            defs.appendChild(m);
        }
        s.appendChild(defs);
        const markerRef = (critical) =>
            'url(#' + (critical ? 'arrow-crit' : 'arrow') + '-' + gid + ')';

        let loopN = 0;
        for (const e of list) {
            const A = nodes.get(e.a), B = nodes.get(e.b);
            if (!A || !B)
                continue;
            let d, lx, ly;
            if (B.x > A.x) {
                const x1 = A.x + W, y1 = A.y + H / 2;
                const x2 = B.x, y2 = B.y + H / 2;
                const mx = (x1 + x2) / 2;
                d = 'M' + x1 + ',' + y1 + ' C' + mx + ',' + y1 + ' ' + mx +
                    ',' + y2 + ' ' + x2 + ',' + y2;
                lx = mx;
                ly = (y1 + y2) / 2 - 6;
            } else {
                /* Back or self edge: a loop under the boxes. */
                loopN++;
                const x1 = A.x + W / 2, y1 = A.y + H;
                const x2 = B.x + W / 2 + (e.a === e.b ? 30 : 0), y2 = B.y + H;
                const dip = Math.max(y1, y2) + 26 + loopN * 8;
                d = 'M' + x1 + ',' + y1 + ' C' + x1 + ',' + dip + ' ' + x2 +
                    ',' + dip + ' ' + x2 + ',' + y2;
                lx = (x1 + x2) / 2;
                ly = dip;
            }
            const g = svgEl('g', {class: 'edge e-' + e.kind +
                                             (e.critical ? ' critical' : '')});
            g.appendChild(svgEl('path', {d, 'marker-end':
                                                 markerRef(e.critical)}));
            /* Each hop's label in two lines: via resource, then ms. */
            const texts = [];
            if (e.kind === 'call') {
                if (e.calls > 1)
                    texts.push(e.calls + ' calls');
            } else {
                for (const l of e.labels)
                    texts.push(l.what, l.wait);
            }
            texts.forEach((t, i) => {
                const tx = svgEl('text', {x: lx, y: ly - (texts.length - 1 -
                                                          i) * 13,
                                          'text-anchor': 'middle'}, t);
                g.appendChild(tx);
            });
            s.appendChild(g);
        }
        for (const n of nodes.values()) {
            const g = svgEl('g', {class: 'node' + (n.critical ? ' critical'
                                                              : '') +
                                             (n.pending ? ' pending' : '') +
                                             (n.err ? ' err' : '')});
            g.appendChild(svgEl('title', null, n.name));
            g.appendChild(svgEl('rect', {x: n.x, y: n.y, width: W, height: H,
                                         rx: 6}));
            const shown = n.name.length > 22 ? n.name.slice(0, 21) + '…'
                                             : n.name;
            g.appendChild(svgEl('text', {x: n.x + 10, y: n.y + 19}, shown));
            const sub = [];
            if (n.critical)
                sub.push('critical');
            if (n.cold)
                sub.push('cold start');
            if (n.err)
                sub.push('error');
            if (n.pending)
                sub.push('no consumer yet');
            if (sub.length)
                g.appendChild(svgEl('text', {x: n.x + 10, y: n.y + 36,
                                             class: 'sub'},
                                    sub.join(' · ')));
            s.appendChild(g);
        }
        s.setAttribute('aria-label', title.textContent);
        return s;
    }

    function fanOutTable(req) {
        const fo = Array.isArray(req.fan_out) ? req.fan_out : [];
        if (!fo.length)
            return null;
        const heads = [
            {label: 'Producer'}, {label: 'Via / resource'},
            {label: 'Width', cls: 'num'}, {label: 'Critical branch'},
            {label: 'Branch waits (ms)'}
        ];
        const rows = fo.map((f) => ({
            cells: [
                num(f.service) + ' · ' + num(f.name),
                num(f.via) + ' ' + num(f.resource), num(f.width),
                num(f.critical),
                (Array.isArray(f.branches) ? f.branches : [])
                    .map((b) => num(b.wait_ms) + (b.critical ? ' (critical)'
                                                             : ''))
                    .join(', ')
            ]
        }));
        return table('Fan-out', heads, rows);
    }

    function requestSection(req, i, total) {
        const crit = criticalSets(req);
        const sec = el('section', {class: 'request', id: 'request-' + (i + 1),
                                   'aria-labelledby': 'request-h-' + (i + 1)});
        const spans = Array.isArray(req.spans) ? req.spans : [];
        const hops = Array.isArray(req.hops) ? req.hops : [];
        const pending = hops.filter((h) => h.pending).length;
        sec.appendChild(el('h2', {id: 'request-h-' + (i + 1)},
                           total > 1 ? 'Request ' + (i + 1) + ' of ' + total
                                     : 'Request',
                           ' ', el('span', {class: 'mono'}, num(req.root))));
        const dl = el('dl', {class: 'summary'});
        const item = (k, v) => {
            dl.appendChild(el('dt', null, k));
            dl.appendChild(el('dd', null, v));
        };
        item('duration', ms(req.duration_ms));
        item('start', isoTime(req.start_us));
        item('spans', String(spans.length));
        item('hops', String(hops.length) +
                         (pending ? ' (' + pending + ' pending)' : ''));
        const tids = Array.isArray(req.trace_ids) ? req.trace_ids : [];
        if (tids.length > 4)
            item('trace ids',
                 el('details', null,
                    el('summary', null, tids.length + ' X-Ray traces'),
                    el('span', {class: 'mono'}, tids.join(' '))));
        else
            item('trace ids', el('span', {class: 'mono'}, tids.join(' ')));
        if (Array.isArray(req.correlation_ids) && req.correlation_ids.length)
            item('correlation ids', el('span', {class: 'mono'},
                                       req.correlation_ids.join(' ')));
        if (pending)
            item('state', el('span', {class: 'status status-stalled'},
                             'PENDING: a write has no consumer yet'));
        sec.appendChild(dl);

        const warnings = Array.isArray(req.warnings) ? req.warnings : [];
        const wsec = el('div', {class: 'warnings'});
        wsec.appendChild(el('h3', null, 'Warnings (' + warnings.length + ')'));
        if (warnings.length) {
            const ul = el('ul');
            for (const w of warnings)
                ul.appendChild(el('li', {class: 'warn w-' +
                                                     String(w && w.type)
                                                         .replace(/[^a-z_]/g,
                                                                  '')},
                                  warningText(w)));
            wsec.appendChild(ul);
        } else {
            wsec.appendChild(el('p', {class: 'hint'}, 'none'));
        }
        sec.appendChild(wsec);

        sec.appendChild(el('h3', null, 'Waterfall'));
        sec.appendChild(el('p', {class: 'legend'},
                           badge('critical', 'b-critical'), ' on the critical ' +
                               'path  ',
                           el('span', {class: 'sw sw-span'}), ' span  ',
                           el('span', {class: 'sw sw-wait'}), ' wait in a ' +
                               'queue, stream or table  ',
                           el('span', {class: 'sw sw-init'}), ' init  ',
                           el('span', {class: 'sw sw-cold'}), ' cold start  ',
                           el('span', {class: 'sw sw-err'}), ' error'));
        const grid = el('div', {class: 'wf-grid'});
        const panel = el('aside', {class: 'details', 'aria-live': 'polite',
                                   'aria-label': 'Ids of the selected row'},
                         el('p', {class: 'hint'},
                            'Select a row (click, or Enter / Space) to see ' +
                                'every id of its span or hop.'));
        const wf = waterfall(req, i, crit, panel);
        add(grid, [wf.wrap, panel]);
        sec.appendChild(grid);

        sec.appendChild(el('h3', null, 'Service graph'));
        const gbox = el('div', {class: 'graph-box'});
        gbox.appendChild(serviceGraph(req, crit));
        sec.appendChild(gbox);

        sec.appendChild(criticalTable(req));
        const fo = fanOutTable(req);
        if (fo)
            sec.appendChild(fo);
        return {sec, wf};
    }

    async function tracePage() {
        const main = document.getElementById('trace');
        const title = document.getElementById('title');
        const prefix = '/trace/';
        let id = '';
        const path = window.location.pathname;
        if (path.startsWith(prefix)) {
            try {
                id = decodeURIComponent(path.slice(prefix.length));
            } catch (e) {
                id = path.slice(prefix.length);
            }
        }
        if (!id) {
            stateLine(main, 'No id: the address is /trace/{id}.', true);
            return;
        }
        title.textContent = 'Request ' + id;
        document.title = 'hoptrace: ' + id;
        const input = document.getElementById('q');
        if (input)
            input.value = id;
        let doc;
        try {
            doc = await getJSON('/api/v1/trace/' + encodeURIComponent(id));
        } catch (e) {
            stateLine(main, (e.status === 404 ? 'Not found: ' : 'Error: ') +
                                e.message, true);
            return;
        }
        const reqs = Array.isArray(doc.requests) ? doc.requests : [];
        if (!reqs.length) {
            stateLine(main, 'Not found: ' + id, true);
            return;
        }
        stateLine(main, reqs.length > 1
                            ? 'This id names ' + reqs.length + ' requests (a ' +
                                  'batch consumer invocation): each is ' +
                                  'shown below, most recent first.'
                            : 'One request, ' +
                                  (reqs[0].spans || []).length + ' spans.');
        if (reqs.length > 1) {
            const nav = el('nav', {'aria-label': 'Requests of this id'});
            const ol = el('ol');
            reqs.forEach((r, i) => {
                ol.appendChild(el('li', null,
                                  el('a', {href: '#request-' + (i + 1)},
                                     'Request ' + (i + 1) + ': ' +
                                         num(r.root) + ', ' +
                                         ms(r.duration_ms))));
            });
            nav.appendChild(ol);
            main.appendChild(nav);
        }
        const built = [];
        reqs.forEach((r, i) => {
            const b = requestSection(r, i, reqs.length);
            built.push(b);
            main.appendChild(b.sec);
        });
        /* #span=ID selects that span's row (a link to one span). */
        const fromHash = () => {
            const m = /^#span=(.+)$/.exec(window.location.hash);
            if (!m)
                return;
            let want;
            try {
                want = decodeURIComponent(m[1]);
            } catch (e) {
                want = m[1];
            }
            for (const b of built) {
                const n = b.wf.rows.find((x) => x.type === 'span' &&
                                                String(x.span.id) === want);
                if (n) {
                    b.wf.reveal(n);
                    break;
                }
            }
        };
        fromHash();
        window.addEventListener('hashchange', fromHash);
    }

    function start() {
        wireSearch();
        const page = document.body.dataset.page;
        if (page === 'index')
            indexPage();
        else if (page === 'trace')
            tracePage();
    }

    if (document.readyState === 'loading')
        document.addEventListener('DOMContentLoaded', start);
    else
        start();
})();
