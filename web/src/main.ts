// Entry point: token handling, the header with the connection status and the server panel, and
// hash routing between the project list (#/) and a project (#/p/<id>).
import './style.css';
import { Connection } from './conn';
import { h, clear } from './dom';
import { ProjectsView } from './projects';
import { ProjectView } from './project';
import { StatusPanel } from './status';

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

function showLogin(message?: string): void {
  clear(app);
  const input = h('input', { id: 'token', type: 'password', name: 'token', required: true, autocomplete: 'current-password', class: 'mono' });
  const remember = h('input', { id: 'remember', type: 'checkbox' });
  const form = h('form', { class: 'login' },
    h('h1', null, 'Pocket Agent'),
    h('p', null, 'Enter the server token (`make run` prints a link with it; `pocket-agent-server token` prints it).'),
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
  const signOut = h('button', { type: 'button', class: 'small' }, 'Sign out');
  const main = h('main', { id: 'main' });
  const hint = h('div', { class: 'notice', role: 'alert', hidden: true },
    'Cannot reach the server. It may be down, or the token may be wrong. ');
  const changeToken = h('button', { type: 'button', class: 'small' }, 'Enter another token');
  hint.append(changeToken);
  app.append(
    h('header', { class: 'top' }, h('a', { href: '#', class: 'brand' }, 'Pocket Agent'), status.pill, status.panel, signOut),
    hint, main);

  const projects = new ProjectsView(conn, (id) => { location.hash = `#/p/${encodeURIComponent(id)}`; });
  let view: ProjectView | null = null;
  let everOpened = false;
  let refreshTimer: number | undefined;

  const stop = (message?: string) => {
    conn.stop();
    status.destroy();
    forgetToken();
    showLogin(message);
  };
  signOut.addEventListener('click', () => stop());
  changeToken.addEventListener('click', () => stop());

  const route = () => {
    const m = /^#\/p\/([^/]+)$/.exec(location.hash);
    const id = m ? decodeURIComponent(m[1]) : null;
    if (view && view.projectId === id) return;
    view?.destroy();
    view = null;
    clear(main);
    if (id) {
      view = new ProjectView(conn, id);
      main.append(view.el);
      if (conn.isOpen) void view.join();
      view.focus();
    } else {
      main.append(projects.el);
      void projects.refresh();
    }
  };
  window.addEventListener('hashchange', route);

  conn.onStatus.add((s) => {
    if (s.kind === 'open') everOpened = true;
    hint.hidden = everOpened || !(s.kind === 'waiting' && s.attempt >= 2);
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

const token = takeToken();
if (token) start(token);
else showLogin();
