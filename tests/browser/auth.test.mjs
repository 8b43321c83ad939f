// Why the console cannot connect, in its own words for each case, and no retry where retrying
// cannot help: a wrong token (back to the token form, one attempt only), an Origin the server
// does not allow (behind a TLS-terminating proxy the server does not know about), too many wrong
// tokens from this address (with the wait), the server shutting down, and no server at all.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { join } from 'node:path';
import { startServer, requireEnv } from '../e2e/server.mjs';
import { launch, openPage, screenshot, consoleUrl, waitConnected } from './browser.mjs';

const serverBinary = requireEnv('PA_SERVER_BINARY');
const fakeClaude = requireEnv('PA_FAKE_CLAUDE');

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

// A server for one test (the lock-out of 127.0.0.1 must not reach other tests).
async function serverFor(t, extraArgs = []) {
  const server = await startServer({ serverBinary, fakeClaude, extraArgs });
  t.after(() => server.stop());
  return server;
}

// The WebSocket attempts a page makes.
function countSockets(page) {
  const urls = [];
  page.on('websocket', (ws) => urls.push(ws.url()));
  return urls;
}

// Runs the page's timers far ahead: any retry the console scheduled would happen now.
async function runTimersAhead(page) {
  await page.clock.runFor(120_000);
}

test('a wrong token: the token form says so, and the console tries once only', async (t) => {
  const server = await serverFor(t);
  const { page, context, errors } = await openPage(browser);
  t.after(() => context.close());
  await page.clock.install();
  const sockets = countSockets(page);
  await page.goto(`https://127.0.0.1:${server.port}/?token=not-the-token`);
  const alert = page.locator('form.login [role=alert]');
  await alert.waitFor();
  assert.match(await alert.textContent(), /refused this token: it is wrong, or it was changed/);
  await page.locator('#token').waitFor();
  await screenshot(page, 'console-wrong-token');
  await runTimersAhead(page);
  assert.equal(sockets.length, 1, `one attempt, no retry on 401: ${sockets.join(' ')}`);
  const rejected = server.log.filter((l) => l.includes('rejected WebSocket upgrade'));
  assert.equal(rejected.length, 1, rejected.join('\n'));
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'the wrong token is forgotten');
  // The console logs the refused upgrade and the check's 401 itself; nothing else went wrong.
  assert.deepEqual(errors.filter((e) => !/401|WebSocket connection/.test(e)), []);
});

// The server runs without TLS behind a TLS-terminating proxy it was not told about: the page's
// Origin is https://…, the server's own origin would be http://…, so the upgrade gets 403.
test('an Origin the server does not allow: said, with what to add, and not retried', async (t) => {
  const server = await serverFor(t, ['--no-tls']);
  const cert = readFileSync(join(server.dir, 'server.crt'));
  const key = readFileSync(join(server.dir, 'server.key'));
  const proxy = tls.createServer({ cert, key }, (client) => {
    const upstream = net.connect(server.port, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    const end = () => { client.destroy(); upstream.destroy(); };
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => proxy.close(r)));
  const origin = `https://127.0.0.1:${proxy.address().port}`;

  const { page, context } = await openPage(browser);
  t.after(() => context.close());
  await page.clock.install();
  const sockets = countSockets(page);
  await page.goto(`${origin}/?token=${encodeURIComponent(server.token)}`);
  const notice = page.locator('[data-testid=conn-failure][data-failure=origin]');
  await notice.waitFor();
  const text = await notice.textContent();
  assert.match(text, /Origin not allowed/);
  assert.ok(text.includes(`Add ${origin} to auth.allowed_origins`), text);
  assert.equal(await page.locator('[data-testid=conn-status]').textContent(), 'origin not allowed');
  await screenshot(page, 'console-origin-not-allowed');
  await runTimersAhead(page);
  assert.equal(sockets.length, 1, `no retry on 403: ${sockets.join(' ')}`);
});

// POST /auth/check with a wrong token from this test (127.0.0.1, like the browser).
function wrongCheck(port, token) {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/auth/check', method: 'POST',
      rejectUnauthorized: false, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end();
  });
}

test('too many wrong tokens: said, with the wait, and retried only after it', async (t) => {
  const server = await serverFor(t, ['--auth-max-failures', '2', '--limits-connection-rate', '0']);
  assert.equal(await wrongCheck(server.port, 'guess-1'), 401);
  assert.equal(await wrongCheck(server.port, 'guess-2'), 401);
  assert.equal(await wrongCheck(server.port, 'guess-3'), 429);

  const { page, context } = await openPage(browser);
  t.after(() => context.close());
  await page.clock.install();
  const sockets = countSockets(page);
  await page.goto(`https://127.0.0.1:${server.port}/?token=guess-4`);
  const notice = page.locator('[data-testid=conn-failure][data-failure=locked]');
  await notice.waitFor();
  const text = await notice.textContent();
  assert.match(text, /Too many wrong tokens/);
  const wait = Number(/Retrying in (\d+) s/.exec(text)?.[1]);
  assert.ok(wait >= 30 && wait <= 60, `the wait from Retry-After: ${text}`);
  await notice.getByRole('button', { name: 'Enter the token again' }).waitFor();
  await screenshot(page, 'console-too-many-wrong-tokens');
  // No retry before the wait is over; the wait counts down.
  await page.clock.runFor((wait - 5) * 1000);
  assert.equal(sockets.length, 1, `no retry during the wait: ${sockets.join(' ')}`);
  assert.match(await notice.getByTestId('retry-wait').textContent(), /^[4-6] s$/);
});

test('server shutting down, then unreachable: each said, and retried', async (t) => {
  const server = await serverFor(t);
  const { page, context } = await openPage(browser);
  t.after(() => context.close());
  await page.clock.install();
  await page.goto(consoleUrl(server));
  await waitConnected(page);
  // Hold the page's timers: the retry after the close waits until the clock runs again.
  await page.clock.pauseAt(await page.evaluate(() => Date.now() + 1000));
  await server.stop();
  const shutdown = page.locator('[data-testid=conn-failure][data-failure=shutdown]');
  await shutdown.waitFor();
  assert.match(await shutdown.textContent(), /Server shutting down/);
  await page.clock.runFor(20_000);
  const unreachable = page.locator('[data-testid=conn-failure][data-failure=unreachable]');
  await unreachable.waitFor();
  const text = await unreachable.textContent();
  assert.match(text, /Server unreachable/);
  assert.ok(text.includes(`127.0.0.1:${server.port}`), text);
  await unreachable.getByRole('button', { name: 'Retry now' }).waitFor();
  await screenshot(page, 'console-unreachable');
});
