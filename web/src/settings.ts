// The notifications panel (header → "Notifications"): turns Web Push on for this device (the
// browser asks its permission only from the click), the events it wants, what it receives now,
// a test notification, and turning it off. Each failure is said in words with the next step.
import { h, clear } from './dom';
import { PushClient, PushProblem } from './push';
import { onWorkerState } from './pwa';

// The events in words (push_info_response.events names them; an unknown one is shown as named).
const EVENT_WORDS: Record<string, string> = {
  permission_request: 'A tool call waits for your permission',
  run_succeeded: 'A run finished',
  run_failed: 'A run failed',
  run_timeout: 'A run timed out',
  run_lost: 'A run was lost (the CLI went away)',
  queue_drained: 'All queued follow-ups are done',
  server_problem: 'Trouble on the server (disk full, history not written)',
};

export class NotificationSettings {
  readonly button: HTMLButtonElement;
  private dialog: HTMLDialogElement;
  private stateEl: HTMLElement;
  private eventsEl: HTMLFieldSetElement;
  private problemEl: HTMLElement;
  private doneEl: HTMLElement;
  private actions: HTMLElement;
  private busy = false;
  private renders = 0;  // a render that awaited while a newer one began gives way

  constructor(private push: PushClient, private tokenRemembered: () => boolean) {
    this.button = h('button', { type: 'button', class: 'small', 'aria-haspopup': 'dialog', 'data-testid': 'open-notify' }, 'Notifications');
    this.button.addEventListener('click', () => this.open());
    const close = h('button', { type: 'button', class: 'small' }, 'Close');
    close.addEventListener('click', () => this.dialog.close());
    this.stateEl = h('p', { 'data-testid': 'push-state' });
    this.eventsEl = h('fieldset', { class: 'events' });
    this.problemEl = h('div', { class: 'notice', role: 'alert', hidden: true, 'data-testid': 'push-problem' });
    this.doneEl = h('p', { class: 'done', role: 'status', 'data-testid': 'push-done' });
    this.actions = h('div', { class: 'row' });
    this.dialog = h('dialog', { class: 'notify-settings', 'aria-labelledby': 'notify-title' },
      h('div', { class: 'row spread' }, h('h2', { id: 'notify-title' }, 'Notifications'), close),
      h('p', { class: 'muted small' }, 'Get a notification on this device when the agent needs you or a run ends. ' +
        'Nothing comes about a project while this device has it on screen.'),
      this.stateEl, this.eventsEl, this.actions, this.doneEl, this.problemEl);
    push.onChange.add(() => { if (this.dialog.open && !this.busy) void this.render(); });
    onWorkerState(() => { if (this.dialog.open && !this.busy) void this.render(); });
  }

  get el(): HTMLElement {
    return this.dialog;
  }

  open(): void {
    if (!this.dialog.open) this.dialog.showModal();
    this.showProblem(null);
    this.doneEl.textContent = '';
    void this.render();
    // What the server has for this device now (it may have dropped a dead subscription).
    if (!this.push.unavailable()) void this.run(async () => { await this.push.refresh(); });
  }

  private async render(): Promise<void> {
    const generation = ++this.renders;
    const unavailable = this.push.unavailable();
    const sub = unavailable ? null : await this.push.browserSubscription().catch(() => null);
    if (generation !== this.renders) return;
    const info = this.push.info;
    const onServer = info?.subscription && sub && info.subscription.endpoint === sub.endpoint ? info.subscription : null;
    clear(this.actions);
    this.stateEl.dataset.state = unavailable ? unavailable.kind : onServer ? 'on' : 'off';
    if (unavailable) {
      this.stateEl.textContent = 'Notifications cannot be turned on here.';
      this.eventsEl.hidden = true;
      this.showProblem(unavailable);
      return;
    }
    if (onServer) {
      const since = onServer.created_at ? ` since ${new Date(onServer.created_at).toLocaleString()}` : '';
      this.stateEl.textContent = `This device receives notifications${since} for: ` +
        (onServer.events.length ? onServer.events.map(words).join('; ') : 'nothing (no event chosen)') + '.';
    } else if (sub && info) {
      this.stateEl.textContent = 'This browser has a subscription the server does not know (it may have ' +
        'dropped it): turn notifications on again.';
    } else {
      this.stateEl.textContent = 'This device receives no notifications.';
    }
    this.renderEvents(info?.events ?? [], onServer?.events ?? null);
    if (onServer) {
      this.actions.append(
        this.action('Save choice', () => this.push.saveEvents(this.chosen()), 'Saved.'),
        this.action('Send a test', () => this.push.test(),
          'Test sent: it should arrive within seconds. If not, check that the browser may show notifications (and the phone’s do-not-disturb).'),
        this.action('Turn off', () => this.push.unsubscribe(), 'Notifications are off for this device.'));
    } else {
      const on = this.action('Turn on notifications', () => this.push.subscribe(this.chosen()),
        'Notifications are on for this device.', 'primary');
      on.disabled = info === null;  // the events and the server's key come first
      this.actions.append(on);
    }
    if (!this.tokenRemembered()) {
      this.actions.append(h('p', { class: 'muted small' }, 'A tapped notification may open a new window: sign in with ' +
        '“Remember on this device” ticked so that it needs no token.'));
    }
  }

  private renderEvents(all: string[], chosen: string[] | null): void {
    // Not subscribed: the ticks as the person left them (all at first).
    const previous = new Set(this.chosen());
    const keepTicks = chosen === null && this.eventsEl.querySelector('input[name=event]') !== null;
    clear(this.eventsEl);
    this.eventsEl.hidden = all.length === 0;
    this.eventsEl.append(h('legend', null, 'Notify me when'));
    for (const name of all) {
      const ticked = chosen ? chosen.includes(name) : keepTicks ? previous.has(name) : true;
      const box = h('input', { type: 'checkbox', name: 'event', value: name, checked: ticked });
      this.eventsEl.append(h('label', { class: 'toggle' }, box, ' ', words(name)));
    }
  }

  private chosen(): string[] {
    return [...this.eventsEl.querySelectorAll<HTMLInputElement>('input[name=event]:checked')].map((b) => b.value);
  }

  private action(label: string, f: () => Promise<void>, done: string, cls = ''): HTMLButtonElement {
    const b = h('button', { type: 'button', class: cls || null }, label);
    b.addEventListener('click', () => void this.run(f, done));
    return b;
  }

  // One action at a time; its outcome (or failure) shown, then the panel as it now is.
  private async run(f: () => Promise<void>, done = ''): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    for (const b of this.actions.querySelectorAll('button')) b.disabled = true;
    this.doneEl.textContent = '';
    this.showProblem(null);
    try {
      await f();
      this.doneEl.textContent = done;
    } catch (e) {
      this.showProblem(e instanceof PushProblem ? e
        : new PushProblem('server', e instanceof Error ? e.message : String(e)));
    } finally {
      this.busy = false;
      await this.render();
    }
  }

  private showProblem(p: PushProblem | null): void {
    this.problemEl.hidden = p === null;
    this.problemEl.textContent = p?.message ?? '';
    if (p) this.problemEl.dataset.kind = p.kind;
  }
}

function words(event: string): string {
  return EVENT_WORDS[event] ?? event;
}
