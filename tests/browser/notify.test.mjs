// The console as an installable app that shows the server's notifications (issue 17): its
// service worker, notifications from pushes delivered with CDP (ServiceWorker.deliverPushMessage,
// payloads as docs/protocol.md "Notifications" gives them), a tap that opens the project at the
// permission card, a permission_resolved push that withdraws the notification, the install check
// (CDP Page.getInstallabilityErrors), client_focus as the view changes, and the notifications
// panel at 390 px (its screenshot for the README with PA_DOCS_SCREENSHOTS=<dir>:
// scripts/console-screenshots.sh).
//
// Tapping: no CDP command clicks a notification. The test dispatches a `notificationclick`
// NotificationEvent, built around the real Notification of registration.getNotifications(), in
// the service worker (playwright's context.serviceWorkers()): the worker's own listener runs,
// closes the notification and tells the open console window where to go. What a real tap has
// and this has not: isTrusted (so the listener's event.waitUntil() throws, after its argument,
// openConsole(), has started) and the user activation that lets the worker focus a window (its
// focus() is refused) or open a new one (that branch is not covered here).
//
// Pushes need no subscription with CDP; subscribing does (a push service on the network, which
// this machine has not): the panel test checks that this failure is said plainly, and another
// drives the panel's subscribed side against the server with a stand-in for the browser's
// PushManager.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, requireEnv } from '../e2e/server.mjs';
import {
  sharedBrowserAndServer, launchPersistent, openPage, screenshot, consoleUrl, waitConnected, createProject,
} from './browser.mjs';

const docsShots = process.env.PA_DOCS_SCREENSHOTS;
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true };
const EVENTS = ['permission_request', 'run_succeeded', 'run_failed', 'run_timeout', 'run_lost', 'queue_drained', 'server_problem'];

const shared = sharedBrowserAndServer({ dirPrefix: 'pa-browser-notify-' });
const { projectDir } = shared;

function originOf(server) {
  return `https://127.0.0.1:${server.port}`;
}

// The console's service worker, once active: its scope and script.
async function activeWorker(page) {
  return page.evaluate(async () => {
    const r = await navigator.serviceWorker.ready;
    return { scope: r.scope, script: r.active?.scriptURL };
  });
}

// Pushes to the console's worker through CDP, as a push service would deliver them. Each push
// returns once the worker has handled it: Chromium records the push events (DevTools' Background
// services, CDP BackgroundService) with how each ended, which must be "Success".
async function pushDriver(context, page, origin) {
  const cdp = await context.newCDPSession(page);
  const registrationId = new Promise((resolve) => {
    cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
      const r = registrations.find((x) => x.scopeURL === `${origin}/` && !x.isDeleted);
      if (r) resolve(r.registrationId);
    });
  });
  await cdp.send('ServiceWorker.enable');
  const id = await registrationId;
  const outcomes = [];
  const waiting = [];
  cdp.on('BackgroundService.backgroundServiceEventReceived', ({ backgroundServiceEvent: e }) => {
    if (e.eventName !== 'Push event completed') return;
    outcomes.push(e.eventMetadata.find((m) => m.key === 'Status')?.value);
    for (const wake of waiting.splice(0)) wake();
  });
  await cdp.send('BackgroundService.startObserving', { service: 'pushMessaging' });
  await cdp.send('BackgroundService.setRecording', { shouldRecord: true, service: 'pushMessaging' });
  let delivered = 0;
  return async (payload) => {
    const n = ++delivered;
    await cdp.send('ServiceWorker.deliverPushMessage', {
      origin: `${origin}/`, registrationId: id, data: typeof payload === 'string' ? payload : JSON.stringify(payload),
    });
    const deadline = Date.now() + 15000;
    while (outcomes.length < n) {
      const left = deadline - Date.now();
      assert.ok(left > 0, `push #${n} was not handled by the worker (outcomes so far: ${JSON.stringify(outcomes)})`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        waiting.push(() => { clearTimeout(timer); resolve(); });
      });
    }
    assert.equal(outcomes[n - 1], 'Success', `push #${n}: the worker's push handler`);
  };
}

// The notifications the worker shows (all, or those with `tag`), as plain objects.
async function notifications(page, tag) {
  return page.evaluate(async (t) => {
    const r = await navigator.serviceWorker.ready;
    return (await r.getNotifications(t ? { tag: t } : {})).map((n) => ({
      title: n.title, body: n.body, tag: n.tag, data: n.data, requireInteraction: n.requireInteraction,
    }));
  }, tag);
}

// Once the worker shows `count` notifications (with `tag`): them. (No page event tells when the
// worker has shown or closed one: asked again every 50 ms, up to 15 s.)
async function waitNotifications(page, count, tag) {
  await page.evaluate(async ([n, t]) => {
    const r = await navigator.serviceWorker.ready;
    const deadline = Date.now() + 15000;
    let have;
    while ((have = await r.getNotifications(t ? { tag: t } : {})).length !== n) {
      if (Date.now() > deadline) {
        const shown = have.map((x) => `${x.title} (${x.tag})`).join(', ');
        throw new Error(`${have.length} notifications${t ? ` tagged ${t}` : ''} (${shown}), not ${n}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }, [count, tag]);
  return notifications(page, tag);
}

// The worker's notificationclick listener, run for the shown notification with `tag` (see the
// file's comment for how this differs from a real tap).
async function tap(context, tag) {
  const [worker] = context.serviceWorkers();
  assert.ok(worker, 'the console has a service worker');
  await worker.evaluate(async (t) => {
    const [n] = await self.registration.getNotifications({ tag: t });
    if (!n) throw new Error(`no notification tagged ${t}`);
    self.dispatchEvent(new NotificationEvent('notificationclick', { notification: n }));
  }, tag);
}

// The payload the server sends for a permission request (docs/protocol.md, "Notifications").
function permissionPayload(projectId, path, permissionId) {
  return {
    event: 'permission_request', project_id: projectId, project_path: path,
    title: 'Permission needed', body: 'Bash wants to run: touch x',
    url: `/#/p/${encodeURIComponent(projectId)}/permission/${encodeURIComponent(permissionId)}`,
    tag: `permission:${permissionId}`, at: new Date().toISOString(),
  };
}

// The JSON messages the page sends on its WebSockets that `keep` selects, each with `socket` (which
// connection, from 1), and a wait for the first one `match(message, index)` accepts.
function recordSent(page, keep) {
  const sent = [];
  const waiting = [];
  let sockets = 0;
  page.on('websocket', (ws) => {
    const socket = ++sockets;
    ws.on('framesent', ({ payload }) => {
      const msg = JSON.parse(String(payload));
      if (!keep(msg)) return;
      sent.push({ socket, ...msg });
      for (const wake of waiting.splice(0)) wake();
    });
  });
  const waitFor = async (match, what) => {
    const deadline = Date.now() + 15000;
    for (;;) {
      const found = sent.find(match);
      if (found) return found;
      const left = deadline - Date.now();
      assert.ok(left > 0, `${what}; sent: ${JSON.stringify(sent)}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        waiting.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  };
  return { sent, waitFor };
}

async function openProject(page, dir) {
  await createProject(page, dir);
  return page.evaluate(() => decodeURIComponent(location.hash.slice('#/p/'.length)));
}

// A real pending permission request (the fake CLI asks before running `touch x`): its id.
async function pendingPermission(page) {
  await page.locator('#prompt').fill('[[fake:permission command="touch x"]]');
  await page.locator('#prompt').press('Control+Enter');
  const card = page.locator('.card.permission');
  await card.waitFor();
  return card.getAttribute('data-permission-id');
}

test('the console registers its service worker at / and the manifest makes it installable', async (t) => {
  // Installability is never offered in an incognito-like context: a real profile.
  const b = await launchPersistent();
  t.after(() => b.close());
  const origin = originOf(shared.server);
  await b.page.goto(consoleUrl(shared.server));
  await waitConnected(b.page);
  assert.deepEqual(await activeWorker(b.page), { scope: `${origin}/`, script: `${origin}/sw.js` });

  const cdp = await b.context.newCDPSession(b.page);
  const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
  assert.deepEqual(installabilityErrors, [], 'Chromium would offer to install the console');
  const manifest = await cdp.send('Page.getAppManifest');
  assert.equal(manifest.url, `${origin}/manifest.webmanifest`);
  assert.deepEqual(manifest.errors, []);
  const parsed = JSON.parse(manifest.data);
  assert.equal(parsed.display, 'standalone');
  assert.equal(parsed.start_url, '/');
  assert.equal(parsed.scope, '/');
  for (const size of ['192x192', '512x512']) {
    const icon = parsed.icons.find((i) => i.sizes === size && i.type === 'image/png' && i.purpose === 'any');
    assert.ok(icon, `a ${size} PNG icon`);
    const res = await b.page.request.get(`${origin}${icon.src}`);
    assert.equal(res.headers()['content-type'], 'image/png');
    const body = await res.body();
    const [w, hgt] = [body.readUInt32BE(16), body.readUInt32BE(20)];  // the PNG's IHDR
    assert.equal(`${w}x${hgt}`, size);
  }
  // The worker script is served like the page: JavaScript, no caching beyond revalidation, the CSP.
  const sw = await b.page.request.get(`${origin}/sw.js`);
  assert.match(sw.headers()['content-type'], /^text\/javascript/);
  assert.equal(sw.headers()['cache-control'], 'no-cache');
  assert.match(sw.headers()['content-security-policy'], /script-src 'self'/);
  assert.deepEqual(b.errors, []);
});

test('a push about a pending permission request shows a notification; tapping it opens the project at the card', async (t) => {
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  const origin = originOf(shared.server);
  await context.grantPermissions(['notifications'], { origin });
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await activeWorker(page);
  const dir = projectDir();
  const projectId = await openProject(page, dir);
  const permissionId = await pendingPermission(page);
  // Away from the project (the list), as the phone would be when the request comes.
  await page.locator('a.back').click();
  await page.locator('ul.projects').waitFor();

  const push = await pushDriver(context, page, origin);
  const payload = permissionPayload(projectId, dir, permissionId);
  await push(payload);
  const [shown] = await waitNotifications(page, 1, payload.tag);
  assert.equal(shown.title, 'Permission needed');
  assert.equal(shown.body, 'Bash wants to run: touch x');
  assert.equal(shown.requireInteraction, true, 'a permission request stays until answered');
  assert.equal(shown.data.url, `${origin}${payload.url}`);

  await tap(context, payload.tag);
  await page.waitForFunction((hash) => location.hash === hash, `#/p/${encodeURIComponent(projectId)}/permission/${permissionId}`);
  const card = page.locator(`.card.permission[data-permission-id="${permissionId}"]`);
  await page.locator(`.card.permission[data-permission-id="${permissionId}"][aria-current=true]`).waitFor();
  assert.ok(await card.isVisible());
  assert.ok(await card.evaluate((el) => {
    const r = el.getBoundingClientRect();
    return r.top >= 0 && r.bottom <= window.innerHeight;
  }), 'the card is scrolled into view');
  assert.deepEqual(await waitNotifications(page, 0, payload.tag), [], 'a tapped notification is closed');
  await screenshot(page, 'notify-tapped-permission');

  // The card works as ever.
  await card.getByRole('button', { name: 'Allow', exact: true }).click();
  await card.waitFor({ state: 'detached' });
  await page.locator('article[data-kind=result]').waitFor();
  assert.deepEqual(errors, []);
});

test('permission_resolved withdraws the request\'s notification and shows none; odd payloads still lead to the console', async (t) => {
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  const origin = originOf(shared.server);
  await context.grantPermissions(['notifications'], { origin });
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await activeWorker(page);
  const push = await pushDriver(context, page, origin);

  const request = permissionPayload('p1', '/srv/p1', 'perm-1');
  await push(request);
  await push({
    event: 'run_succeeded', project_id: 'p1', project_path: '/srv/p1', title: 'Run finished', body: 'p1: done in 12 s',
    url: '/#/p/p1', tag: 'run:p1', at: new Date().toISOString(),
  });
  await waitNotifications(page, 2);
  const [run] = await notifications(page, 'run:p1');
  assert.equal(run.requireInteraction, false);

  await push({ ...request, event: 'permission_resolved', title: 'Answered', body: 'allowed elsewhere' });
  await waitNotifications(page, 0, request.tag);
  assert.deepEqual((await notifications(page)).map((n) => n.tag), ['run:p1'], 'nothing new shown for it');
  assert.deepEqual(errors, []);
});

test('a push that cannot be read, or that leads outside the console, still shows one that opens the console', async (t) => {
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  const origin = originOf(shared.server);
  await context.grantPermissions(['notifications'], { origin });
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await activeWorker(page);
  const push = await pushDriver(context, page, origin);
  await push('not json');
  const [unreadable] = await waitNotifications(page, 1);
  assert.equal(unreadable.title, 'Pocket Agent');
  assert.equal(unreadable.body, 'Something happened on the server. Open the console to see it.');
  assert.equal(unreadable.data.url, `${origin}/`);
  await push({ event: 'run_failed', title: 'x', body: 'y', tag: 'run:evil', url: 'javascript:alert(1)' });
  const [evil] = await waitNotifications(page, 1, 'run:evil');
  assert.equal(evil.data.url, `${origin}/`);
  assert.deepEqual(errors, []);
});

test('a link to a permission request that is not pending opens just the project view', async (t) => {
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  const projectId = await openProject(page, projectDir());
  await page.locator('a.back').click();
  await page.locator('ul.projects').waitFor();
  await page.evaluate((id) => { location.hash = `#/p/${encodeURIComponent(id)}/permission/no-such-request`; }, projectId);
  await page.locator('[data-testid=project-state][data-state=IDLE]').waitFor();
  await page.locator('#prompt').waitFor();
  assert.equal(await page.locator('.card.permission').count(), 0);
  assert.ok(await page.locator('.project-view .notice').isHidden(), 'no error for it');
  assert.deepEqual(errors, []);
});

test('client_focus follows the project view, the page\'s visibility and reconnects', async (t) => {
  // Its own server: the test restarts it.
  const env = { serverBinary: requireEnv('PA_SERVER_BINARY'), fakeClaude: requireEnv('PA_FAKE_CLAUDE') };
  let server = await startServer(env);
  t.after(() => server.stop());
  const { page, context, errors } = await openPage(shared.browser);
  t.after(() => context.close());
  // The `count`th client_focus the page sent: its connection, project and request id.
  const focus = recordSent(page, (msg) => msg.type === 'client_focus');
  const waitSent = async (count) => {
    const m = await focus.waitFor((_, i) => i === count - 1, `client_focus #${count}`);
    return { socket: m.socket, project_id: m.data.project_id, request_id: m.request_id };
  };
  const setVisibility = (state) => page.evaluate((s) => {
    Object.defineProperty(document, 'visibilityState', { value: s, configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  }, state);

  await page.goto(consoleUrl(server));
  await waitConnected(page);
  const projectId = await openProject(page, projectDir());
  assert.deepEqual(await waitSent(1), { socket: 1, project_id: projectId, request_id: undefined });
  await setVisibility('hidden');
  assert.equal((await waitSent(2)).project_id, null, 'hidden: nothing on screen');
  await setVisibility('visible');
  assert.equal((await waitSent(3)).project_id, projectId);
  await page.locator('a.back').click();
  assert.equal((await waitSent(4)).project_id, null, 'back on the list');
  await page.locator('ul.projects li a', { hasText: 'pa-browser-notify-' }).first().click();
  assert.equal((await waitSent(5)).project_id, projectId);

  // A new connection starts without focus on the server: the page says it again.
  const { dir, port, token } = server;
  await server.stop({ keepDir: true });
  server = await startServer({ ...env, dir, port, token });
  await waitConnected(page);
  // (Attempts made while the server was down count as connections too, without messages.)
  const again = await waitSent(6);
  assert.ok(again.socket > 1, 'on a new connection');
  assert.deepEqual({ ...again, socket: undefined }, { socket: undefined, project_id: projectId, request_id: undefined });
  // While the server was down Chromium logs each refused WebSocket attempt and /auth/check; nothing else.
  assert.deepEqual(errors.filter((e) => !/WebSocket connection to .* failed|Failed to load resource: net::ERR_CONNECTION_REFUSED/.test(e)), []);
});

test('the notifications panel at 390 px: the events to choose, and a push service out of reach said plainly', async (t) => {
  // A real profile: in an incognito-like context Chromium refuses push subscriptions at once.
  const b = await launchPersistent(PHONE);
  t.after(() => b.close());
  const origin = originOf(shared.server);
  await b.context.grantPermissions(['notifications'], { origin });
  await b.page.goto(consoleUrl(shared.server));
  await waitConnected(b.page);
  await activeWorker(b.page);
  await b.page.getByRole('button', { name: 'Notifications' }).click();
  const dialog = b.page.getByRole('dialog', { name: 'Notifications' });
  await dialog.waitFor();
  const state = dialog.locator('[data-testid=push-state]');
  await dialog.locator('[data-testid=push-state][data-state=off]').waitFor();
  assert.equal(await state.textContent(), 'This device receives no notifications.');
  const boxes = dialog.locator('input[name=event]');
  await boxes.first().waitFor();
  assert.deepEqual(await boxes.evaluateAll((els) => els.map((e) => e.value)), EVENTS);
  assert.ok(await boxes.evaluateAll((els) => els.every((e) => e.checked)), 'every event ticked to start');
  await dialog.getByLabel('A run finished').uncheck();

  // Subscribing waits for the browser's push service, which this machine cannot reach.
  await dialog.getByRole('button', { name: 'Turn on notifications' }).click();
  const problem = dialog.locator('[data-testid=push-problem][data-kind=push-service]');
  await problem.waitFor({ timeout: 60000 });
  assert.match(await problem.textContent(), /could not reach its push service \(no answer in 20 s\).*check the network/);
  assert.ok(await dialog.getByRole('button', { name: 'Turn on notifications' }).isEnabled(), 'it can be tried again');
  assert.equal(await dialog.getByLabel('A run finished').isChecked(), false, 'the choice is kept');
  assert.ok(await b.page.evaluate(() => Notification.permission === 'granted'));
  const fits = await dialog.evaluate((el) => el.scrollWidth <= el.clientWidth && el.getBoundingClientRect().right <= window.innerWidth);
  assert.ok(fits, 'the panel fits a 390 px screen');
  await screenshot(b.page, 'notify-settings-390');
  if (docsShots) {
    mkdirSync(docsShots, { recursive: true });
    await b.page.screenshot({ path: join(docsShots, 'notify-settings-390.png') });
  }
  assert.deepEqual(b.errors, []);
});

test('the notifications panel: notifications blocked in the browser, and where to allow them', async (t) => {
  const { page, context, errors } = await openPage(shared.browser, PHONE);
  t.after(() => context.close());
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await activeWorker(page);
  await page.getByRole('button', { name: 'Notifications' }).click();
  const dialog = page.getByRole('dialog', { name: 'Notifications' });
  // Headless Chromium answers the permission question "denied" (no one to ask).
  await dialog.getByRole('button', { name: 'Turn on notifications' }).click();
  const problem = dialog.locator('[data-testid=push-problem][data-kind=blocked]');
  await problem.waitFor();
  assert.match(await problem.textContent(), /^Notifications are blocked for this site in the browser\. Allow them in the site’s settings/);
  assert.equal(await dialog.locator('[data-testid=push-state]').getAttribute('data-state'), 'blocked');
  assert.deepEqual(errors, []);
});

test('the notifications panel in a private window: push is refused there, and what to do instead', async (t) => {
  // openPage's contexts are incognito-like, where Chromium refuses every push subscription.
  const { page, context, errors } = await openPage(shared.browser, PHONE);
  t.after(() => context.close());
  await context.grantPermissions(['notifications'], { origin: originOf(shared.server) });
  await page.goto(consoleUrl(shared.server));
  await waitConnected(page);
  await activeWorker(page);
  await page.getByRole('button', { name: 'Notifications' }).click();
  const dialog = page.getByRole('dialog', { name: 'Notifications' });
  await dialog.getByRole('button', { name: 'Turn on notifications' }).click();
  const problem = dialog.locator('[data-testid=push-problem][data-kind=refused]');
  await problem.waitFor();
  assert.match(await problem.textContent(), /^The browser refused a push subscription \(.+\)\. A private \(incognito\) window cannot receive notifications: open the console in a normal window/);
  assert.equal(await dialog.locator('[data-testid=push-state]').getAttribute('data-state'), 'off');
  // Chromium's own console message about it is the only error.
  assert.deepEqual(errors.filter((e) => !e.includes('does not support the Push API in incognito mode')), []);
});

// What PushSubscription.toJSON() gives: an endpoint and the device's keys (a P-256 public key
// and 16 secret bytes, base64url). The endpoint's host must be one of notify.push_service_hosts.
function fakeSubscription(endpoint) {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const jwk = publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x, 'base64url'), Buffer.from(jwk.y, 'base64url')]);
  return { endpoint, expirationTime: null, keys: { p256dh: point.toString('base64url'), auth: randomBytes(16).toString('base64url') } };
}

test('the notifications panel with a subscription: what this device receives, its events, a test, turning off', async (t) => {
  // The browser's side of a subscription needs a push service; a stand-in PushManager (kept in
  // localStorage across reloads) gives the page one, and the server takes its endpoint
  // (127.0.0.1 allowed as a push service; nothing listens there, so the test push is not
  // delivered, which the server only counts).
  const env = { serverBinary: requireEnv('PA_SERVER_BINARY'), fakeClaude: requireEnv('PA_FAKE_CLAUDE') };
  const server = await startServer({ ...env, extraArgs: ['--notify-push-service-hosts', '127.0.0.1'] });
  t.after(() => server.stop());
  const { page, context, errors } = await openPage(shared.browser, PHONE);
  t.after(() => context.close());
  await context.grantPermissions(['notifications'], { origin: originOf(server) });
  const subscription = fakeSubscription('https://127.0.0.1:9/push/device-1');
  await context.addInitScript((sub) => {
    const KEY = 'test.push-subscription';
    const stored = () => (localStorage.getItem(KEY) ? {
      endpoint: sub.endpoint,
      toJSON: () => sub,
      unsubscribe: async () => { localStorage.removeItem(KEY); return true; },
    } : null);
    PushManager.prototype.getSubscription = async () => stored();
    PushManager.prototype.subscribe = async (options) => {
      const key = new Uint8Array(options.applicationServerKey);
      if (key.length !== 65 || key[0] !== 4) throw new DOMException('bad applicationServerKey', 'InvalidAccessError');
      localStorage.setItem(KEY, '1');
      return stored();
    };
  }, subscription);
  // What the page sends about push, in order.
  const push = recordSent(page, (msg) => msg.type.startsWith('push_'));
  const sent = () => push.sent.map((m) => ({ type: m.type, data: m.data }));

  await page.goto(consoleUrl(server));
  await waitConnected(page);
  await activeWorker(page);
  await page.getByRole('button', { name: 'Notifications' }).click();
  const dialog = page.getByRole('dialog', { name: 'Notifications' });
  await dialog.locator('input[name=event]').first().waitFor();
  for (const label of ['A run finished', 'All queued follow-ups are done']) await dialog.getByLabel(label).uncheck();
  await dialog.getByRole('button', { name: 'Turn on notifications' }).click();
  await dialog.locator('[data-testid=push-state][data-state=on]').waitFor();
  assert.equal(await dialog.locator('[data-testid=push-done]').textContent(), 'Notifications are on for this device.');
  const chosen = EVENTS.filter((e) => e !== 'run_succeeded' && e !== 'queue_drained');
  const subscribe = sent().find((m) => m.type === 'push_subscribe');
  assert.deepEqual(subscribe.data, { subscription, events: chosen });
  assert.match(await dialog.locator('[data-testid=push-state]').textContent(),
    /^This device receives notifications since .+ for: A tool call waits for your permission; A run failed; A run timed out; /);

  // Another choice, saved: the server replaces the subscription's events.
  await dialog.getByLabel('A run finished').check();
  await dialog.getByRole('button', { name: 'Save choice' }).click();
  await dialog.locator('[data-testid=push-done]', { hasText: 'Saved.' }).waitFor();
  assert.match(await dialog.locator('[data-testid=push-state]').textContent(), /; A run finished; /);

  await dialog.getByRole('button', { name: 'Send a test' }).click();
  await dialog.locator('[data-testid=push-done]', { hasText: /^Test sent/ }).waitFor();
  assert.deepEqual(sent().at(-1), { type: 'push_test', data: { endpoint: subscription.endpoint } });

  // A new connection with a subscription says so at once (push_info with the endpoint), before
  // anyone opens the panel.
  await page.reload();
  await waitConnected(page);
  await push.waitFor((m) => m.socket === 2 && m.type === 'push_info' && m.data.endpoint === subscription.endpoint,
    'push_info with the endpoint after connecting');
  await page.getByRole('button', { name: 'Notifications' }).click();
  await dialog.locator('[data-testid=push-state][data-state=on]').waitFor();
  assert.ok(await dialog.getByLabel('A run finished').isChecked(), 'the events the server has');
  assert.equal(await dialog.getByLabel('All queued follow-ups are done').isChecked(), false);

  await dialog.getByRole('button', { name: 'Turn off' }).click();
  await dialog.locator('[data-testid=push-state][data-state=off]').waitFor();
  assert.equal(await dialog.locator('[data-testid=push-state]').textContent(), 'This device receives no notifications.');
  assert.deepEqual(sent().filter((m) => m.type === 'push_unsubscribe'), [{ type: 'push_unsubscribe', data: { endpoint: subscription.endpoint } }]);
  assert.equal(await page.evaluate(() => localStorage.getItem('test.push-subscription')), null, 'the browser unsubscribed too');
  assert.deepEqual(errors, []);
});
