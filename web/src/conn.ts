// One WebSocket to /ws with automatic reconnect (exponential backoff with jitter), requests
// matched to replies by request_id, and every incoming message handed to the listeners.
export interface Envelope {
  type: string;
  project_id?: string;
  data?: any;
  request_id?: string;
  seq?: number;
  timestamp?: string;
}

// Why the last attempt failed. A browser cannot read the status of a refused WebSocket upgrade,
// so after one the console asks POST /auth/check, which answers what the upgrade got.
export type Failure =
  | { kind: 'token' }                       // 401: not retried
  | { kind: 'revoked' }                     // closed with 4401: an admin revoked this device
  | { kind: 'origin'; origin: string }      // 403: not retried
  | { kind: 'locked'; waitSeconds: number } // 429 for wrong tokens: retried after the wait
  | { kind: 'busy'; message: string }       // 429 connection rate, 503 at limits
  | { kind: 'shutdown' }                    // 503 shutting down, or closed with 1001
  | { kind: 'unreachable'; offline?: boolean } // no answer at all (offline: the device says so)
  | { kind: 'lost' };                       // the connection dropped, or failed for no reason the check sees

export type Status =
  | { kind: 'connecting'; attempt: number }
  | { kind: 'open' }
  | { kind: 'waiting'; attempt: number; retryAt: number; failure: Failure }
  | { kind: 'refused'; failure: Failure }  // 401/403: retrying cannot help
  | { kind: 'stopped' };

export class RequestError extends Error {
  constructor(public readonly reply: Envelope) {
    super(reply.data?.message ?? 'request failed');
  }
  get code(): string {
    return this.reply.data?.code ?? '';
  }
}

interface Pending {
  resolve: (m: Envelope) => void;
  reject: (e: Error) => void;
}

// welcome's role and allowed_messages (docs/protocol.md, Devices and roles). A server from before
// roles sends neither: everything is offered, as before.
export interface Welcome {
  role: string | null;
  deviceId: string | null;    // null: the master token
  deviceName: string | null;
  allowed: Set<string> | null;  // null: not said, so not limited
  messageSize: number | null;    // welcome.limits.message_size: a larger message closes the socket
}

function readWelcome(data: any): Welcome {
  const allowed = Array.isArray(data?.allowed_messages)
    ? new Set<string>(data.allowed_messages.filter((t: unknown) => typeof t === 'string'))
    : null;
  return {
    role: typeof data?.role === 'string' ? data.role : null,
    deviceId: typeof data?.device?.device_id === 'string' ? data.device.device_id : null,
    deviceName: typeof data?.device?.name === 'string' ? data.device.name : null,
    allowed,
    messageSize: typeof data?.limits?.message_size === 'number' ? data.limits.message_size : null,
  };
}

// The server closes every connection of a revoked device with this code.
const REVOKED_CLOSE_CODE = 4401;

const MIN_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;

export class Connection {
  private ws: WebSocket | null = null;
  private pending = new Map<string, Pending>();
  private nextId = 1;
  private attempt = 0;
  private timer: number | undefined;
  private stopped = true;
  status: Status = { kind: 'stopped' };
  readonly onMessage = new Set<(m: Envelope) => void>();
  readonly onStatus = new Set<(s: Status) => void>();
  // Called after every (re)connect, before queued user actions: re-join, catch up.
  readonly onOpen = new Set<() => void>();
  // What the server's welcome said this connection is: its role and the messages it may send.
  welcome: Welcome | null = null;
  readonly onWelcome = new Set<(w: Welcome) => void>();

  constructor(private token: string, private clientName: string) {
    window.addEventListener('online', () => this.retryNow());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible') this.retryNow();
    });
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
    this.ws?.close(1000);
    this.ws = null;
    this.setStatus({ kind: 'stopped' });
  }

  // While waiting to reconnect: try at once (the network came back, the tab became visible).
  retryNow(): void {
    if (this.stopped || this.status.kind !== 'waiting') return;
    window.clearTimeout(this.timer);
    this.open();
  }

  // May this connection send `type`? True until the welcome says otherwise.
  may(type: string): boolean {
    return this.welcome?.allowed?.has(type) ?? true;
  }

  get isOpen(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  request(type: string, projectId?: string, data?: object): Promise<Envelope> {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error('not connected'));
    }
    const requestId = `c${this.nextId++}`;
    const msg: Envelope = { type, request_id: requestId };
    if (projectId) msg.project_id = projectId;
    if (data) msg.data = data;
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { resolve, reject });
      this.ws!.send(JSON.stringify(msg));
    });
  }

  // A message with no reply on success (client_focus): no request_id, so nothing waits for an
  // answer that never comes. False when not connected (the caller sends it again on open).
  send(type: string, data: object): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ type, data }));
    return true;
  }

  private open(): void {
    this.attempt++;
    this.setStatus({ kind: 'connecting', attempt: this.attempt });
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${location.host}/ws?token=${encodeURIComponent(this.token)}` +
      `&client_name=${encodeURIComponent(this.clientName)}`;
    const ws = new WebSocket(url);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      opened = true;
      this.attempt = 0;
      // First on every connection: declaring "permissions" is what makes the server ask this
      // console about tool calls (docs/protocol.md, Handshake).
      this.request('hello', undefined, {
        protocol: 1,
        capabilities: ['permissions', 'queue', 'interrupt'],
      }).then((reply) => {
        if (this.ws !== ws) return;
        this.welcome = readWelcome(reply.data);
        for (const f of this.onWelcome) f(this.welcome);
      }).catch(() => {});
      this.setStatus({ kind: 'open' });
      for (const f of this.onOpen) f();
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws || typeof ev.data !== 'string') return;
      let msg: Envelope;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.dispatch(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const lost = new Error('connection lost');
      for (const p of this.pending.values()) p.reject(lost);
      this.pending.clear();
      if (this.stopped) return;
      if (opened && ev.code === REVOKED_CLOSE_CODE) {
        this.stopped = true;
        this.setStatus({ kind: 'refused', failure: { kind: 'revoked' } });
        return;
      }
      if (opened) {
        this.retry(ev.code === 1001 ? { kind: 'shutdown' } : { kind: 'lost' });
        return;
      }
      void this.diagnose().then((failure) => {
        if (this.stopped || this.ws) return;
        if (failure.kind === 'token' || failure.kind === 'origin') {
          this.stopped = true;
          this.setStatus({ kind: 'refused', failure });
        } else {
          this.retry(failure);
        }
      });
    };
  }

  private retry(failure: Failure): void {
    const base = Math.min(MAX_DELAY_MS, MIN_DELAY_MS * 2 ** Math.max(0, this.attempt - 1));
    let delay = Math.round(base * (0.8 + Math.random() * 0.4));
    if (failure.kind === 'locked') delay = Math.max(delay, failure.waitSeconds * 1000);
    this.setStatus({ kind: 'waiting', attempt: this.attempt, retryAt: Date.now() + delay, failure });
    this.timer = window.setTimeout(() => this.open(), delay);
  }

  // Why did the upgrade fail? POST (not GET) so that the browser sends its Origin, which the
  // server checks as it did for the upgrade; the same wrong token is not counted twice.
  private async diagnose(): Promise<Failure> {
    // The browser knows it has no network: nothing to ask (the `online` event retries).
    if (!navigator.onLine) return { kind: 'unreachable', offline: true };
    let res: Response;
    try {
      res = await fetch('/auth/check', {
        method: 'POST', cache: 'no-store', credentials: 'omit',
        headers: { Authorization: `Bearer ${this.token}` },
      });
    } catch {
      return { kind: 'unreachable' };
    }
    const message = await res.json().then((b) => String(b?.error ?? ''), () => '');
    switch (res.status) {
      case 401: return { kind: 'token' };
      case 403: return { kind: 'origin', origin: location.origin };
      case 429:
        if (message.startsWith('too many wrong tokens')) {
          return { kind: 'locked', waitSeconds: Math.max(1, Number(res.headers.get('Retry-After')) || 60) };
        }
        return { kind: 'busy', message };
      case 503:
        return message.includes('shutting down') ? { kind: 'shutdown' } : { kind: 'busy', message };
      default:
        return { kind: 'lost' };
    }
  }

  private dispatch(msg: Envelope): void {
    // Listeners first: a reply may also be a broadcast the views must see (project_state).
    for (const f of this.onMessage) f(msg);
    const id = msg.request_id;
    if (id && this.pending.has(id)) {
      const p = this.pending.get(id)!;
      this.pending.delete(id);
      if (msg.type === 'error') p.reject(new RequestError(msg));
      else p.resolve(msg);
    }
  }

  private setStatus(s: Status): void {
    this.status = s;
    for (const f of this.onStatus) f(s);
  }
}
