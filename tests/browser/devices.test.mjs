// Issue 18 in the console: a page pairs itself by opening the `Pair URL` that
// `pocket-agent-server pair` prints (the code leaves the address bar, the device's own token is
// kept, a used link says so); what a role cannot do is not offered; an admin's Devices panel
// makes a code whose QR code decodes to its link, sees the new device appear, renames it and
// revokes it, and the revoked page says why it was signed out. Also at a phone's 390 px (its
// screenshot for the README with PA_DOCS_SCREENSHOTS=<dir>).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, requireEnv } from '../e2e/server.mjs';
import { launch, openPage, screenshot, consoleUrl, waitConnected, createProject } from './browser.mjs';

const serverBinary = requireEnv('PA_SERVER_BINARY');
const fakeClaude = requireEnv('PA_FAKE_CLAUDE');
// With PA_DOCS_SCREENSHOTS=<dir> (scripts/console-screenshots.sh): the README's picture of the panel.
const docsShots = process.env.PA_DOCS_SCREENSHOTS;

// A pairing URL names this machine by its host name (docs/protocol.md, device_pair); the browser
// is told that name is the loopback address, where the test's server listens.
let browser;
let server;
const dirs = [];
before(async () => {
  [browser, server] = await Promise.all([
    launch([`--host-resolver-rules=MAP ${hostname()} 127.0.0.1`]),
    startServer({ serverBinary, fakeClaude, extraArgs: ['--limits-connection-rate', '0'] }),
  ]);
});
after(async () => {
  await browser?.close();
  await server?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function projectDir() {
  const d = mkdtempSync(join(tmpdir(), 'pa-browser-devices-'));
  dirs.push(d);
  return d;
}

// `pocket-agent-server pair` against the running server, as an operator types it; its output.
function pairCommand(role, name) {
  return execFileSync(serverBinary, ['pair', '--role', role, '--name', name,
    '--host', '127.0.0.1', '--port', String(server.port), '--data-dir', join(server.dir, 'data'),
    '--tls-cert', join(server.dir, 'server.crt')],
  { env: { ...process.env, PA_AUTH_TOKEN: server.token }, encoding: 'utf8' });
}

function pairUrlOf(output) {
  const m = /^Pair URL: (\S+)$/m.exec(output);
  assert.ok(m, output);
  return m[1];
}

// zbarimg (Debian's zbar-tools) reads the QR code in a PNG; its text, or '' when none decodes.
function decodeQr(png) {
  try {
    return execFileSync('zbarimg', ['--raw', '-q', png], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
}

test('a page pairs by opening the Pair URL that `pair` prints, and its role limits what it offers', async (t) => {
  const admin = await openPage(browser);
  t.after(() => admin.context.close());
  await admin.page.goto(consoleUrl(server));
  await waitConnected(admin.page);
  const dir = projectDir();
  await createProject(admin.page, dir);

  const url = pairUrlOf(pairCommand('viewer', 'Kitchen tablet'));
  assert.match(url, new RegExp(`^https://${hostname()}:${server.port}/\\?pair=[0-9A-Z]{10}$`));
  const tablet = await openPage(browser);
  t.after(() => tablet.context.close());
  await tablet.page.goto(url);
  await waitConnected(tablet.page);
  assert.equal(new URL(tablet.page.url()).search, '', 'the code is out of the address bar');
  const token = await tablet.page.evaluate(() => localStorage.getItem('pocket-agent.token'));
  assert.match(token ?? '', /^pad_/, 'the device token is kept on the device');
  assert.notEqual(token, server.token);
  await tablet.page.locator('[data-testid=role]', { hasText: 'Kitchen tablet · viewer' }).waitFor();  // the welcome came

  // A viewer: no create form, no delete, no Devices; it may open the project and watch.
  assert.ok(await tablet.page.locator('form.create').isHidden());
  assert.ok(await tablet.page.getByText('Projects are created by an admin.').isVisible());
  assert.ok(await tablet.page.locator('[data-testid=open-devices]').isHidden());
  const row = tablet.page.locator('ul.projects li', { hasText: dir });
  assert.ok(await row.getByRole('button', { name: /Delete/ }).isHidden());
  await row.locator('a').click();
  await tablet.page.locator('[data-testid=project-state][data-state=IDLE]').waitFor();
  assert.ok(await tablet.page.locator('form.prompt-form').isHidden());
  assert.ok(await tablet.page.getByRole('button', { name: 'Kill' }).isHidden());
  assert.ok(await tablet.page.getByText('This device may watch this project, not run prompts').isVisible());
  // The admin's run reaches the viewer's page.
  await admin.page.locator('#prompt').fill('[[fake:text text="seen by the tablet"]]');
  await admin.page.locator('#prompt').press('Control+Enter');
  await tablet.page.locator('.stream', { hasText: 'seen by the tablet' }).waitFor();
  await screenshot(tablet.page, 'devices-viewer-project');

  // The link works once: opened again (another browser), it says so.
  const again = await openPage(browser);
  t.after(() => again.context.close());
  await again.page.goto(url);
  const alert = again.page.locator('form.login [role=alert]');
  await alert.waitFor();
  assert.match(await alert.textContent(), /was used already/);
  assert.equal(await again.page.evaluate(() => localStorage.getItem('pocket-agent.token')), null);

  // A page reloaded later connects with the kept token (no code needed).
  await tablet.page.goto(`https://${hostname()}:${server.port}/`);
  await waitConnected(tablet.page);
  await tablet.page.locator('[data-testid=role]', { hasText: 'Kitchen tablet · viewer' }).waitFor();  // the welcome came
  // No page errors, but for the used link's refused POST.
  assert.deepEqual(tablet.errors, []);
  assert.deepEqual(admin.errors, []);
  assert.deepEqual(again.errors.filter((e) => !/410/.test(e)), []);
});

test('an admin adds a device from the Devices panel at 390 px: QR, paired, renamed, revoked', async (t) => {
  const admin = await openPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true });
  t.after(() => admin.context.close());
  await admin.page.goto(consoleUrl(server));
  await waitConnected(admin.page);
  await admin.page.locator('[data-testid=open-devices]').click();
  const panel = admin.page.locator('dialog.devices');
  await panel.waitFor();
  await panel.locator('#pair-role').selectOption('operator');
  await panel.locator('#pair-name').fill('Pixel 7');
  await panel.getByRole('button', { name: 'Make a pairing code' }).click();
  const qr = panel.locator('[data-testid=pairing-qr]');
  await qr.waitFor();
  const url = await panel.locator('[data-testid=pairing-url]').textContent();
  assert.match(url, new RegExp(`^https://${hostname()}:${server.port}/\\?pair=[0-9A-Z]{10}$`));
  assert.equal(await admin.page.evaluate(() => document.documentElement.scrollWidth), 390, 'nothing wider than the phone');
  await screenshot(admin.page, 'devices-add-390');
  if (docsShots) {
    mkdirSync(docsShots, { recursive: true });
    await admin.page.screenshot({ path: join(docsShots, 'devices-add-390.png') });
  }
  // The QR code on screen is the link.
  const shot = join(mkdtempSync(join(tmpdir(), 'pa-qr-')), 'qr.png');
  dirs.push(join(shot, '..'));
  await qr.screenshot({ path: shot });
  assert.equal(decodeQr(shot), url);

  // The phone opens it: an operator may run prompts, not create projects or answer permissions.
  const phone = await openPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true });
  t.after(() => phone.context.close());
  await phone.page.goto(url);
  await waitConnected(phone.page);
  await phone.page.locator('[data-testid=role]', { hasText: 'Pixel 7 · operator' }).waitFor();  // the welcome came
  assert.ok(await phone.page.locator('form.create').isHidden());
  assert.ok(await phone.page.locator('[data-testid=open-devices]').isHidden());

  // The admin's panel sees it arrive without a click, then renames it.
  await panel.locator('[data-testid=pairing-done]', { hasText: 'Paired: Pixel 7.' }).waitFor();
  const deviceId = await panel.locator('.device-list li', { hasText: 'Pixel 7' }).getAttribute('data-device-id');
  const item = panel.locator(`.device-list li[data-device-id="${deviceId}"]`);
  await item.getByRole('button', { name: 'Rename' }).click();
  await item.getByRole('textbox').fill('Work phone');
  await item.getByRole('button', { name: 'Save' }).click();
  const renamed = panel.locator('.device-list li', { hasText: 'Work phone' });
  await renamed.waitFor();
  assert.match(await renamed.textContent(), /operator/);
  assert.match(await renamed.textContent(), /last seen (?!never)/);
  await screenshot(admin.page, 'devices-list-390');

  // Revoked: the phone is signed out at once and told why; its token is forgotten.
  await renamed.getByRole('button', { name: /Revoke/ }).click();
  await renamed.getByRole('button', { name: 'Confirm: revoke Work phone' }).click();
  await renamed.waitFor({ state: 'detached' });
  const alert = phone.page.locator('form.login [role=alert]');
  await alert.waitFor();
  assert.match(await alert.textContent(), /An admin revoked this device/);
  assert.equal(await phone.page.evaluate(() => localStorage.getItem('pocket-agent.token')), null);
  await screenshot(phone.page, 'devices-revoked-390');
  assert.deepEqual(admin.errors, []);
  assert.deepEqual(phone.errors, []);
});
