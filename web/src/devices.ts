// The devices panel (header → "Devices", for a role that may list devices: admin): the paired
// devices with their role and when they were last seen, rename, revoke (a confirming second
// click), and "Add device": a one-time pairing code (device_pair) shown as a QR code to scan with
// the new device's camera, its link and the code itself, until it is used or expires.
import { Connection, RequestError } from './conn';
import { append, clear, h } from './dom';

const ROLES: [string, string][] = [
  ['viewer', 'Viewer: watches'],
  ['operator', 'Operator: runs prompts'],
  ['approver', 'Approver: answers tool permissions'],
  ['admin', 'Admin: everything'],
];

interface Device {
  device_id: string;
  name: string;
  role: string;
  created_at: string;
  last_seen_at: string | null;
}

interface Pairing {
  code: string;
  url: string;
  qr_svg: string | null;
  expires_at: string;
}

// While a code is shown the list is asked for again this often, so the new device appears (and
// the code is marked used) without a click: the server sends no event when a device pairs.
const PAIRED_POLL_MS = 3000;

export class DevicesPanel {
  readonly button: HTMLButtonElement;
  private dialog: HTMLDialogElement;
  private listEl: HTMLElement;
  private problemEl: HTMLElement;
  private pairingEl: HTMLElement;
  private role: HTMLSelectElement;
  private name: HTMLInputElement;
  private known = new Set<string>();  // device ids listed when the code was made
  private pairing: Pairing | null = null;
  private ticker: number | undefined;
  private poller: number | undefined;

  constructor(private conn: Connection) {
    this.button = h('button', { type: 'button', class: 'small', 'aria-haspopup': 'dialog', 'data-needs': 'device_list', 'data-testid': 'open-devices' }, 'Devices');
    this.button.addEventListener('click', () => this.open());
    const close = h('button', { type: 'button', class: 'small' }, 'Close');
    close.addEventListener('click', () => this.dialog.close());
    this.listEl = h('ul', { class: 'device-list', 'aria-label': 'Paired devices' });
    this.problemEl = h('div', { class: 'notice', role: 'alert', hidden: true, 'data-testid': 'devices-problem' });
    this.pairingEl = h('div', { class: 'pairing', 'data-testid': 'pairing', hidden: true });
    this.role = h('select', { id: 'pair-role' }, ...ROLES.map(([value, words]) =>
      h('option', { value, selected: value === 'operator' }, words)));
    this.name = h('input', { id: 'pair-name', maxlength: 64, autocomplete: 'off', placeholder: 'e.g. Anna’s phone (the device may name itself)' });
    const add = h('form', { class: 'grid add-device' },
      h('h3', null, 'Add a device'),
      h('label', { for: 'pair-role' }, 'Role'), this.role,
      h('label', { for: 'pair-name' }, 'Name (optional)'), this.name,
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary' }, 'Make a pairing code')));
    add.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.makeCode();
    });
    this.dialog = h('dialog', { class: 'devices', 'aria-labelledby': 'devices-title' },
      h('div', { class: 'row spread' }, h('h2', { id: 'devices-title' }, 'Devices'), close),
      h('p', { class: 'muted small' }, 'Each paired device has its own token and role: a viewer watches, an ' +
        'operator also runs prompts, an approver also answers tool permissions, an admin does everything. ' +
        'Revoking a device disconnects it at once; its token never works again.'),
      this.listEl, this.problemEl, add, this.pairingEl);
    this.dialog.addEventListener('close', () => this.stopTimers());
  }

  get el(): HTMLElement {
    return this.dialog;
  }

  destroy(): void {
    this.stopTimers();
    if (this.dialog.open) this.dialog.close();
  }

  open(): void {
    if (!this.dialog.open) this.dialog.showModal();
    this.showProblem(null);
    void this.refresh();
  }

  private async refresh(): Promise<void> {
    try {
      const r = await this.conn.request('device_list');
      this.render(r.data.devices as Device[]);
    } catch (e) {
      this.showProblem(e);
    }
  }

  private render(devices: Device[]): void {
    clear(this.listEl);
    if (devices.length === 0) {
      this.listEl.append(h('li', { class: 'muted' }, 'No paired devices yet: the master token is the only one.'));
    }
    const mine = this.conn.welcome?.deviceId ?? null;
    for (const d of devices) this.listEl.append(this.row(d, d.device_id === mine));
    if (this.pairing && devices.some((d) => !this.known.has(d.device_id))) {
      const added = devices.filter((d) => !this.known.has(d.device_id)).map((d) => d.name).join(', ');
      this.endPairing(`Paired: ${added}.`);
    }
  }

  private row(d: Device, isThisDevice: boolean): HTMLElement {
    const name = h('span', { class: 'name' }, d.name);
    const rename = h('button', { type: 'button', class: 'small' }, 'Rename');
    const revoke = h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke ${d.name}` }, 'Revoke');
    const li = h('li', { 'data-device-id': d.device_id },
      name, h('span', { class: 'badge' }, d.role),
      isThisDevice && h('span', { class: 'badge warn' }, 'this device'),
      rename, revoke,
      h('span', { class: 'muted small when' },
        `Paired ${when(d.created_at)} · last seen ${d.last_seen_at ? when(d.last_seen_at) : 'never'}`));
    rename.addEventListener('click', () => this.editName(li, name, d));
    revoke.addEventListener('click', () => {
      if (!revoke.dataset.armed) {
        revoke.dataset.armed = '1';
        revoke.textContent = isThisDevice ? 'Confirm: revoke this device' : 'Confirm revoke';
        revoke.setAttribute('aria-label', `Confirm: revoke ${d.name}`);
        return;
      }
      void this.act(() => this.conn.request('device_revoke', undefined, { device_id: d.device_id }));
    });
    revoke.addEventListener('blur', () => {
      delete revoke.dataset.armed;
      revoke.textContent = 'Revoke';
      revoke.setAttribute('aria-label', `Revoke ${d.name}`);
    });
    return li;
  }

  // The name becomes a field with Save and Cancel in its place.
  private editName(li: HTMLElement, name: HTMLElement, d: Device): void {
    const input = h('input', { value: d.name, maxlength: 64, 'aria-label': `New name for ${d.name}`, autocomplete: 'off' });
    const form = h('form', { class: 'row name' }, input,
      h('button', { type: 'submit', class: 'primary small' }, 'Save'));
    const cancel = h('button', { type: 'button', class: 'small' }, 'Cancel');
    form.append(cancel);
    cancel.addEventListener('click', () => void this.refresh());
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const next = input.value.trim();
      if (!next || next === d.name) {
        void this.refresh();
        return;
      }
      void this.act(() => this.conn.request('device_rename', undefined, { device_id: d.device_id, name: next }));
    });
    li.replaceChild(form, name);
    input.focus();
    input.select();
  }

  private async makeCode(): Promise<void> {
    this.showProblem(null);
    const data: Record<string, string> = { role: this.role.value };
    const name = this.name.value.trim();
    if (name) data.name = name;
    try {
      const listed = await this.conn.request('device_list');
      this.known = new Set((listed.data.devices as Device[]).map((d) => d.device_id));
      const r = await this.conn.request('device_pair', undefined, data);
      this.showPairing(r.data as Pairing);
      this.name.value = '';
    } catch (e) {
      this.showProblem(e);
    }
  }

  private showPairing(p: Pairing): void {
    this.stopTimers();
    this.pairing = p;
    clear(this.pairingEl);
    this.pairingEl.hidden = false;
    const left = h('span', { 'data-testid': 'pairing-left' });
    const copy = h('button', { type: 'button', class: 'small' }, 'Copy link');
    copy.addEventListener('click', () => {
      navigator.clipboard?.writeText(p.url).then(() => { copy.textContent = 'Copied'; }, () => { copy.textContent = 'Copy failed: select the link'; });
    });
    append(this.pairingEl,
      h('p', null, 'Scan this with the new device’s camera, or open the link on it:'),
      p.qr_svg && h('img', {
        class: 'qr', alt: `QR code of ${p.url}`, 'data-testid': 'pairing-qr',
        src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(p.qr_svg)}`,
      }),
      h('p', { class: 'url mono small' }, h('a', { href: p.url, 'data-testid': 'pairing-url' }, p.url), ' ', copy),
      h('p', { class: 'small' }, 'Code ', h('strong', { class: 'mono' }, p.code), ' · works once · expires in ', left));
    const expires = Date.parse(p.expires_at);
    const tick = () => {
      const seconds = Math.round((expires - Date.now()) / 1000);
      if (seconds <= 0) {
        this.endPairing('The code expired unused: make a new one.');
        return;
      }
      left.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
    };
    tick();
    this.ticker = window.setInterval(tick, 1000);
    this.poller = window.setInterval(() => void this.refresh(), PAIRED_POLL_MS);
  }

  private endPairing(message: string): void {
    this.stopTimers();
    this.pairing = null;
    clear(this.pairingEl);
    this.pairingEl.append(h('p', { role: 'status', 'data-testid': 'pairing-done' }, message));
  }

  private stopTimers(): void {
    window.clearInterval(this.ticker);
    window.clearInterval(this.poller);
    this.ticker = this.poller = undefined;
  }

  // One change (rename, revoke), then the list as it now is.
  private async act(f: () => Promise<unknown>): Promise<void> {
    this.showProblem(null);
    try {
      await f();
    } catch (e) {
      this.showProblem(e);
    }
    await this.refresh();
  }

  private showProblem(e: unknown): void {
    clear(this.problemEl);
    this.problemEl.hidden = e === null;
    if (e === null) return;
    if (e instanceof RequestError) this.problemEl.append(h('strong', null, e.code), ' ', e.message);
    else this.problemEl.append(e instanceof Error ? e.message : String(e));
  }
}

function when(iso: string): string {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : new Date(t).toLocaleString();
}
