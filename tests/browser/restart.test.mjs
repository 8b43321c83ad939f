// The console survives a server restart: it reconnects by itself, re-joins the open project,
// catches up with get_messages after_seq, and shows every history entry exactly once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, requireEnv } from '../e2e/server.mjs';
import { launch, openPage, consoleUrl, waitConnected, createProject, runPrompt, streamSeqs } from './browser.mjs';

const serverBinary = requireEnv('PA_SERVER_BINARY');
const fakeClaude = requireEnv('PA_FAKE_CLAUDE');

let browser;
let server;
const projectDir = mkdtempSync(join(tmpdir(), 'pa-browser-project-'));

before(async () => {
  [browser, server] = await Promise.all([launch(), startServer({ serverBinary, fakeClaude })]);
});
after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(projectDir, { recursive: true, force: true });
});

test('after a server restart the console reconnects and shows no duplicate lines', async (t) => {
  const { page, context, errors } = await openPage(browser);
  t.after(() => context.close());
  await page.goto(consoleUrl(server));
  await waitConnected(page);
  await createProject(page, projectDir);
  await runPrompt(page, '[[fake:text text="Alpha before the restart"]]');

  // Stop the server and keep the page offline while another page makes history it must catch up.
  const { port, token, dir } = server;
  await server.stop({ keepDir: true });
  await page.locator('[data-testid=conn-status]:not([data-state=open])').waitFor();
  await context.setOffline(true);
  server = await startServer({ serverBinary, fakeClaude, dir, port, token });

  const other = await openPage(browser);
  t.after(() => other.context.close());
  await other.page.goto(consoleUrl(server));
  await waitConnected(other.page);
  await other.page.locator('ul.projects li', { hasText: projectDir }).locator('a').click();
  await other.page.locator('article[data-kind=result]').waitFor();
  await runPrompt(other.page, '[[fake:drip lines=3 interval_ms=20]]', { results: 2 });

  // Back online: the page reconnects, re-joins and fetches what it missed.
  await context.setOffline(false);
  await waitConnected(page, 40000);  // the 'online' event retries at once; backoff is at most 15 s
  await page.locator('article[data-kind=result]').nth(1).waitFor();
  await page.locator('[data-testid=project-state][data-state=IDLE]').waitFor();

  // A run after the reconnect streams into the same view.
  await runPrompt(page, '[[fake:text text="Omega after the restart"]]', { results: 3 });
  const seqs = await streamSeqs(page);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1),
    `each history entry once, in order: ${seqs.join(',')}`);
  for (const text of ['Alpha before the restart', 'Omega after the restart']) {
    assert.equal(await page.locator('article[data-kind=assistant]', { hasText: text }).count(), 1, text);
  }
  for (const n of [1, 2, 3]) {
    assert.equal(await page.locator('article[data-kind=assistant]', { hasText: `Line ${n} of 3.` }).count(), 1);
  }
  // While the server was down Chromium logs each refused WebSocket attempt; nothing else.
  const unexpected = errors.filter((e) => !/WebSocket connection to .* failed/.test(e));
  assert.deepEqual(unexpected, []);
  assert.deepEqual(other.errors, []);
});
