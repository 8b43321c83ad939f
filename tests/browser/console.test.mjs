// The web console at / in a real browser (Debian's Chromium), against the built server with the
// fake CLI: connect with the token from the URL, create a project, stream a run, Markdown that
// cannot inject markup, history paged in by scrolling up, a permission card answered on one page
// and gone from another, a server restart with catch-up and no duplicates, a phone-sized screen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  sharedBrowserAndServer, openPage, screenshot, consoleUrl, waitConnected, createProject, runPrompt, streamSeqs,
} from './browser.mjs';

const shared = sharedBrowserAndServer();
const { projectDir } = shared;

function assertSeqsContiguous(seqs, from = 1) {
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => from + i),
    `stream seqs must be ${from}.. with no gap or duplicate: ${seqs.join(',')}`);
}

test('connect with the token, create a project, see a run stream; phone layout', async (t) => {
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  // The token is taken out of the address bar (and kept in sessionStorage for reloads).
  assert.equal(new URL(page.url()).searchParams.get('token'), null);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('pocket-agent.token')), shared.server.token);

  const dir = projectDir();
  await createProject(page, dir);
  assert.equal(await page.locator('[data-testid=project-path]').textContent(), dir);
  await page.locator('#prompt').fill('[[fake:drip lines=3 interval_ms=50]]');
  await page.getByRole('button', { name: 'Run' }).click();
  for (const n of [1, 2, 3]) {
    await page.locator('article[data-kind=assistant]', { hasText: `Line ${n} of 3.` }).waitFor();
  }
  const result = page.locator('article[data-kind=result]');
  await result.waitFor();
  assert.match(await result.textContent(), /Done · \$\d+\.\d{4} · .* · 1 turn/);
  await page.locator('[data-testid=project-state][data-state=IDLE]').waitFor();
  assertSeqsContiguous(await streamSeqs(page));

  // The server panel shows health.
  await page.locator('.status-panel summary').click();
  await page.locator('.status-panel dd[data-key=Status]', { hasText: /healthy|degraded/ }).waitFor();
  await screenshot(page, 'console-status-panel');
  await page.locator('.status-panel summary').click();

  // A tool call: its input shown, its result folded.
  await runPrompt(page, 'Show me the files [[fake:tool]]', { results: 2 });
  await page.locator('article[data-kind=assistant] .tool-use').first().waitFor();
  assert.equal(await page.locator('details.tool-result[open]').count(), 0);
  await screenshot(page, 'console-project-desktop');

  // Raw JSON on demand.
  await page.locator('#raw-toggle').check();
  assert.ok(await page.locator('.stream pre.raw').count() >= 5);
  await page.locator('#raw-toggle').uncheck();
  assert.equal(await page.locator('.stream pre.raw').count(), 0);

  // The list shows the project and its state.
  await page.getByRole('link', { name: '← Projects' }).click();
  const row = page.locator('ul.projects li', { hasText: dir });
  await row.locator('.badge', { hasText: 'IDLE' }).waitFor();
  await screenshot(page, 'console-projects-desktop');

  // Phone: the same project in a 390x844 viewport, reloaded from sessionStorage's token.
  const phone = await openPage(shared.browser, { viewport: { width: 390, height: 844 }, isMobile: true });
  t.after(() => phone.context.close());
  await phone.page.goto(consoleUrl(shared.server));
  await waitConnected(phone.page);
  await phone.page.locator('ul.projects li', { hasText: dir }).locator('a').click();
  await phone.page.locator('article[data-kind=result]').nth(1).waitFor();
  const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling on a phone (overflow ${overflow}px)`);
  assert.ok(await phone.page.locator('#prompt').isVisible());
  await screenshot(phone.page, 'console-project-phone');

  // Keyboard: the prompt box has focus in a project, and Tab reaches the controls.
  assert.equal(await phone.page.evaluate(() => document.activeElement?.id), 'prompt');
  assert.deepEqual(errors, []);
  assert.deepEqual(phone.errors, []);
});

test('Markdown is rendered for people and cannot inject markup', async (t) => {
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await createProject(page, projectDir());
  const text = '**bold** and `code` <img src=x onerror=alert(1)> [ok](https://example.com/a) [bad](javascript:alert(1))';
  await runPrompt(page, `[[fake:text text="${text}"]]`);
  const answer = page.locator('article[data-kind=assistant]');
  assert.equal(await answer.locator('strong').textContent(), 'bold');
  assert.equal(await answer.locator('code').textContent(), 'code');
  assert.equal(await page.locator('.stream img').count(), 0);
  assert.match(await answer.textContent(), /<img src=x onerror=alert\(1\)>/);
  const links = await answer.locator('a').evaluateAll((as) => as.map((a) => [a.href, a.rel]));
  assert.deepEqual(links, [['https://example.com/a', 'noopener noreferrer']]);
  assert.deepEqual(errors, []);
});

test('history is paged in as you scroll up, each entry once', async (t) => {
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await createProject(page, projectDir());
  await runPrompt(page, '[[fake:flood lines=260 bytes=20]]');
  const total = (await streamSeqs(page)).length;
  assert.ok(total > 260, `a long run: ${total} entries`);

  // Reloaded: only the newest page is there; scrolling to the top brings the rest.
  await page.reload();
  await waitConnected(page);
  await page.locator('article[data-kind=result]').waitFor();
  let seqs = await streamSeqs(page);
  assert.equal(seqs.length, 100);
  assertSeqsContiguous(seqs, total - 99);
  for (let i = 0; i < 10 && seqs[0] !== 1; i++) {
    const first = seqs[0];
    await page.locator('.stream').evaluate((el) => { el.scrollTop = 0; });
    await page.waitForFunction((f) => Number(document.querySelector('.stream article[data-seq]')?.dataset.seq) < f, first);
    seqs = await streamSeqs(page);
  }
  assertSeqsContiguous(seqs, 1);
  assert.ok(await page.locator('.stream .older').isHidden());
  assert.deepEqual(errors, []);
});

test('a permission request answered on one page disappears from the other', async (t) => {
  const a = await openPage(shared.browser);
  const b = await openPage(shared.browser);
  t.after(async () => { await a.context.close(); await b.context.close(); });
  await a.page.goto(consoleUrl(shared.server));
  await waitConnected(a.page);
  const dir = projectDir();
  await createProject(a.page, dir);

  await b.page.goto(consoleUrl(shared.server, '/'));
  await waitConnected(b.page);
  await b.page.locator('ul.projects li', { hasText: dir }).locator('a').click();
  await b.page.locator('#prompt').waitFor();

  await a.page.locator('#prompt').fill('[[fake:permission command="touch x"]]');
  await a.page.locator('#prompt').press('Control+Enter');
  const cardA = a.page.locator('.card.permission');
  const cardB = b.page.locator('.card.permission');
  await Promise.all([cardA.waitFor(), cardB.waitFor()]);
  assert.match(await cardB.textContent(), /touch x/);
  await screenshot(b.page, 'console-permission-card');
  await cardA.getByRole('button', { name: 'Allow', exact: true }).click();
  await Promise.all([cardA.waitFor({ state: 'detached' }), cardB.waitFor({ state: 'detached' })]);
  await b.page.locator('article[data-kind=result]').waitFor();
  await b.page.locator('details.tool-result', { hasText: 'touch x' }).waitFor();
  assert.deepEqual(a.errors, []);
  assert.deepEqual(b.errors, []);
});
