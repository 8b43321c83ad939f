// This device's Web Push subscription, in the browser (PushManager) and on the server
// (push_info, push_subscribe, push_unsubscribe, push_test; docs/protocol.md). Every failure is a
// PushProblem whose text says what went wrong and what to do next.
import { Connection, RequestError } from './conn';
import { onWorkerState, workerState } from './pwa';

export interface ServerSubscription {
  endpoint: string;
  events: string[];
  created_at: string;
}

export interface PushInfo {
  vapidPublicKey: string;
  events: string[];                       // every event a subscription may receive
  subscription: ServerSubscription | null; // what the server has for this browser's endpoint
}

export type ProblemKind =
  | 'insecure' | 'unsupported' | 'worker' | 'blocked' | 'dismissed' | 'refused' | 'push-service' | 'server' | 'offline';

export class PushProblem extends Error {
  constructor(readonly kind: ProblemKind, message: string) {
    super(message);
  }
}

const README_PHONE = 'README, “Use the console from your phone”';

// pushManager.subscribe of a browser that cannot reach its push service (no internet, a
// firewall) never settles; a reachable one answers in a second or two.
const SUBSCRIBE_TIMEOUT_MS = 20000;

export class PushClient {
  info: PushInfo | null = null;
  readonly onChange = new Set<() => void>();
  private onOpen = () => void this.announce();
  private stopWatching: () => void;

  constructor(private conn: Connection) {
    // After every (re)connect, a browser that has a subscription says so: it ties this connection
    // to it (the server then spares this device what it has on screen) and the panel learns what
    // the device receives. The worker may be ready only after the connection.
    conn.onOpen.add(this.onOpen);
    this.stopWatching = onWorkerState((s) => { if (s.kind === 'ready' && conn.isOpen) void this.announce(); });
  }

  destroy(): void {
    this.conn.onOpen.delete(this.onOpen);
    this.stopWatching();
  }

  // Why this browser cannot have a subscription at all; null when it can.
  unavailable(): PushProblem | null {
    const w = workerState();
    if (!window.isSecureContext || (w.kind === 'unsupported' && !w.secure)) {
      return new PushProblem('insecure', 'This page is not a secure context, so the browser offers no ' +
        'notifications: open the console over https with a certificate this device trusts ' +
        `(${README_PHONE}).`);
    }
    if (w.kind === 'unsupported' || !('PushManager' in window) || !('Notification' in window)) {
      return new PushProblem('unsupported', 'This browser cannot receive Web Push notifications. On an ' +
        'iPhone or iPad (iOS 16.4 or later), add the console to the home screen first (Share → Add to ' +
        'Home Screen) and open it from there.');
    }
    if (w.kind === 'failed') {
      return new PushProblem('worker', `The console's service worker could not be installed (${w.message}). ` +
        'Browsers refuse service workers on a page whose certificate they do not trust: install the ' +
        `local CA on this device (${README_PHONE}), then reload the page.`);
    }
    if (Notification.permission === 'denied') return blocked();
    return null;
  }

  // The browser's subscription of this console, if any.
  async browserSubscription(): Promise<PushSubscription | null> {
    const w = workerState();
    if (w.kind !== 'ready' || !('pushManager' in w.registration)) return null;
    return w.registration.pushManager.getSubscription();
  }

  // push_info, with this browser's endpoint when it has one.
  async refresh(): Promise<PushInfo> {
    const sub = await this.browserSubscription().catch(() => null);
    const r = await this.ask('push_info', sub ? { endpoint: sub.endpoint } : {});
    const d = r.data ?? {};
    this.info = {
      vapidPublicKey: typeof d.vapid_public_key === 'string' ? d.vapid_public_key : '',
      events: strings(d.events),
      subscription: parseSubscription(d.subscription),
    };
    this.changed();
    return this.info;
  }

  // Asks for the permission (this must run from a click), subscribes this browser and the server.
  async subscribe(events: string[]): Promise<void> {
    const problem = this.unavailable();
    if (problem) throw problem;
    const permission = await Notification.requestPermission();
    if (permission === 'denied') throw blocked();
    if (permission !== 'granted') {
      throw new PushProblem('dismissed', 'The browser’s question was closed without an answer: ' +
        'click “Turn on notifications” again and choose Allow.');
    }
    const info = await this.refresh();
    const key = decodeKey(info.vapidPublicKey);
    const w = workerState();
    if (w.kind !== 'ready') throw this.unavailable() ?? workerNotReady();
    const sub = await subscribeBrowser(w.registration.pushManager, key);
    try {
      await this.ask('push_subscribe', { subscription: sub.toJSON(), events });
    } catch (e) {
      // The server does not have it: nor should the browser (the next attempt starts clean).
      await sub.unsubscribe().catch(() => false);
      throw e;
    }
    await this.refresh();
  }

  // A new choice of events for this device's subscription (the server replaces it).
  async saveEvents(events: string[]): Promise<void> {
    const sub = await this.requireSubscription();
    await this.ask('push_subscribe', { subscription: sub.toJSON(), events });
    await this.refresh();
  }

  async unsubscribe(): Promise<void> {
    const sub = await this.browserSubscription();
    if (sub) {
      await this.ask('push_unsubscribe', { endpoint: sub.endpoint });
      await sub.unsubscribe();
    }
    await this.refresh();
  }

  async test(): Promise<void> {
    const sub = await this.requireSubscription();
    await this.ask('push_test', { endpoint: sub.endpoint });
  }

  private async announce(): Promise<void> {
    const sub = await this.browserSubscription().catch(() => null);
    if (!sub || !this.conn.isOpen) return;
    await this.refresh().catch(() => {});  // the panel asks again (and shows why) when opened
  }

  private async requireSubscription(): Promise<PushSubscription> {
    const sub = await this.browserSubscription();
    if (!sub) throw new PushProblem('push-service', 'This device has no subscription: turn notifications on first.');
    return sub;
  }

  private async ask(type: string, data: object) {
    if (!this.conn.isOpen) {
      throw new PushProblem('offline', 'Not connected to the server: try again once the console is connected.');
    }
    try {
      return await this.conn.request(type, undefined, data);
    } catch (e) {
      if (e instanceof RequestError) {
        throw new PushProblem('server', `The server refused ${type}: ${e.code} ${e.message}`);
      }
      throw new PushProblem('offline', 'The connection to the server was lost: try again once the console is connected.');
    }
  }

  private changed(): void {
    for (const f of this.onChange) f();
  }
}

function blocked(): PushProblem {
  return new PushProblem('blocked', 'Notifications are blocked for this site in the browser. Allow them ' +
    'in the site’s settings (the icon left of the address, or the browser’s settings → Notifications), ' +
    'then try again.');
}

function workerNotReady(): PushProblem {
  return new PushProblem('worker', 'The console’s service worker is still being installed: try again in a moment.');
}

// pushManager.subscribe, its failures in words. A subscription made for another server key (the
// server's data directory was reset) is replaced.
async function subscribeBrowser(pm: PushManager, key: Uint8Array<ArrayBuffer>): Promise<PushSubscription> {
  const options: PushSubscriptionOptionsInit = { userVisibleOnly: true, applicationServerKey: key };
  const attempt = () => withTimeout(pm.subscribe(options), SUBSCRIBE_TIMEOUT_MS);
  try {
    return await attempt();
  } catch (e) {
    if (e instanceof DOMException && e.name === 'InvalidStateError') {
      await (await pm.getSubscription())?.unsubscribe();
      return attempt().catch((again: unknown) => { throw subscribeProblem(again); });
    }
    throw subscribeProblem(e);
  }
}

function subscribeProblem(e: unknown): PushProblem {
  if (e instanceof DOMException && e.name === 'NotAllowedError') return blocked();
  const why = e instanceof Error ? e.message : String(e);
  if (/permission denied/i.test(why)) {
    // Chromium's answer in a private (incognito) window, where push is never allowed.
    return new PushProblem('refused', `The browser refused a push subscription (${why}). A private ` +
      '(incognito) window cannot receive notifications: open the console in a normal window, or install ' +
      'it on the home screen, and try again.');
  }
  return new PushProblem('push-service', `The browser could not reach its push service (${why}). ` +
    'Notifications travel through the browser maker’s push service (Google’s for Chrome, Mozilla’s ' +
    'for Firefox, Apple’s for Safari), so this device needs internet access to it: check the network ' +
    '(a firewall or a private network without internet blocks it), then try again.');
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = window.setTimeout(() => reject(new Error(`no answer in ${ms / 1000} s`)), ms);
    p.then((v) => { window.clearTimeout(timer); resolve(v); },
      (e: unknown) => { window.clearTimeout(timer); reject(e); });
  });
}

// The server's VAPID key (base64url of the 65-byte uncompressed P-256 point) as the bytes
// pushManager.subscribe takes.
function decodeKey(b64url: string): Uint8Array<ArrayBuffer> {
  let bytes: Uint8Array<ArrayBuffer> | null = null;
  if (/^[A-Za-z0-9_-]+$/.test(b64url)) {
    const bin = atob(b64url.replace(/-/g, '+').replace(/_/g, '/'));
    bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }
  if (!bytes || bytes.length !== 65 || bytes[0] !== 4) {
    throw new PushProblem('server', 'The server sent no usable push key (vapid_public_key): check its log.');
  }
  return bytes;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function parseSubscription(v: any): ServerSubscription | null {
  if (!v || typeof v !== 'object' || typeof v.endpoint !== 'string') return null;
  return { endpoint: v.endpoint, events: strings(v.events), created_at: typeof v.created_at === 'string' ? v.created_at : '' };
}
