// The console as an installable app: registers the service worker (public/sw.js, which shows the
// Web Push notifications) and follows its "open" messages, sent when a notification is tapped
// while a console window is open (the window shows the notification's view without a reload).

export type WorkerState =
  | { kind: 'unsupported'; secure: boolean }  // no service workers here (secure: isSecureContext)
  | { kind: 'pending' }
  | { kind: 'ready'; registration: ServiceWorkerRegistration }
  | { kind: 'failed'; message: string };    // e.g. an https origin whose certificate is not trusted

let state: WorkerState = { kind: 'pending' };
const listeners = new Set<(s: WorkerState) => void>();

export function workerState(): WorkerState {
  return state;
}

export function onWorkerState(f: (s: WorkerState) => void): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}

function setState(s: WorkerState): void {
  state = s;
  for (const f of listeners) f(s);
}

// Called once at start-up, with or without a token: the worker needs no server connection.
// `show(hash)`: a tapped notification's view (its URL's hash, e.g. "#/p/<id>/permission/<rid>").
export function registerServiceWorker(show: (hash: string) => void): void {
  if (!('serviceWorker' in navigator)) {
    // Browsers hide the API outside secure contexts (plain http to anything but localhost).
    setState({ kind: 'unsupported', secure: window.isSecureContext });
    return;
  }
  navigator.serviceWorker.addEventListener('message', (e: MessageEvent) => {
    const d = e.data;
    if (d && typeof d === 'object' && d.type === 'open' && typeof d.url === 'string') openHere(d.url, show);
  });
  navigator.serviceWorker.startMessages();
  navigator.serviceWorker.register('/sw.js', { scope: '/' }).then(
    (registration) => setState({ kind: 'ready', registration }),
    (e: unknown) => setState({ kind: 'failed', message: e instanceof Error ? e.message : String(e) }));
}

// A console URL of this origin: its view (the hash), shown in this window.
function openHere(url: string, show: (hash: string) => void): void {
  let u: URL;
  try {
    u = new URL(url, location.href);
  } catch {
    return;
  }
  if (u.origin === location.origin) show(u.hash);
}
