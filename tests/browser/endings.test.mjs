// Honest run endings in the console: Interrupt and Kill only while a run goes on, "Stopping…" at
// once, "Stopped by …" (never a red failure) for an interrupted or killed run, the CLI's
// diagnostics folded behind "Details", a failed run's stderr in the page, prompts labelled with
// the client that sent them, and a project link opened in a new tab without the token again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startServer, requireEnv } from '../e2e/server.mjs';
import {
  sharedBrowserAndServer, openPage, screenshot, consoleUrl, waitConnected, createProject, runPrompt, killCliIn,
} from './browser.mjs';

const serverBinary = requireEnv('PA_SERVER_BINARY');
const fakeClaude = requireEnv('PA_FAKE_CLAUDE');

const shared = sharedBrowserAndServer({ extraArgs: ['--timeouts-kill-grace', '1s', '--timeouts-term-grace', '1s'] });
const { projectDir } = shared;

async function start(page, prompt) {
  await page.locator('#prompt').fill(prompt);
  await page.locator('#prompt').press('Control+Enter');
  await page.locator('[data-testid=project-state][data-state=EXECUTING]').waitFor();
}

async function assertNoRedBlock(page) {
  assert.equal(await page.locator('.stream article.error, .stream article.result.error').count(), 0,
    'no failure block for a stop');
}

// Grace periods no test waits out: a run being killed stays "Stopping…" until the test ends its
// CLI (killCliIn), so nothing depends on how fast the page is.
const kLongGraces = ['--timeouts-kill-grace', '10m', '--timeouts-term-grace', '10m'];

test('Kill: Stopping… at once, then "Stopped by You", never a failure; buttons follow the state', async (t) => {
  const slow = await startServer({ serverBinary, fakeClaude, extraArgs: kLongGraces });
  t.after(() => slow.stop());
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  await page.goto(consoleUrl(slow));
  await waitConnected(page);
  const dir = projectDir();
  await createProject(page, dir);
  const interrupt = page.getByRole('button', { name: 'Interrupt' });
  const kill = page.getByRole('button', { name: 'Kill' });
  assert.ok(await interrupt.isDisabled(), 'Interrupt is disabled while idle');
  assert.ok(await kill.isDisabled(), 'Kill is disabled while idle');

  // A CLI that ignores the interrupt and SIGTERM: only SIGKILL ends it (here the test's).
  await start(page, '[[fake:hang ignore-interrupt=1 ignore-sigterm=1]]');
  await page.locator('article[data-kind=init]').waitFor();
  assert.ok(await kill.isEnabled());
  await kill.click();
  const stopping = page.locator('[data-testid=project-state][data-stopping=kill]');
  await stopping.waitFor();
  assert.equal(await stopping.textContent(), 'Stopping…');
  await page.getByRole('button', { name: 'Stopping…' }).waitFor();
  assert.ok(await page.getByRole('button', { name: 'Stopping…' }).isDisabled());
  await page.locator('article[data-kind=stopping]', { hasText: 'kill asked by You' }).waitFor();
  await screenshot(page, 'console-stopping');
  assert.equal(killCliIn(dir), 1, 'the CLI is still running while the page says Stopping…');

  const ended = page.locator('article[data-kind=ended]');
  await ended.waitFor();
  assert.match(await ended.textContent(), /^Stopped by You · killed$/);
  await page.locator('[data-testid=project-state][data-state=IDLE]').waitFor();
  assert.ok(await interrupt.isDisabled());
  assert.ok(await kill.isDisabled());
  assert.equal(await kill.textContent(), 'Kill');
  await assertNoRedBlock(page);
  await screenshot(page, 'console-stopped-by-kill');

  // A reload shows the same ending, from history.
  await page.reload();
  await waitConnected(page);
  await page.locator('article[data-kind=ended]', { hasText: 'Stopped by' }).waitFor();
  await assertNoRedBlock(page);
  assert.deepEqual(errors, []);
});

test('Interrupt: "Stopped by You", the CLI\'s diagnostics behind Details', async (t) => {
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await createProject(page, projectDir());
  await start(page, `[[fake:drip lines=3 interval_ms=1 hold_after=1 hold_file=${join(projectDir(), 'never')}]]`);
  await page.locator('article[data-kind=assistant]').first().waitFor();
  await page.getByRole('button', { name: 'Interrupt' }).click();
  // (No wait for "Stopping…" here: this CLI answers the interrupt at once, so the page may never
  // show it; the kill tests hold a run in that state.)
  await page.locator('[data-testid=project-state][data-state=IDLE]').waitFor();
  const ended = page.locator('article[data-kind=ended]');
  await ended.waitFor();
  assert.match(await ended.textContent(), /^Stopped by You · interrupted$/);
  const result = page.locator('article[data-kind=result]');
  assert.match(await result.locator('.result-line').textContent(), /^Stopped/);
  assert.match(await result.getAttribute('class'), /\bstopped\b/);
  const details = result.locator('details.diagnostic');
  assert.equal(await details.getAttribute('open'), null, 'folded');
  assert.match(await details.locator('pre').textContent(), /\[ede_diagnostic\]/);
  assert.ok(!(await details.locator('pre').isVisible()), 'the diagnostic text is not shown until opened');
  await assertNoRedBlock(page);
  await screenshot(page, 'console-stopped-by-interrupt');
  assert.deepEqual(errors, []);
});

test('a failed run shows the CLI\'s stderr', async (t) => {
  const { page, context } = await openPage(shared.browser);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await createProject(page, projectDir());
  await page.locator('#prompt').fill('[[fake:fail code=3 stderr=widget-factory-exploded init=1]]');
  await page.locator('#prompt').press('Control+Enter');
  const error = page.locator('article.error', { hasText: 'EXECUTION_FAILED' });
  await error.waitFor();
  assert.equal((await error.locator('pre.stderr').textContent()).trim(), 'widget-factory-exploded');
  assert.ok(await error.locator('pre.stderr').isVisible());
  await page.locator('article[data-kind=ended]', { hasText: 'failed' }).waitFor();
  await screenshot(page, 'console-failed-run-stderr');
});

test('prompts are labelled with the client that sent them; a new tab needs no token', async (t) => {
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  const dir = projectDir();
  await createProject(page, dir);
  await runPrompt(page, '[[fake:text text="mine"]]');
  assert.equal(await page.locator('article[data-kind=prompt] .who').first().textContent(), 'You');
  const projectHash = await page.evaluate(() => location.hash);

  // Another client (a phone app named "Pixel 7", here a WebSocket from another browser) sends a
  // prompt to the same project.
  const other = await openPage(shared.browser);
  t.after(() => other.context.close());
  await other.page.goto(`https://127.0.0.1:${shared.server.port}/`);
  const projectId = decodeURIComponent(projectHash.replace('#/p/', ''));
  const reply = await other.page.evaluate(async ({ token, projectId }) => {
    const ws = new WebSocket(`wss://${location.host}/ws?token=${encodeURIComponent(token)}&client_name=${encodeURIComponent('Pixel 7')}`);
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    ws.send(JSON.stringify({ type: 'execute', project_id: projectId, request_id: 'x1', data: { prompt: '[[fake:text text="theirs"]]' } }));
    const answer = await new Promise((resolve) => {
      ws.onmessage = (ev) => { const m = JSON.parse(ev.data); if (m.request_id === 'x1') resolve(m); };
    });
    ws.close();
    return answer;
  }, { token: shared.server.token, projectId });
  assert.equal(reply.type, 'project_state', JSON.stringify(reply));
  const theirs = page.locator('article[data-kind=prompt]', { hasText: 'theirs' });
  await theirs.waitFor();
  assert.equal(await theirs.locator('.who').textContent(), 'Pixel 7');
  assert.equal(await page.locator('article[data-kind=prompt]', { hasText: 'mine' }).locator('.who').textContent(), 'You');

  // The same project in a new tab of this browser: no token in its URL or its storage; the open
  // tab shares it.
  const tab = await context.newPage();
  await tab.goto(`https://127.0.0.1:${shared.server.port}/${projectHash}`);
  await waitConnected(tab);
  await tab.locator('#prompt').waitFor();
  assert.equal(await tab.locator('#token').count(), 0, 'no token form');
  await tab.locator('article[data-kind=prompt]', { hasText: 'theirs' }).waitFor();
  // In the new tab, the first tab's prompt is another connection's: it has the client's name.
  assert.equal(await tab.locator('article[data-kind=prompt]', { hasText: 'mine' }).locator('.who').textContent(), 'web-console');
  assert.deepEqual(errors, []);
});

test('a page opened while a kill is under way shows "Stopping…" too', async (t) => {
  // Long graces: the run cannot end before the second page has joined; the test ends it.
  const slow = await startServer({ serverBinary, fakeClaude, extraArgs: kLongGraces });
  t.after(() => slow.stop());
  const a = await openPage(shared.browser);
  const b = await openPage(shared.browser);
  t.after(async () => { await a.context.close(); await b.context.close(); });
  await a.page.goto(consoleUrl(slow));
  await waitConnected(a.page);
  const dir = projectDir();
  await createProject(a.page, dir);
  await start(a.page, '[[fake:hang ignore-interrupt=1 ignore-sigterm=1]]');
  await a.page.locator('article[data-kind=init]').waitFor();
  await a.page.getByRole('button', { name: 'Kill' }).click();
  await a.page.locator('article[data-kind=stopping]').waitFor();
  const hash = await a.page.evaluate(() => location.hash);

  await b.page.goto(`${consoleUrl(slow)}${hash}`);
  await waitConnected(b.page);
  const stopping = b.page.locator('[data-testid=project-state][data-stopping=kill]');
  await stopping.waitFor();
  assert.equal(await stopping.textContent(), 'Stopping…');
  assert.ok(await b.page.getByRole('button', { name: 'Interrupt' }).isDisabled());
  assert.ok(await b.page.getByRole('button', { name: 'Stopping…' }).isDisabled());
  assert.equal(killCliIn(dir), 1, 'the CLI is still running');
  // Then the end, on both pages.
  await b.page.locator('article[data-kind=ended]', { hasText: 'Stopped by web-console' }).waitFor({ timeout: 30000 });
  await a.page.locator('article[data-kind=ended]', { hasText: 'Stopped by You' }).waitFor({ timeout: 30000 });
});
