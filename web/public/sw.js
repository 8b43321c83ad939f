// @ts-check
/// <reference lib="webworker" />
// The console's service worker (scope /): it shows the server's Web Push notifications and opens
// the console where a tapped one points. Nothing is cached: the console needs the server anyway,
// so there is no fetch handler and every request goes to the network as without a worker.
// Plain JavaScript in web/public so that it is served at /sw.js (a worker's scope cannot be
// above its own path); type-checked with tsconfig.sw.json. The payload: docs/protocol.md,
// "Notifications".

const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));

const MAX_TITLE = 200;
const MAX_BODY = 1000;
const MAX_TAG = 300;

/**
 * @typedef {object} Payload
 * @property {string} event
 * @property {string} title
 * @property {string} body
 * @property {string} tag
 * @property {string} url
 * @property {string} projectId
 */

// Active at once, also for pages opened before this worker was installed: a push needs no page.
sw.addEventListener('install', () => void sw.skipWaiting());
sw.addEventListener('activate', (event) => event.waitUntil(sw.clients.claim()));

sw.addEventListener('push', (event) => event.waitUntil(onPush(event.data)));

sw.addEventListener('notificationclick', (event) => {
  event.notification.close();
  event.waitUntil(openConsole(event.notification.data?.url));
});

/**
 * A string field of the payload, cut to `max` characters; '' when absent or not a string.
 * @param {Record<string, unknown>} p
 * @param {string} key
 * @param {number} max
 */
function text(p, key, max) {
  const v = p[key];
  return typeof v === 'string' ? v.slice(0, max) : '';
}

/**
 * The payload's fields, each checked (the push service only relays what the server encrypted, but
 * a worker trusts nothing it parses). `null` when it is not a JSON object.
 * @param {PushMessageData | null} data
 * @returns {Payload | null}
 */
function parsePayload(data) {
  let p;
  try {
    p = data?.json();
  } catch {
    return null;
  }
  if (!p || typeof p !== 'object' || Array.isArray(p)) return null;
  return {
    event: text(p, 'event', 64),
    title: text(p, 'title', MAX_TITLE),
    body: text(p, 'body', MAX_BODY),
    tag: text(p, 'tag', MAX_TAG),
    url: consoleUrl(p.url),
    projectId: text(p, 'project_id', 200),
  };
}

/**
 * Where a notification leads: an http(s) URL (relative ones against this worker's scope, so
 * "/#/p/<id>" works); anything else (javascript:, data:, garbage) is the console's start page.
 * @param {unknown} url
 */
function consoleUrl(url) {
  const scope = sw.registration.scope;
  if (typeof url !== 'string' || url.length > 2048) return scope;
  try {
    const u = new URL(url, scope);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : scope;
  } catch {
    return scope;
  }
}

/** @param {PushMessageData | null} data */
async function onPush(data) {
  const p = parsePayload(data);
  if (p && p.event === 'permission_resolved') {
    // Answered or expired elsewhere: withdraw the request's notification, show nothing.
    if (p.tag) for (const n of await sw.registration.getNotifications({ tag: p.tag })) n.close();
    return;
  }
  // Every other push shows something (browsers require it of a push subscription); one that
  // cannot be read still leads to the console.
  const title = p?.title || 'Pocket Agent';
  /** @type {NotificationOptions & { renotify?: boolean }} */
  const options = {
    body: p ? p.body : 'Something happened on the server. Open the console to see it.',
    icon: '/icons/icon-192.png',
    badge: '/icons/badge-96.png',
    data: { url: p ? p.url : sw.registration.scope, event: p?.event ?? '', project_id: p?.projectId ?? '' },
    // A permission request waits for an answer: it stays until tapped or withdrawn.
    requireInteraction: p?.event === 'permission_request',
  };
  if (p?.tag) {
    options.tag = p.tag;
    options.renotify = true;  // a replaced notification (same tag) alerts again
  }
  await sw.registration.showNotification(title, options);
}

/**
 * A tapped notification: the console's window at `url`. An open console window of the same origin
 * is told to show it (a hash change: no reload, its connection stays) and focused; without one, a
 * new window opens there.
 * @param {unknown} url
 */
async function openConsole(url) {
  const target = consoleUrl(url);
  const origin = new URL(target).origin;
  const windows = await sw.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const mine = windows.filter((c) => new URL(c.url).origin === origin);
  const client = mine.find((c) => c.focused) ?? mine[0];
  if (!client) {
    await sw.clients.openWindow(target);
    return;
  }
  client.postMessage({ type: 'open', url: target });
  await client.focus();
}
