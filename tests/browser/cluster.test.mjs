// Cluster mode in the console (issue 20), on a phone-sized page: two nodes sharing a Redis
// (Debian's redis-server, started here on 127.0.0.1 with a temp dir). From node A the project
// form offers node B, a project made there shows its node, a prompt runs there and its answer
// streams here; when B stops, the project shows UNAVAILABLE.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, openPage, screenshot, consoleUrl, waitConnected, runPrompt } from './browser.mjs';
import { startServer, requireEnv } from '../e2e/server.mjs';

const SECRET = 'browser-cluster-secret-0123456789abcdef0123456789';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// redis-server on a free port; resolves once it answers PING.
async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'pa-browser-redis-'));
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: 'ignore' });
  const deadline = Date.now() + 15000;
  for (;;) {
    try {
      if (execFileSync('redis-cli', ['-p', String(port), 'PING']).toString().trim() === 'PONG') break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error('redis-server did not answer PING');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `redis://127.0.0.1:${port}`, stop: () => { child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); } };
}

// Cluster mode needs Debian's redis-server (make deps installs it); without it there is nothing
// to test here, as a single host needs no Redis.
let haveRedis = true;
try {
  execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
} catch {
  haveRedis = false;
}

const shared = { browser: null, redis: null, a: null, b: null, dirs: [] };
const node = (name) => ['--cluster-redis-url', shared.redis.url, '--cluster-node-name', name,
  '--cluster-secret', SECRET, '--cluster-heartbeat-ttl', '2s'];

before(async () => {
  if (!haveRedis) return;
  shared.redis = await startRedis();
  const binaries = { serverBinary: requireEnv('PA_SERVER_BINARY'), fakeClaude: requireEnv('PA_FAKE_CLAUDE') };
  [shared.browser, shared.a, shared.b] = await Promise.all([
    launch(), startServer({ ...binaries, extraArgs: node('alpha') }), startServer({ ...binaries, extraArgs: node('beta') })]);
});
after(async () => {
  await shared.browser?.close();
  await shared.a?.stop();
  await shared.b?.stop();
  shared.redis?.stop();
  for (const d of shared.dirs) rmSync(d, { recursive: true, force: true });
});

test('a phone on one node makes, runs and watches a project on another', { skip: !haveRedis && 'redis-server is not installed' }, async (t) => {
  const { page, context, errors } = await openPage(shared.browser, { viewport: { width: 390, height: 844 }, isMobile: true });
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.a));
  await waitConnected(page);

  // The form offers this node first, and beta once alpha sees it.
  const select = page.locator('#new-node');
  await select.waitFor();
  const deadline = Date.now() + 20000;
  while (!(await select.locator('option[value=beta]').count())) {
    assert.ok(Date.now() < deadline, 'node beta never offered');
    await page.getByRole('button', { name: 'Refresh' }).click();
    await page.waitForTimeout(100);
  }
  assert.equal(await select.inputValue(), 'alpha');

  const dir = mkdtempSync(join(tmpdir(), 'pa-browser-cluster-'));
  shared.dirs.push(dir);
  await page.locator('#new-path').fill(dir);
  await select.selectOption('beta');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.locator('[data-testid=project-state][data-state=IDLE]').waitFor();
  assert.equal(await page.locator('[data-testid=project-node]').textContent(), 'on beta');

  await runPrompt(page, '[[fake:text text="answered on beta"]]');
  await page.locator('article', { hasText: 'answered on beta' }).first().waitFor();
  await screenshot(page, 'console-cluster-390');

  // Beta stops: the project says UNAVAILABLE (within the 2 s heartbeat TTL and a tick).
  await shared.b.stop({ keepDir: true });
  await page.locator('[data-testid=project-state][data-state=UNAVAILABLE]').waitFor({ timeout: 20000 });
  assert.equal(await page.locator('#interrupt, button', { hasText: 'Interrupt' }).first().isDisabled(), true);
  assert.deepEqual(errors, []);
});
