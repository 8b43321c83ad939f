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

// A photo from a phone (here a 2400 × 1800 JPEG) is made smaller before it is sent: at most
// 1568 px on its long edge (what the model API scales to anyway), so it fits in the server's
// default message size.
test('a big photo is scaled down to 1568 px and fits in one message', async (t) => {
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await createProject(page, projectDir());
  await page.locator('#prompt').evaluate(async (el) => {
    const canvas = document.createElement('canvas');
    canvas.width = 2400;
    canvas.height = 1800;
    const g = canvas.getContext('2d');
    const sky = g.createLinearGradient(0, 0, 0, 1800);
    sky.addColorStop(0, '#8ec5fc');
    sky.addColorStop(1, '#e0c3fc');
    g.fillStyle = sky;
    g.fillRect(0, 0, 2400, 1800);
    for (let i = 0; i < 40; i++) {
      g.fillStyle = `hsl(${i * 37} 70% 50%)`;
      g.beginPath();
      g.arc((i * 613) % 2400, (i * 379) % 1800, 40 + (i % 7) * 20, 0, 2 * Math.PI);
      g.fill();
    }
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.95));
    const data = new DataTransfer();
    data.items.add(new File([blob], 'photo.jpg', { type: 'image/jpeg' }));
    el.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  });
  const thumb = page.locator('[data-testid=attachment-tray] img.thumb');
  await thumb.waitFor();
  await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await thumb.elementHandle());
  const size = await thumb.evaluate((el) => [el.naturalWidth, el.naturalHeight, el.alt]);
  assert.deepEqual(size, [1568, 1176, 'photo.jpg']);

  await page.locator('#prompt').fill('What is in this photo?');
  await page.getByRole('button', { name: 'Run' }).click();
  const prompt = page.locator('article[data-kind=prompt]', { hasText: 'What is in this photo?' });
  await prompt.locator('img[data-testid=history-thumb]').waitFor();
  await page.locator('[data-testid=project-state][data-state=IDLE]').waitFor();
  assert.deepEqual(errors, []);
});

// A prompt whose attachments would make the message larger than limits.message_size (welcome
// says it) is not sent: the connection would be closed (1009) and the prompt lost. The console
// says what to do, keeps the prompt and its files, and stays connected.
test('a prompt too big for the server is held back with a notice, not sent', async (t) => {
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await createProject(page, projectDir());
  const sockets = [];
  page.on('websocket', (ws) => sockets.push(ws));
  await page.locator('[data-testid=attach-input]').setInputFiles([
    { name: 'big.log', mimeType: 'text/plain', buffer: Buffer.alloc(900 * 1024, 'log line\n') },
  ]);
  await page.locator('[data-testid=attachment-tray] .chip', { hasText: 'big.log' }).waitFor();
  await page.locator('#prompt').fill('Why does this fail?');
  await page.getByRole('button', { name: 'Run' }).click();
  const notice = page.locator('.project-view .notice', { hasText: 'limits.message_size' });
  await notice.waitFor();
  assert.match(await notice.textContent(), /up to 1\.0 MiB/);
  assert.equal(await page.locator('#prompt').inputValue(), 'Why does this fail?');
  assert.equal(await page.locator('[data-testid=attachment-tray] li').count(), 1);
  assert.equal(await page.locator('article[data-kind=prompt]').count(), 0, 'nothing was sent');
  await waitConnected(page);
  assert.equal(sockets.length, 0, 'no reconnect: the connection was never closed');
  assert.deepEqual(errors, []);
});
