// Attachments in the web console (issue 19): an image pasted into the prompt box shows as a
// removable thumbnail, goes with the prompt, and the prompt in history shows its thumbnail,
// fetched with get_attachment and shown from a blob: URL under the page's CSP. A text file from
// the picker shows as a chip whose text opens on demand. With PA_DOCS_SCREENSHOTS=<dir>
// (scripts/console-screenshots.sh) it also saves the README's attachments-390.png there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { sharedBrowserAndServer, openPage, screenshot, consoleUrl, waitConnected, createProject } from './browser.mjs';

const docsShots = process.env.PA_DOCS_SCREENSHOTS;
const shared = sharedBrowserAndServer();
const { projectDir } = shared;

// Pastes a PNG drawn in the page (a "screenshot") into the prompt box, as a clipboard paste does.
async function pasteImage(page, name) {
  await page.locator('#prompt').evaluate(async (el, fileName) => {
    const canvas = document.createElement('canvas');
    canvas.width = 240;
    canvas.height = 160;
    const g = canvas.getContext('2d');
    g.fillStyle = '#2f6feb';
    g.fillRect(0, 0, 240, 160);
    g.fillStyle = '#ffd33d';
    g.fillRect(40, 40, 160, 80);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
    const data = new DataTransfer();
    data.items.add(new File([blob], fileName, { type: 'image/png' }));
    el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  }, name);
}

test('paste an image, attach a text file, run: thumbnails in the prompt box and in history (390 px)', async (t) => {
  const { page, context, errors } = await openPage(shared.browser, { viewport: { width: 390, height: 844 }, isMobile: true });
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await createProject(page, projectDir());

  // A pasted image and a picked text file wait in the tray; one can be removed again.
  await pasteImage(page, 'screenshot.png');
  const tray = page.locator('[data-testid=attachment-tray]');
  await tray.locator('img.thumb').waitFor();
  await page.locator('[data-testid=attach-input]').setInputFiles([
    { name: 'notes.md', mimeType: 'text/markdown', buffer: Buffer.from('# Notes\nthe login button is blue\n') },
    { name: 'extra.txt', mimeType: 'text/plain', buffer: Buffer.from('remove me') },
  ]);
  await tray.locator('.chip', { hasText: 'extra.txt' }).waitFor();
  await tray.getByRole('button', { name: 'Remove extra.txt' }).click();
  assert.equal(await tray.locator('li').count(), 2);

  await page.locator('#prompt').fill('What is wrong with this page?');
  await page.getByRole('button', { name: 'Run' }).click();
  await page.locator('article[data-kind=result]').waitFor();
  await page.locator('[data-testid=project-state][data-state=IDLE]').waitFor();
  assert.equal(await tray.isHidden(), true, 'the tray is emptied once the execute is taken');

  // History: the prompt with the image's thumbnail (a loaded blob: image) and the file's chip.
  const prompt = page.locator('article[data-kind=prompt]', { hasText: 'What is wrong with this page?' });
  const thumb = prompt.locator('img[data-testid=history-thumb]');
  await thumb.waitFor();
  await page.waitForFunction((el) => el.complete && el.naturalWidth === 240, await thumb.elementHandle());
  assert.match(await thumb.getAttribute('src'), /^blob:/);
  assert.equal(await thumb.getAttribute('alt'), 'screenshot.png');
  const chip = prompt.locator('summary.chip', { hasText: 'notes.md' });
  await chip.click();
  await prompt.locator('pre.attachment-text', { hasText: 'the login button is blue' }).waitFor();
  await screenshot(page, 'attachments-390');
  if (docsShots) {
    mkdirSync(docsShots, { recursive: true });
    await page.screenshot({ path: join(docsShots, 'attachments-390.png') });
  }

  // A page opened afresh fetches the thumbnail again from history.
  const again = await openPage(shared.browser);
  t.after(() => again.context.close());
  await again.page.goto(consoleUrl(shared.server) + new URL(page.url()).hash);
  await waitConnected(again.page);
  const thumb2 = again.page.locator('article[data-kind=prompt] img[data-testid=history-thumb]');
  await thumb2.waitFor();
  await again.page.waitForFunction((el) => el.complete && el.naturalWidth === 240, await thumb2.elementHandle());

  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling on a phone (overflow ${overflow}px)`);
  assert.deepEqual(errors, []);
  assert.deepEqual(again.errors, []);
});
