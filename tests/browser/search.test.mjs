// Search over all history in the console (issue 19): the search box above the project list,
// hits with their project and a marked snippet that stays text, and a click that opens the
// project at the hit, loading older history pages until the entry is in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  sharedBrowserAndServer, openPage, screenshot, consoleUrl, waitConnected, createProject, runPrompt,
} from './browser.mjs';

const shared = sharedBrowserAndServer({ dirPrefix: 'pa-browser-search-' });
const { projectDir } = shared;

test('search all history and jump to the hit', async (t) => {
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);

  // Project one: markup in a prompt, which a snippet must show as text.
  const first = projectDir();
  await createProject(page, first);
  await runPrompt(page, 'ocelot <b>bold</b> <img src=x onerror=alert(1)>');
  // Project two: 150 lines, so that line 3 is older than the first history page (100).
  await page.getByRole('link', { name: '← Projects' }).click();
  const second = projectDir();
  await createProject(page, second);
  await runPrompt(page, '[[fake:drip lines=150 interval_ms=1]]');
  await page.getByRole('link', { name: '← Projects' }).click();

  const box = page.getByRole('searchbox', { name: 'Search all history' });
  await box.fill('ocelot');
  await box.press('Enter');
  const markupHit = page.locator('ol.search-results li');
  await markupHit.first().waitFor();
  assert.equal(await markupHit.count(), 1);
  assert.match(await markupHit.locator('.snippet').textContent(), /ocelot <b>bold<\/b> <img src=x/);
  assert.equal(await markupHit.locator('.snippet b, .snippet img').count(), 0, 'no markup from the snippet');
  assert.equal(await markupHit.locator('mark').textContent(), 'ocelot');
  assert.match(await markupHit.textContent(), new RegExp(first.replace(/[/.-]/g, '\\$&')));

  await box.fill('line 3');
  await box.press('Enter');
  const hit = page.locator('ol.search-results li', { hasText: 'Line 3 of 150.' });
  await hit.waitFor();
  assert.equal(await page.locator('ol.search-results li').count(), 1);
  assert.deepEqual(await hit.locator('mark').allTextContents(), ['Line', '3']);
  await screenshot(page, 'console-search-results');
  const seq = Number(await hit.getAttribute('data-seq'));
  await hit.locator('a').click();

  // The project, with the hit's entry loaded (older pages fetched) and marked in view.
  await page.waitForURL(/#\/p\/[^/]+\/seq\/\d+$/);
  const target = page.locator(`.stream article[data-seq="${seq}"]`);
  await target.waitFor();
  assert.match(await target.textContent(), /Line 3 of 150\./);
  assert.equal(await target.getAttribute('aria-current'), 'true');
  assert.ok(await target.evaluate((el) => el.classList.contains('hit-target')));
  const inView = await target.evaluate((el) => {
    const r = el.getBoundingClientRect();
    return r.bottom > 0 && r.top < window.innerHeight;
  });
  assert.ok(inView, 'the hit is scrolled into view');
  await screenshot(page, 'console-search-jump');
  assert.deepEqual(errors, []);
});
