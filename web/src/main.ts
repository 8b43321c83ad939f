// Entry point: token handling (also a pairing link's `?pair=<code>`: redeemed for this device's
// own token), the header with the connection status, the role, the server panel, the
// notifications and devices panels, and hash routing between the project list (#/), a project (#/p/<id>) and
// a permission card of a project (#/p/<id>/permission/<permission_id>, a notification's link).
import './style.css';
import { followAccess } from './access';
import { Connection, Failure } from './conn';
import { DevicesPanel } from './devices';
import { h, clear } from './dom';
import { FocusReporter } from './focus';
import { redeemPairing, takePairCode } from './pairing';
import { ProjectsView } from './projects';
import { ProjectView } from './project';
import { SearchView } from './search';
import { PushClient } from './push';
import { registerServiceWorker } from './pwa';
import { NotificationSettings } from './settings';
import { StatusPanel } from './status';
import { askOtherTabs, answerOtherTabs } from './tabs';

const TOKEN_KEY = 'pocket-agent.token';
const CLIENT_NAME = 'web-console';

// The token lives in sessionStorage (this tab only, gone when it closes) unless the person asks
// to remember it on this device (localStorage). It is taken out of the address bar at once so it
// does not stay in history or bookmarks.
function takeToken(): string | null {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    url.searchParams.delete('token');
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    if (localStorage.getItem(TOKEN_KEY) !== null) localStorage.setItem(TOKEN_KEY, fromUrl);
    return fromUrl;
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? localStorage.getItem(TOKEN_KEY);
}

function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
}

const app = document.getElementById('app')!;

// A part of the hash, %-decoded; a malformed one ("%E0%A4%A") names nothing (the project list).
function decodeHashPart(part: string): string | null {
  try {
    return decodeURIComponent(part);
  } catch {
    return null;
  }
}

// The view a tapped notification asks for: its hash, routed again when it is already shown (the
// same permission card, scrolled to once more). Set by start(); before it, the hash is enough.
let showView = (hash: string) => {
  if (location.hash !== hash) location.hash = hash;
};
registerServiceWorker((hash) => showView(hash));

function showLogin(message?: string): void {
  clear(app);
  const input = h('input', { id: 'token', type: 'password', name: 'token', required: true, autocomplete: 'current-password', class: 'mono' });
  const remember = h('input', { id: 'remember', type: 'checkbox' });
  const form = h('form', { class: 'login' },
    h('h1', null, 'Pocket Agent'),
    h('p', null, 'Enter the server token (`make run` prints a link with it; `pocket-agent-server token` prints it), ' +
      'or open a pairing link from an admin (`pocket-agent-server pair`, or Devices → Add a device).'),
    message && h('div', { class: 'notice', role: 'alert' }, message),
    h('label', { for: 'token' }, 'Token'), input,
    h('label', { class: 'toggle' }, remember, ' Remember on this device'),
    h('button', { type: 'submit', class: 'primary' }, 'Connect'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    if (remember.checked) localStorage.setItem(TOKEN_KEY, token);
    start(token);
  });
  app.append(h('main', { class: 'center' }, form));
  input.focus();
}

function start(token: string): void {
  clear(app);
  const conn = new Connection(token, CLIENT_NAME);
  const status = new StatusPanel(conn);
  const focus = new FocusReporter(conn);
  const push = new PushClient(conn);
  const settings = new NotificationSettings(push, () => localStorage.getItem(TOKEN_KEY) !== null);
  const devices = new DevicesPanel(conn);
  const stopAccess = followAccess(conn);
  // Who this console is, once the server said: the role, and the device's name when paired.
  const who = h('span', { class: 'badge role-badge', hidden: true, 'data-testid': 'role' });
  conn.onWelcome.add((w) => {
    who.hidden = w.role === null;
    who.textContent = w.deviceName ? `${w.deviceName} · ${w.role}` : `${w.role}`;
  });
  const signOut = h('button', { type: 'button', class: 'small' }, 'Sign out');
  const main = h('main', { id: 'main' });
  const hint = h('div', { class: 'notice', role: 'alert', hidden: true, 'data-testid': 'conn-failure' });
  app.append(
    h('header', { class: 'top' }, h('a', { href: '#', class: 'brand' }, 'Pocket Agent'), status.pill, status.panel,
      who, devices.button, settings.button, signOut),
    hint, main, settings.el, devices.el);

  const projects = new ProjectsView(conn, (id) => { location.hash = `#/p/${encodeURIComponent(id)}`; });
  // Search over all history, above the project list; a hit opens #/p/<id>/seq/<seq>.
  projects.el.prepend(new SearchView(conn, (id) => projects.pathOf(id)).el);
  let view: ProjectView | null = null;
  let refreshTimer: number | undefined;
  let countdown: number | undefined;

  const stopAnswering = answerOtherTabs(token, () => conn.isOpen);
  const stop = (message?: string) => {
    window.clearInterval(countdown);
    stopAnswering();
    conn.stop();
    status.destroy();
    focus.destroy();
    push.destroy();
    devices.destroy();
    stopAccess();
    forgetToken();
    showLogin(message);
  };
  signOut.addEventListener('click', () => stop());

  // Each failure in its own words, with the step that helps.
  const showFailure = (failure: Failure | null, retryAt?: number) => {
    clear(hint);
    window.clearInterval(countdown);
    hint.hidden = failure === null;
    if (!failure) return;
    hint.dataset.failure = failure.kind;
    // The seconds until the next attempt, counted down.
    const seconds = () => `${Math.max(1, Math.round(((retryAt ?? 0) - Date.now()) / 1000))} s`;
    const wait = h('span', { 'data-testid': 'retry-wait' }, seconds());
    if (retryAt) countdown = window.setInterval(() => { wait.textContent = seconds(); }, 1000);
    const button = (label: string, onClick: () => void) => {
      const b = h('button', { type: 'button', class: 'small' }, label);
      b.addEventListener('click', onClick);
      return b;
    };
    const retryNow = button('Retry now', () => conn.retryNow());
    const newToken = button('Enter the token again', () => stop());
    switch (failure.kind) {
      case 'origin':
        hint.append(h('strong', null, 'Origin not allowed. '),
          `The server does not accept connections from pages at ${failure.origin}. `,
          `Add ${failure.origin} to auth.allowed_origins in the server's configuration (or open the console `,
          'at the address the server itself answers on), restart the server, then ',
          button('Retry', () => { conn.start(); }));
        break;
      case 'locked':
        hint.append(h('strong', null, 'Too many wrong tokens. '),
          'The server refuses wrong tokens from this address for a while; the right token is still accepted. Retrying in ', wait, '. ',
          newToken);
        break;
      case 'unreachable':
        hint.append(h('strong', null, 'Server unreachable. '),
          failure.offline ? 'This device is offline; retrying when the network is back (or in '
            : `No answer from ${location.host}: is the server running, and can this device reach it? Retrying in `,
          wait, failure.offline ? '). ' : '. ',
          retryNow);
        break;
      case 'shutdown':
        hint.append(h('strong', null, 'Server shutting down. '),
          'The server is stopping (or restarting). Retrying in ', wait, '. ', retryNow);
        break;
      case 'busy':
        hint.append(h('strong', null, 'Server busy. '), `${failure.message || 'The server refused the connection for now'}. Retrying in `, wait, '. ', retryNow);
        break;
      case 'lost':
        hint.append(h('strong', null, 'Connection lost. '), 'Retrying in ', wait, '. ', retryNow);
        break;
      case 'token':
      case 'revoked':
        break;  // the login form says it
    }
  };

  const route = () => {
    const m = /^#\/p\/([^/]+)(?:\/permission\/([^/]+)|\/seq\/(\d{1,15}))?$/.exec(location.hash);
    const id = m ? decodeHashPart(m[1]) : null;
    const permissionId = m?.[2] ? decodeHashPart(m[2]) : null;
    const seq = m?.[3] ? Number(m[3]) : null;  // a search hit's entry
    focus.set(id);
    if (!view || view.projectId !== id) {
      view?.destroy();
      view = null;
      clear(main);
      if (id) {
        view = new ProjectView(conn, id, projects.nodeOf(id));
        main.append(view.el);
        if (conn.isOpen) void view.join();
        if (!permissionId && seq === null) view.focus();  // a card or hit to see: no keyboard over it
      } else {
        main.append(projects.el);
        void projects.refresh();
      }
    }
    if (view && permissionId) view.showPermission(permissionId);
    if (view && seq !== null) view.showSeq(seq);
  };
  window.addEventListener('hashchange', route);
  showView = (hash) => {
    if (location.hash === hash) route();
    else location.hash = hash;
  };

  conn.onStatus.add((s) => {
    if (s.kind === 'refused' && s.failure.kind === 'token') {
      stop('The server refused this token: it is wrong, or it was changed (or this device was revoked). ' +
        'Enter it again (`pocket-agent-server token` prints it), or ask an admin for a new pairing link.');
    } else if (s.kind === 'refused' && s.failure.kind === 'revoked') {
      stop('An admin revoked this device: its token no longer works. Ask an admin for a new pairing link.');
    } else if (s.kind === 'refused' || s.kind === 'waiting') {
      showFailure(s.failure, s.kind === 'waiting' ? s.retryAt : undefined);
    } else if (s.kind === 'open') {
      showFailure(null);
    }
  });
  conn.onOpen.add(() => {
    if (view) void view.join();
    else void projects.refresh();
  });
  conn.onMessage.add((msg) => {
    if (view && msg.project_id === view.projectId) {
      if (msg.type === 'project_deleted') {
        location.hash = '#/';
        return;
      }
      view.handle(msg);
    } else if (!view && (msg.type === 'project_state' || msg.type === 'project_deleted')) {
      window.clearTimeout(refreshTimer);
      refreshTimer = window.setTimeout(() => void projects.refresh(), 200);
    }
  });
  route();
  conn.start();
}

// A pairing link first (it makes this device's token), then this tab's token; with neither,
// another open tab of the console may share its own (same origin only).
const pairCode = takePairCode();
const token = takeToken();
if (pairCode) {
  clear(app);
  app.append(h('main', { class: 'center' }, h('p', { role: 'status', 'data-testid': 'pairing-status' }, 'Pairing this device…')));
  void redeemPairing(pairCode).then((paired) => {
    // The device's own token: kept on this device (it is what this device is), in this origin's storage.
    sessionStorage.setItem(TOKEN_KEY, paired.token);
    localStorage.setItem(TOKEN_KEY, paired.token);
    start(paired.token);
  }, (e: Error) => showLogin(e.message));
} else if (token) {
  start(token);
} else {
  void askOtherTabs().then((shared) => {
    if (shared) {
      sessionStorage.setItem(TOKEN_KEY, shared);
      start(shared);
    } else {
      showLogin();
    }
  });
}
