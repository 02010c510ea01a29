// keyboard.mjs - the web view without a mouse: drives Debian's headless
// Chromium over the DevTools protocol (Node's own WebSocket, no npm
// package) on /trace/{id} and presses keys only: Tab reaches the waterfall's
// rows in order, arrows move and fold, Enter and Space show a row's ids;
// then a click shows a row's ids too, and `/`; no page may log a script
// error or a CSP violation.
//
// usage: node --experimental-websocket keyboard.mjs CHROMIUM URL
//        (URL: a /trace/{id} page of a running `hoptrace serve`)
// Exit 0 all checks passed, 1 a check failed, 77 this node has no
// WebSocket (skip).
import {spawn} from 'node:child_process';
import {mkdtempSync, readFileSync, rmSync, existsSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';

if (typeof WebSocket !== 'function') {
    console.log('SKIP: this node has no WebSocket (node >= 20.10 with ' +
                '--experimental-websocket, or >= 22)');
    process.exit(77);
}
const [chromium, url] = process.argv.slice(2);
if (!chromium || !url) {
    console.log('usage: keyboard.mjs CHROMIUM URL');
    process.exit(2);
}

let failures = 0;
function check(cond, msg) {
    if (!cond) {
        failures++;
        console.log('FAIL: ' + msg);
    }
    return cond;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const prof = mkdtempSync(join(tmpdir(), 'ht-kbd-'));
const browser = spawn(chromium, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
    '--remote-debugging-port=0', '--remote-debugging-address=127.0.0.1',
    '--user-data-dir=' + prof, '--window-size=1400,1000', 'about:blank'
], {stdio: 'ignore'});

let ws = null;
const watchdog = setTimeout(() => {
    console.log('FAIL: timed out');
    finish(1);
}, 90000);

function finish(code) {
    clearTimeout(watchdog);
    try {
        if (ws)
            ws.close();
    } catch (e) {
        /* closing anyway */
    }
    browser.kill('SIGTERM');
    setTimeout(() => {
        rmSync(prof, {recursive: true, force: true});
        process.exit(code);
    }, 300);
}

async function devtoolsPort() {
    const f = join(prof, 'DevToolsActivePort');
    for (let i = 0; i < 200; i++) {
        if (existsSync(f)) {
            const line = readFileSync(f, 'utf8').split('\n')[0];
            if (/^\d+$/.test(line))
                return Number(line);
        }
        await sleep(100);
    }
    throw new Error('chromium wrote no DevToolsActivePort');
}

const problems = [];
let nextId = 1;
const pending = new Map();
function send(method, params = {}) {
    const id = nextId++;
    ws.send(JSON.stringify({id, method, params}));
    return new Promise((resolve, reject) => {
        pending.set(id, {resolve, reject, method});
    });
}

async function evaluate(expr) {
    const r = await send('Runtime.evaluate',
                         {expression: expr, returnByValue: true,
                          awaitPromise: true});
    if (r.exceptionDetails)
        throw new Error('evaluate ' + expr + ': ' +
                        JSON.stringify(r.exceptionDetails));
    return r.result.value;
}

const KEYS = {
    Tab: {code: 'Tab', vk: 9},
    Enter: {code: 'Enter', vk: 13},
    ' ': {code: 'Space', vk: 32},
    ArrowDown: {code: 'ArrowDown', vk: 40},
    ArrowUp: {code: 'ArrowUp', vk: 38},
    ArrowLeft: {code: 'ArrowLeft', vk: 37},
    ArrowRight: {code: 'ArrowRight', vk: 39},
};

async function press(key) {
    const k = KEYS[key];
    const base = {key, code: k.code, windowsVirtualKeyCode: k.vk,
                  nativeVirtualKeyCode: k.vk};
    await send('Input.dispatchKeyEvent',
               Object.assign({type: 'rawKeyDown'}, base));
    if (key === ' ')
        await send('Input.dispatchKeyEvent',
                   Object.assign({type: 'char', text: ' '}, base));
    await send('Input.dispatchKeyEvent', Object.assign({type: 'keyUp'}, base));
}

// What has the focus: a row's identity, or the element's tag.
const FOCUS = `(() => { const a = document.activeElement;
  if (!a || !a.classList || !a.classList.contains('wf-row'))
    return a ? 'other:' + a.tagName : 'none';
  return a.dataset.span ? 'span:' + a.dataset.span : 'hop:' + a.dataset.hop;
})()`;
const ROWS = `[...document.querySelectorAll('.wf-row')].map((r) => ({
  key: r.dataset.span ? 'span:' + r.dataset.span : 'hop:' + r.dataset.hop,
  hidden: r.hidden, expanded: r.getAttribute('aria-expanded'),
  name: (r.querySelector('.nm') || {}).textContent }))`;
const PANEL = `(() => { const p = document.querySelector('.details');
  return p ? {h: (p.querySelector('h3') || {}).textContent || '',
              dd: [...p.querySelectorAll('dd')].map((d) => d.textContent)}
           : null; })()`;

async function main() {
    const port = await devtoolsPort();
    const list = await (await fetch('http://127.0.0.1:' + port + '/json/list'))
                     .json();
    const target = list.find((t) => t.type === 'page');
    if (!target)
        throw new Error('no page target');
    ws = new WebSocket(target.webSocketDebuggerUrl);
    await new Promise((res, rej) => {
        ws.onopen = res;
        ws.onerror = () => rej(new Error('DevTools WebSocket failed'));
    });
    ws.onmessage = (ev) => {
        const m = JSON.parse(ev.data);
        // Script errors and CSP violations, on any page opened here.
        if (m.method === 'Runtime.exceptionThrown')
            problems.push('exception: ' +
                          JSON.stringify(m.params.exceptionDetails));
        if (m.method === 'Log.entryAdded' && m.params.entry.level === 'error' &&
            m.params.entry.source !== 'network')
            problems.push(m.params.entry.source + ': ' + m.params.entry.text);
        if (m.id && pending.has(m.id)) {
            const p = pending.get(m.id);
            pending.delete(m.id);
            if (m.error)
                p.reject(new Error(p.method + ': ' + m.error.message));
            else
                p.resolve(m.result);
        }
    };
    await send('Page.enable');
    await send('Runtime.enable');
    await send('Log.enable');
    await send('Page.navigate', {url});
    let n = 0;
    for (let i = 0; i < 100 && !n; i++) {
        await sleep(100);
        n = await evaluate(`document.querySelectorAll('.wf-row').length`)
                .catch(() => 0);
    }
    if (!check(n > 0, 'the waterfall never appeared at ' + url))
        return;
    const rows = await evaluate(ROWS);
    const hopAt = rows.findIndex((r) => r.key.startsWith('hop:'));
    check(hopAt > 0, 'no hop row to reach');

    // Tab from the top of the page reaches the first row, then the next.
    let focus = '';
    for (let i = 0; i < 30; i++) {
        await press('Tab');
        focus = await evaluate(FOCUS);
        if (focus.startsWith('span:') || focus.startsWith('hop:'))
            break;
    }
    check(focus === rows[0].key, 'Tab reaches ' + focus + ', not the first ' +
                                     'row ' + rows[0].key);
    await press('Tab');
    check(await evaluate(FOCUS) === rows[1].key,
          'Tab from the first row does not reach the second');

    // Enter shows the row's ids.
    await press('Enter');
    let panel = await evaluate(PANEL);
    const id1 = rows[1].key.slice(5);
    check(panel && panel.h === 'Span ' + rows[1].name && panel.dd.includes(id1),
          'Enter on ' + rows[1].key + ' shows ' + JSON.stringify(panel));
    check(await evaluate(`document.querySelectorAll('[aria-selected=true]')` +
                         `.length`) === 1,
          'Enter does not select exactly one row');

    // ↑ goes back; ↓ walks to the first hop row; Space shows the hop.
    await press('ArrowUp');
    check(await evaluate(FOCUS) === rows[0].key, 'ArrowUp does not go back');
    for (let i = 0; i < hopAt; i++)
        await press('ArrowDown');
    focus = await evaluate(FOCUS);
    check(focus === rows[hopAt].key,
          'ArrowDown x' + hopAt + ' reaches ' + focus + ', not ' +
              rows[hopAt].key);
    await press(' ');
    panel = await evaluate(PANEL);
    check(panel && panel.h.startsWith('Hop ') &&
              panel.dd.some((d) => /^\d+(\.\d+)?$/.test(d)),
          'Space on a hop row shows ' + JSON.stringify(panel));

    // ← folds the hop (its consumer's rows hide), → unfolds them.
    const before = (await evaluate(ROWS)).filter((r) => !r.hidden).length;
    await press('ArrowLeft');
    const folded = await evaluate(ROWS);
    check(folded[hopAt].expanded === 'false' &&
              folded.filter((r) => !r.hidden).length < before,
          'ArrowLeft does not fold the hop row');
    check(await evaluate(FOCUS) === rows[hopAt].key,
          'folding moved the focus');
    await press('ArrowRight');
    const unfolded = await evaluate(ROWS);
    check(unfolded[hopAt].expanded === 'true' &&
              unfolded.filter((r) => !r.hidden).length === before,
          'ArrowRight does not unfold the hop row');
    // ← on an unfoldable row goes to its parent.
    await press('ArrowDown');
    await press('ArrowLeft');
    await press('ArrowLeft');
    check(await evaluate(FOCUS) === rows[hopAt].key,
          'ArrowLeft does not lead back to the parent hop row');

    // And with a mouse: a click on a span row shows its ids too.
    const last = rows.length - 1;
    const box = await evaluate(`(() => { const r = document.querySelectorAll(
        '.wf-row')[${last}]; r.scrollIntoView({block: 'center'});
        const b = r.querySelector('.wf-name').getBoundingClientRect();
        return {x: b.left + b.width / 2, y: b.top + b.height / 2}; })()`);
    for (const type of ['mousePressed', 'mouseReleased'])
        await send('Input.dispatchMouseEvent',
                   {type, x: box.x, y: box.y, button: 'left', clickCount: 1});
    panel = await evaluate(PANEL);
    check(rows[last].key.startsWith('span:') && panel &&
              panel.dd.includes(rows[last].key.slice(5)),
          'a click on ' + rows[last].key + ' shows ' + JSON.stringify(panel));

    // `/` fills its three tables; neither page logged an error or a CSP
    // violation (the server sends a policy without 'unsafe-inline').
    await send('Page.navigate', {url: new URL('/', url).href});
    let tables = 0;
    for (let i = 0; i < 100 && tables < 3; i++) {
        await sleep(100);
        tables = await evaluate(`document.querySelectorAll('table.data')` +
                                `.length`).catch(() => 0);
    }
    check(tables === 3, '/ shows ' + tables + ' tables, not 3');
    check(problems.length === 0, 'errors in the console: ' +
                                     problems.join(' | '));
}

main().then(() => {
    console.log(failures ? failures + ' failure(s)'
                         : 'keyboard: all checks passed');
    finish(failures ? 1 : 0);
}, (e) => {
    console.log('FAIL: ' + e.message);
    finish(1);
});
