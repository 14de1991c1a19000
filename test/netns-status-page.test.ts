/**
 * The status pages in a real browser: Debian's chromium, headless, driven by puppeteer-core over a pipe, runs in
 * the director's namespace (a wrapper execs it there) where the director (--config with a service and
 * metrics.admin) and a listeners node (stats.admin; servers rs1, rs2) serve their pages. It sees every server with
 * its state, drains one in admin mode and sees it on the page and in `show servers state`, sets a real server's
 * weight on the director's page and sees it in `adm -L`; a wrong password is refused; a `<script>` from the config
 * renders as text; screenshots are saved in the test's temp dir and are not blank.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import test from 'ava';
import puppeteer, { type Browser } from 'puppeteer-core';
import { controlRequest } from '../src/listeners/control.js';
import {
  adm,
  buildTopo,
  DIRECTOR_ENTRY,
  httpServer,
  RS1,
  RS2,
  startDirector,
  stopDirector,
  type Topo,
  VIP,
  waitPort,
} from './netns-director-topo.js';

const EVIL = '<script>alert(1)</script>';

/** Distinct byte values of a PNG's decompressed image data: a one-colour image has a handful. */
function pngVariety(file: string): number {
  const buf = fs.readFileSync(file);
  const idat: Buffer[] = [];
  for (let off = 8; off < buf.length; ) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    if (type === 'IDAT') idat.push(buf.subarray(off + 8, off + 8 + len));
    off += 12 + len;
  }
  return new Set(zlib.inflateSync(Buffer.concat(idat))).size;
}

test('status pages in chromium: listeners and director, admin actions, 401, escaping, screenshots', async (t) => {
  const topo: Topo = buildTopo('sp');
  let browser: Browser | undefined;
  const stops: (() => Promise<unknown>)[] = [];
  t.teardown(async () => {
    await browser?.close().catch(() => {});
    for (const s of stops.reverse()) await s().catch(() => {});
    topo.dispose();
  });
  for (const [ns, name] of [
    [topo.rs1, 'rs1'],
    [topo.rs2, 'rs2'],
  ] as const) {
    httpServer(topo, ns, name, 80);
    httpServer(topo, ns, name, 8080);
  }
  await waitPort(topo, topo.rs1, 8080);
  await waitPort(topo, topo.rs2, 8080);
  const dcfg = path.join(topo.dir, 'director.yaml');
  fs.writeFileSync(
    dcfg,
    `director:\n  services:\n    - vip: ${VIP}\n      port: 80\n      scheduler: wrr\n      real_servers:\n` +
      `        - { address: ${RS1}, method: route }\n        - { address: ${RS2}, method: route }\n` +
      '  metrics: { bind: 127.0.0.1:9102, admin: { user: ops, password: pw } }\n',
  );
  const director = await startDirector(topo, ['--config', dcfg]);
  stops.push(() => stopDirector(director.child));
  const lcfg = path.join(topo.dir, 'listeners.yaml');
  const lsock = path.join(topo.dir, 'listeners.sock');
  fs.writeFileSync(
    lcfg,
    `listeners:
  workers: 2
  stats: { bind: 127.0.0.1:9101, admin: { user: ops, password: pw } }
  listen:
    - name: web
      bind: 127.0.0.1:8000
      mode: http
      check: { type: http, uri: "/health?${EVIL}", inter: 300ms }
      servers:
        - { name: rs1, address: ${RS1}:8080 }
        - { name: rs2, address: ${RS2}:8080 }
`,
  );
  const lis = topo.set.spawn(topo.director, process.execPath, [
    '--import',
    'tsx',
    DIRECTOR_ENTRY,
    'listeners',
    '--config',
    lcfg,
    '--socket',
    lsock,
  ]);
  let lout = '';
  lis.stdout?.on('data', (d) => (lout += d));
  lis.stderr?.on('data', () => {});
  stops.push(async () => {
    lis.kill('SIGTERM');
    await new Promise((r) => lis.once('exit', r));
  });
  for (let i = 0; i < 300 && !lout.includes('ready'); i++) await new Promise((r) => setTimeout(r, 50));
  t.regex(lout, /ready/);

  // a wrong password is refused
  const code = (url: string, user: string) =>
    topo.set.exec(topo.director, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-u', user, url]);
  t.is(code('http://127.0.0.1:9101/status/admin', 'ops:wrong'), '401');
  t.is(code('http://127.0.0.1:9102/status/admin', 'ops:wrong'), '401');

  const wrapper = path.join(topo.dir, 'chromium-in-ns');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${topo.director} /usr/bin/chromium "$@"\n`, { mode: 0o755 });
  browser = await puppeteer.launch({
    executablePath: wrapper,
    pipe: true,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  const page = await browser.newPage();
  let dialogs = 0;
  page.on('dialog', (d) => {
    dialogs++;
    void d.dismiss();
  });
  await page.setViewport({ width: 1280, height: 700 });
  await page.authenticate({ username: 'ops', password: 'pw' });

  // the listeners' page: every server with its state
  await page.goto('http://127.0.0.1:9101/status/admin', { waitUntil: 'load' });
  const states = () =>
    page.$$eval('tr[data-server]', (rows) =>
      rows.map((r) => `${r.getAttribute('data-server')}=${r.getAttribute('data-status')}`),
    );
  t.deepEqual(await states(), ['web/rs1=UP', 'web/rs2=UP']);
  // the config's <script> is text on the page, not markup
  const heading = await page.$eval('#px-web', (h) => h.textContent ?? '');
  t.true(heading.includes(EVIL), heading);
  t.is(await page.$$eval('script', (s) => s.length), 1, 'only the page’s own refresh script');
  // drain rs1 from the page
  await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.click('tr[data-server="web/rs1"] button[data-action="drain"]'),
  ]);
  t.deepEqual(await states(), ['web/rs1=DRAIN', 'web/rs2=UP']);
  t.regex(await page.$eval('#notice', (n) => n.textContent ?? ''), /web\/rs1: drain done/);
  t.regex(await controlRequest(lsock, 'show servers state'), /\n1 web 1 rs1 \S+ 2 8 /);
  // the page refreshes itself: a change made elsewhere shows up without a reload
  await controlRequest(lsock, 'set server web/rs2 state maint');
  await page.waitForSelector('tr[data-server="web/rs2"][data-status="MAINT"]', { timeout: 10_000 });
  const shot1 = path.join(topo.dir, 'listeners.png');
  await page.screenshot({ path: shot1, fullPage: true });

  // the director's page: services and real servers; a weight set from the page lands in the table
  await page.goto('http://127.0.0.1:9102/status/admin', { waitUntil: 'load' });
  const weights = () =>
    page.$$eval('tr[data-server]', (rows) =>
      rows.map((r) => `${r.getAttribute('data-server')}=${r.getAttribute('data-weight')}`).sort(),
    );
  t.deepEqual(await weights(), [`${RS1}:80=1`, `${RS2}:80=1`]);
  t.truthy(await page.$('#conn-count'));
  t.regex(await page.$eval('#vrrp', (v) => v.textContent ?? ''), /no VRRP instance/);
  const input = `tr[data-server="${RS2}:80"] input[name="weight"]`;
  await page.$eval(input, (i) => {
    (i as unknown as { value: string }).value = '';
  });
  await page.type(input, '5');
  await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.click(`tr[data-server="${RS2}:80"] button[data-action="weight"]`),
  ]);
  t.deepEqual(await weights(), [`${RS1}:80=1`, `${RS2}:80=5`]);
  const listed = await adm(topo, ['-L', '-n']);
  t.regex(listed.stdout, new RegExp(`${RS2.replace(/\./g, '\\.')}:80\\s+Route\\s+5\\s`));
  const shot2 = path.join(topo.dir, 'director.png');
  await page.screenshot({ path: shot2, fullPage: true });

  t.is(dialogs, 0, 'no script from the config ran');
  for (const f of [shot1, shot2]) {
    t.true(fs.statSync(f).size > 5000, `${f}: ${fs.statSync(f).size} bytes`);
    t.true(pngVariety(f) > 20, `${f} is not blank`);
  }
});
