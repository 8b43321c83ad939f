// Debian's Chromium driven by playwright-core (no browser download): one launch per test file,
// a fresh context per test, and every page's console errors and uncaught exceptions collected.
import { chromium } from 'playwright-core';
import { before, after } from 'node:test';
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, requireEnv } from '../e2e/server.mjs';

export const CHROMIUM = process.env.PA_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = process.env.PA_ARTIFACTS_DIR ?? join(process.cwd(), 'test-artifacts');

// playwright-core adds --no-sandbox (needed as root) unless chromiumSandbox is set. The rest keep
// Chromium off the network, which this machine does not have. --ignore-certificate-errors (not
// only the contexts' ignoreHTTPSErrors) is what lets the console's service worker register over
// the tests' self-signed TLS: without it Chromium refuses ("An SSL certificate error occurred
// when fetching the script").
const CHROMIUM_ARGS = ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--ignore-certificate-errors'];

// `extraArgs`: more Chromium switches (e.g. --host-resolver-rules for a URL naming this machine).
export async function launch(extraArgs = []) {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] });
}

// A browser with a persistent profile in a new temporary directory, as one context: what the
// install check and push subscriptions need (Chromium allows neither in an incognito-like
// context, which launch()'s contexts are). close() also removes the profile.
export async function launchPersistent({ viewport = { width: 1200, height: 800 }, isMobile = false } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'pa-browser-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, ignoreHTTPSErrors: true, viewport, isMobile, hasTouch: isMobile,
  });
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.setDefaultTimeout(15000);
  return {
    page, context, errors,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

// A page in its own context (own storage) that records console errors and page errors.
export async function openPage(browser, { viewport = { width: 1200, height: 800 }, isMobile = false } = {}) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport, isMobile, hasTouch: isMobile });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.setDefaultTimeout(15000);
  return { page, context, errors };
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

export function consoleUrl(server, path = '/') {
  return `https://127.0.0.1:${server.port}${path}?token=${encodeURIComponent(server.token)}`;
}

// Connected: the status pill says so.
export async function waitConnected(page, timeout = 15000) {
  await page.locator('[data-testid=conn-status][data-state=open]').waitFor({ timeout });
}

// Creates a project through the form and waits for its view.
export async function createProject(page, dir) {
  await page.locator('#new-path').fill(dir);
  await page.getByRole('button', { name: 'Create' }).click();
  await page.locator('#prompt').waitFor();
  await page.locator('[data-testid=project-state][data-state=IDLE]').waitFor();
}

// Sends a prompt and waits until the run's result line is shown and the project is IDLE again.
export async function runPrompt(page, prompt, { results = 1 } = {}) {
  await page.locator('#prompt').fill(prompt);
  await page.locator('#prompt').press('Control+Enter');
  await page.locator('article[data-kind=result]').nth(results - 1).waitFor();
  await page.locator('[data-testid=project-state][data-state=IDLE]').waitFor();
}

// The seqs of the stream's entries, in page order.
export async function streamSeqs(page) {
  return page.locator('.stream article[data-seq]').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
}

// SIGKILLs the fake CLI processes working in `dir` (found by their /proc cwd): a test that needs
// a run to end after it has seen something (a "Stopping…") ends it itself instead of racing the
// server's grace periods. Returns how many it killed.
export function killCliIn(dir) {
  const want = realpathSync(dir);
  let killed = 0;
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      if (readlinkSync(`/proc/${pid}/cwd`) !== want) continue;
      if (!readlinkSync(`/proc/${pid}/exe`).endsWith('/fake-claude')) continue;
      process.kill(Number(pid), 'SIGKILL');
      killed++;
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return killed;
}

// What most test files share: one Chromium and one server (the built binary with the fake CLI,
// `extraArgs` added), started before the file's tests and stopped after them, and temporary
// project directories (`projectDir()`), removed then.
export function sharedBrowserAndServer({ extraArgs = [], dirPrefix = 'pa-browser-project-' } = {}) {
  const shared = { browser: null, server: null, dirs: [] };
  shared.projectDir = () => {
    const d = mkdtempSync(join(tmpdir(), dirPrefix));
    shared.dirs.push(d);
    return d;
  };
  before(async () => {
    [shared.browser, shared.server] = await Promise.all([launch(), startServer({
      serverBinary: requireEnv('PA_SERVER_BINARY'), fakeClaude: requireEnv('PA_FAKE_CLAUDE'), extraArgs,
    })]);
  });
  after(async () => {
    await shared.browser?.close();
    await shared.server?.stop();
    for (const d of shared.dirs) rmSync(d, { recursive: true, force: true });
  });
  return shared;
}
