// The project view: the live stream (history paged in as you scroll up), pending permission
// cards, queued follow-ups and the prompt box. Entries are keyed by seq: each is shown once, in
// seq order, whether it came live, from the first page, from older pages or from a catch-up.
import { Connection, Envelope, RequestError } from './conn';
import { h, clear, json } from './dom';
import { Item, RenderContext, renderItem, setRaw, byText } from './render';
import { ReviewTabs } from './review';
import { AttachmentTray, attachmentList } from './attachments';
import { Totals, spendBadge, showProjectSpend } from './spend';

const PAGE = 100;        // entries per history page
const CATCH_UP = 500;    // entries per catch-up request
const NEAR_BOTTOM = 80;  // px: closer than this to the end keeps following new output

export interface ProjectInfo {
  id: string;
  path: string;
  state: string;
  session_id?: string | null;
  queue_position?: number;
  totals?: Totals;  // what its runs cost (issue 19)
  today?: Totals;
  node?: string;  // cluster mode: the host that owns it (issue 20)
}

// A run is there (to stop, or to queue behind): not IDLE, and not UNAVAILABLE (its node is away).
export function hasRun(info: ProjectInfo | null): boolean {
  return info !== null && (info.state === 'EXECUTING' || info.state === 'QUEUED');
}

export class ProjectView {
  readonly el: HTMLElement;
  private stream: HTMLElement;
  private sentinel: HTMLButtonElement;
  private items = new Map<number, HTMLElement>();
  private oldest = Infinity;    // lowest seq shown
  private caughtUpTo = 0;       // every seq from `oldest` up to this is shown
  private hasOlder = false;
  private loadingOlder = false;
  private catchingUp: Promise<void> | null = null;
  private catchUpAgain = false;
  private raw = false;
  private info: ProjectInfo | null = null;
  private cards = new Map<string, HTMLElement>();
  private queued = new Map<string, HTMLElement>();
  private cardsEl: HTMLElement;
  private queuedEl: HTMLElement;
  private stateEl: HTMLElement;
  private nodeEl: HTMLElement;  // cluster mode: "on <node>"

  private sessionEl: HTMLElement;
  private spendEl = spendBadge();
  private notice: HTMLElement;
  private textarea: HTMLTextAreaElement;
  private submit: HTMLButtonElement;
  private newSession: HTMLButtonElement;
  private observer: IntersectionObserver;
  private form: HTMLFormElement;
  private opts: { model: HTMLInputElement; mode: HTMLSelectElement; tools: HTMLInputElement; approval: HTMLSelectElement };
  private joined = false;
  // This tab's connection ids (a new one after each reconnect): prompts `by` them are "You".
  private myConnections = new Set<number>();
  private ctx: RenderContext = {
    isMine: (by) => by?.type === 'client' && this.myConnections.has(Number(by.connection_id)),
    attachments: (refs) => attachmentList(refs, this.conn, this.projectId),
  };
  private tray: AttachmentTray;
  private interrupt: HTMLButtonElement;
  private kill: HTMLButtonElement;
  private stopping: 'interrupt' | 'kill' | null = null;  // a stop was asked (here or elsewhere)
  private review: ReviewTabs;
  // The permission card a link asked for (#/p/<id>/permission/<permission_id>), until shown or
  // until the join's pending list shows it is gone.
  private wantedCard: string | null = null;
  // The entry a search hit asked for (#/p/<id>/seq/<seq>), until the first page is in and it
  // is shown; `ready` once that first page is.
  private wantedSeq: number | null = null;
  private ready = false;

  // `node`: the node that owns it (cluster mode), when the list knew it; project_state data
  // names it too once the node is unavailable.
  constructor(private conn: Connection, readonly projectId: string, private node?: string) {
    this.stateEl = h('span', { class: 'badge state', 'data-testid': 'project-state' }, '…');
    this.sessionEl = h('span', { class: 'muted small mono' });
    this.nodeEl = h('span', { class: 'badge node', 'data-testid': 'project-node', hidden: true });
    const rawToggle = h('input', { type: 'checkbox', id: 'raw-toggle' });
    rawToggle.addEventListener('change', () => this.setRaw(rawToggle.checked));
    this.newSession = h('button', { type: 'button', 'data-needs': 'agent_new_session', title: 'Forget the conversation: the next prompt starts a new session' }, 'New session');
    this.newSession.addEventListener('click', () => this.act('agent_new_session'));
    const interrupt = this.interrupt = h('button', { type: 'button', disabled: true, 'data-needs': 'agent_interrupt', title: 'Stop the current turn; the CLI keeps running' }, 'Interrupt');
    interrupt.addEventListener('click', () => void this.stop('interrupt'));
    const kill = this.kill = h('button', { type: 'button', class: 'danger', disabled: true, 'data-needs': 'agent_kill', title: 'Stop the CLI process (interrupt, then signals)' }, 'Kill');
    kill.addEventListener('click', () => void this.stop('kill'));

    this.sentinel = h('button', { type: 'button', class: 'older', hidden: true }, 'Load older messages');
    this.sentinel.addEventListener('click', () => void this.loadOlder());
    this.stream = h('section', { class: 'stream', role: 'log', 'aria-label': 'Conversation', tabindex: 0 }, this.sentinel);
    this.cardsEl = h('section', { class: 'cards', 'aria-label': 'Permission requests', 'aria-live': 'polite' });
    this.queuedEl = h('ul', { class: 'queued', 'aria-label': 'Queued follow-ups' });
    this.notice = h('div', { class: 'notice', role: 'alert', hidden: true });

    this.textarea = h('textarea', {
      id: 'prompt', name: 'prompt', rows: 3, required: true,
      placeholder: 'Ask the agent… (Ctrl+Enter to send)', 'aria-label': 'Prompt',
    });
    this.textarea.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.opts = {
      model: h('input', { id: 'opt-model', list: 'models', placeholder: 'server default', autocomplete: 'off' }),
      mode: h('select', { id: 'opt-mode' },
        ...['', 'default', 'acceptEdits', 'plan', 'auto', 'dontAsk', 'bypassPermissions']
          .map((v) => h('option', { value: v }, v || 'server default'))),
      tools: h('input', { id: 'opt-tools', placeholder: 'e.g. Read, Bash(git *)', autocomplete: 'off' }),
      approval: h('select', { id: 'opt-approval' },
        h('option', { value: '' }, 'server default'),
        h('option', { value: 'client' }, 'ask here'),
        h('option', { value: 'none' }, 'never ask')),
    };
    this.submit = h('button', { type: 'submit', class: 'primary' }, 'Run');
    this.tray = new AttachmentTray((text) => this.showNotice(text));
    this.tray.watchPaste(this.textarea);
    this.form = h('form', { class: 'prompt-form', 'data-needs': 'execute' },
      this.textarea,
      this.tray.el,
      h('details', { class: 'options' }, h('summary', null, 'Options'),
        h('div', { class: 'grid' },
          h('label', { for: 'opt-model' }, 'Model'), this.opts.model,
          h('datalist', { id: 'models' }, ...['sonnet', 'opus', 'haiku'].map((m) => h('option', { value: m }))),
          h('label', { for: 'opt-mode' }, 'Permission mode'), this.opts.mode,
          h('label', { for: 'opt-tools' }, 'Allowed tools'), this.opts.tools,
          h('label', { for: 'opt-approval' }, 'Tool approval'), this.opts.approval),
        h('p', { class: 'muted small' }, 'Options apply to a new run; a queued follow-up joins the running one as it is.')),
      h('div', { class: 'row' }, this.tray.buttons, this.submit));
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.send();
    });

    const roleNote = h('p', { class: 'muted small role-note', 'data-unless': 'execute' },
      'This device may watch this project, not run prompts (its role is set when it is paired).');
    const review = this.review = new ReviewTabs(conn, projectId, [this.notice, this.stream, this.cardsEl, this.queuedEl, this.form, roleNote]);
    this.el = h('div', { class: 'project-view' },
      h('div', { class: 'project-bar' },
        h('a', { href: '#', class: 'back' }, '← Projects'),
        h('h2', { class: 'path mono', 'data-testid': 'project-path' }, projectId),
        this.stateEl, this.nodeEl, this.sessionEl, this.spendEl,
        h('div', { class: 'actions' }, interrupt, kill, this.newSession,
          h('label', { class: 'toggle' }, rawToggle, ' Raw JSON'))),
      review.tabs, this.notice, this.stream, this.cardsEl, this.queuedEl, this.form, roleNote, review.el);

    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) void this.loadOlder();
    }, { root: this.stream });
    this.observer.observe(this.sentinel);
  }

  focus(): void {
    this.textarea.focus();
  }

  // Brings a permission card into view (a tapped notification's link). One that is not pending
  // (answered, expired, unknown) leaves just the project view.
  showPermission(permissionId: string): void {
    this.review.show('conversation');
    this.wantedCard = permissionId;
    const card = this.cards.get(permissionId);
    if (card) this.highlight(card);
  }

  // Brings a history entry into view (a search hit): older pages are loaded until it is in.
  showSeq(seq: number): void {
    this.review.show('conversation');
    this.wantedSeq = seq;
    if (this.ready) void this.revealSeq();
  }

  private async revealSeq(): Promise<void> {
    const seq = this.wantedSeq;
    if (seq === null) return;
    this.wantedSeq = null;
    try {
      while (this.oldest > seq && this.hasOlder) await this.loadPage(this.oldest, false);
    } catch (e) {
      this.showNotice(e);
    }
    const el = this.stream.querySelector<HTMLElement>(`[data-seq="${seq}"]`);
    if (!el) return;
    for (const old of this.stream.querySelectorAll('.hit-target')) old.classList.remove('hit-target');
    el.classList.add('hit-target');
    el.setAttribute('aria-current', 'true');
    el.scrollIntoView({ block: 'center' });
  }

  destroy(): void {
    this.observer.disconnect();
    if (this.conn.isOpen) this.conn.request('project_leave', this.projectId).catch(() => {});
  }

  // (Re)subscribe: on open and after every reconnect. The first time, the newest page of history
  // is loaded; later, everything after the last seq shown is fetched (catch-up).
  async join(): Promise<void> {
    let reply: Envelope;
    try {
      reply = await this.conn.request('project_join', this.projectId);
    } catch (e) {
      this.showNotice(e);
      return;
    }
    const d = reply.data ?? {};
    if (typeof d.connection_id === 'number') this.myConnections.add(d.connection_id);
    this.setInfo(d.project);
    this.resetCards(Array.isArray(d.pending_permissions) ? d.pending_permissions : []);
    this.wantedCard = null;  // shown by resetCards if it was pending; else it is gone
    this.resetQueued(Array.isArray(d.queued_prompts) ? d.queued_prompts : []);
    if (d.stopping && typeof d.stopping === 'object') this.setStopping(d.stopping.how === 'kill' ? 'kill' : 'interrupt');
    const lastSeq = Number(d.last_seq ?? 0);
    if (!this.joined) {
      this.joined = true;
      this.caughtUpTo = Math.max(this.caughtUpTo, lastSeq);
      try {
        if (lastSeq > 0) await this.loadPage(lastSeq + 1, true);
      } catch (e) {
        // Lost before the first page came: the join after the reconnect loads it again.
        this.joined = false;
        if (!(e instanceof Error && e.message === 'connection lost')) this.showNotice(e);
        return;
      }
      this.scrollToEnd();
      this.ready = true;
      await this.revealSeq();
    } else {
      await this.catchUp();
    }
  }

  // A message for this project, live from the connection.
  handle(msg: Envelope): void {
    const d = msg.data ?? {};
    switch (msg.type) {
      case 'project_state':
        this.setInfo(d);
        break;
      case 'session_reset':
        if (this.info) this.setInfo({ ...this.info, session_id: null });
        break;
      case 'permission_request':
        this.addCard(d);
        break;
      case 'permission_resolved':
        this.removeCard(d.permission_id);
        break;
      case 'prompt_queued':
        this.addQueued(d);
        break;
      case 'prompt_dequeued':
        this.removeQueued(d.queue_id);
        break;
      case 'run_stopping':
        this.setStopping(d.how === 'kill' ? 'kill' : 'interrupt');
        break;
    }
    if (typeof msg.seq === 'number') {
      const item: Item = msg.type === 'agent_message'
        ? { seq: msg.seq, timestamp: msg.timestamp, direction: 'claude', message: d }
        : { seq: msg.seq, timestamp: msg.timestamp, direction: 'server', message: { type: msg.type, data: d } };
      const follow = this.nearBottom();
      this.add(item);
      if (follow) this.scrollToEnd();
      if (msg.seq > this.caughtUpTo + 1) void this.catchUp();
      else this.advance();
    }
  }

  private add(item: Item): void {
    if (this.items.has(item.seq)) return;  // already shown: a catch-up overlapping live messages
    const el = renderItem(item, this.raw, this.ctx);
    this.items.set(item.seq, el);
    this.insert(el, item.seq);
    this.oldest = Math.min(this.oldest, item.seq);
    // A permission answered while we were away: its card must not stay.
    const m = item.message;
    if (item.direction === 'server' && m?.type === 'permission_resolved') this.removeCard(m.data?.permission_id);
    if (item.direction === 'server' && m?.type === 'prompt_dequeued') this.removeQueued(m.data?.queue_id);
  }

  private insert(el: HTMLElement, seq: number): void {
    let after: Element | null = this.stream.lastElementChild;
    while (after && after !== this.sentinel && Number((after as HTMLElement).dataset.seq) > seq) {
      after = after.previousElementSibling;
    }
    (after ?? this.sentinel).after(el);
  }

  private advance(): void {
    while (this.items.has(this.caughtUpTo + 1)) this.caughtUpTo++;
  }

  // Fetches everything after the last contiguous seq, in pages, until the server has no more.
  private catchUp(): Promise<void> {
    if (this.catchingUp) {
      this.catchUpAgain = true;
      return this.catchingUp;
    }
    this.catchingUp = (async () => {
      try {
        do {
          this.catchUpAgain = false;
          for (;;) {
            const r = await this.conn.request('get_messages', this.projectId, { after_seq: this.caughtUpTo, limit: CATCH_UP });
            const follow = this.nearBottom();
            for (const e of r.data.messages as Item[]) this.add(e);
            if (follow) this.scrollToEnd();
            const got = r.data.messages as Item[];
            if (!r.data.has_more) {
              this.caughtUpTo = Math.max(this.caughtUpTo, Number(r.data.last_seq ?? 0));
              break;
            }
            this.caughtUpTo = Math.max(this.caughtUpTo, got[got.length - 1].seq);
          }
          this.advance();
        } while (this.catchUpAgain);
      } catch (e) {
        if (!(e instanceof Error && e.message === 'connection lost')) this.showNotice(e);
      } finally {
        this.catchingUp = null;
      }
    })();
    return this.catchingUp;
  }

  private async loadPage(beforeSeq: number, initial: boolean): Promise<void> {
    const r = await this.conn.request('get_messages', this.projectId, { before_seq: beforeSeq, limit: PAGE });
    const entries = r.data.messages as Item[];
    const anchor = this.stream.scrollHeight - this.stream.scrollTop;
    for (const e of entries) this.add(e);
    this.hasOlder = !!r.data.has_more;
    this.sentinel.hidden = !this.hasOlder;
    if (!initial) this.stream.scrollTop = this.stream.scrollHeight - anchor;  // keep the view still
  }

  private async loadOlder(): Promise<void> {
    if (!this.hasOlder || this.loadingOlder || !this.conn.isOpen) return;
    this.loadingOlder = true;
    try {
      await this.loadPage(this.oldest, false);
    } catch (e) {
      this.showNotice(e);
    } finally {
      this.loadingOlder = false;
    }
  }

  private async send(): Promise<void> {
    const prompt = this.textarea.value;
    if (!prompt.trim()) return;
    const running = hasRun(this.info);
    const data: Record<string, unknown> = { prompt };
    if (this.tray.count > 0) data.attachments = this.tray.take();
    if (running) {
      data.mode = 'queue';
    } else {
      const options: Record<string, unknown> = {};
      if (this.opts.model.value.trim()) options.model = this.opts.model.value.trim();
      if (this.opts.mode.value) options.permission_mode = this.opts.mode.value;
      const tools = this.opts.tools.value.split(/,(?![^()]*\))/).map((t) => t.trim()).filter(Boolean);
      if (tools.length) options.allowed_tools = tools;
      if (this.opts.approval.value) options.permission_prompt = this.opts.approval.value;
      if (Object.keys(options).length) data.options = options;
    }
    // A message over the server's limit would close the connection (1009) and lose the prompt:
    // say what to do instead of sending it.
    const limit = this.conn.welcome?.messageSize ?? null;
    const size = new TextEncoder().encode(JSON.stringify({ type: 'execute', request_id: 'c0000000', project_id: this.projectId, data })).length;
    if (limit !== null && size > limit) {
      this.showNotice(`This prompt with its attachments is ${mib(size)}; the server takes messages up to ${mib(limit)} ` +
        '(limits.message_size). Remove an attachment, or ask the server\'s admin to raise the limit.');
      return;
    }
    this.submit.disabled = true;
    try {
      await this.conn.request('execute', this.projectId, data);
      this.textarea.value = '';
      this.tray.clear();
      this.hideNotice();
    } catch (e) {
      this.showNotice(e);
    } finally {
      this.submit.disabled = false;
      this.textarea.focus();
    }
  }

  // Interrupt or Kill: "Stopping…" at once; the request's reply is the final IDLE. A request that
  // failed (not connected) leaves the buttons usable again.
  private async stop(how: 'interrupt' | 'kill'): Promise<void> {
    this.setStopping(how);
    if (!(await this.act(how === 'kill' ? 'agent_kill' : 'agent_interrupt'))) {
      this.stopping = null;
      this.showButtons();
    }
  }

  private setStopping(how: 'interrupt' | 'kill'): void {
    if (!hasRun(this.info)) return;
    if (this.stopping !== 'kill') this.stopping = how;
    this.showButtons();
  }

  // Interrupt and Kill only while a run is there; a stop asked once is shown as "Stopping…", and
  // Kill stays usable after an interrupt (a CLI that ignores it).
  private showButtons(): void {
    const idle = !hasRun(this.info);
    if (idle) this.stopping = null;
    this.interrupt.disabled = idle || this.stopping !== null;
    this.kill.disabled = idle || this.stopping === 'kill';
    this.interrupt.textContent = this.stopping === 'interrupt' ? 'Stopping…' : 'Interrupt';
    this.kill.textContent = this.stopping === 'kill' ? 'Stopping…' : 'Kill';
    const info = this.info;
    if (info) {
      this.stateEl.textContent = this.stopping ? 'Stopping…'
        : info.state + (info.queue_position ? ` #${info.queue_position}` : '');
    }
    this.stateEl.dataset.stopping = this.stopping ?? '';
  }

  private async act(type: string): Promise<boolean> {
    try {
      await this.conn.request(type, this.projectId);
      this.hideNotice();
      return true;
    } catch (e) {
      this.showNotice(e);
      return false;
    }
  }

  private setInfo(p: any): void {
    if (!p || typeof p !== 'object') return;
    this.info = { ...(this.info ?? { id: this.projectId, path: this.projectId, state: 'IDLE' }), ...p };
    const info = this.info!;
    const path = this.el.querySelector('.path');
    if (path) path.textContent = info.path;
    this.stateEl.textContent = info.state + (info.queue_position ? ` #${info.queue_position}` : '');
    this.stateEl.dataset.state = info.state;
    const node = info.node ?? this.node;
    this.nodeEl.textContent = node ? `on ${node}` : '';
    this.nodeEl.hidden = !node;
    this.sessionEl.textContent = info.session_id ? `session ${String(info.session_id).slice(0, 8)}` : 'new session';
    showProjectSpend(this.spendEl, info);
    const idle = !hasRun(info);
    this.submit.textContent = idle ? 'Run' : 'Queue follow-up';
    this.newSession.disabled = info.state !== 'IDLE';
    this.showButtons();
  }

  private resetCards(list: any[]): void {
    for (const c of this.cards.values()) c.remove();
    this.cards.clear();
    for (const p of list) this.addCard(p);
  }

  private addCard(p: any): void {
    const id = String(p.permission_id ?? '');
    if (!id || this.cards.has(id)) return;
    const answer = async (decision: 'allow' | 'deny', remember: boolean) => {
      for (const b of card.querySelectorAll('button')) b.disabled = true;
      const data: Record<string, unknown> = { permission_id: id, decision };
      if (decision === 'deny') data.message = 'Denied from the web console';
      if (remember) data.remember = 'session';
      try {
        await this.conn.request('permission_response', this.projectId, data);
      } catch (e) {
        if (e instanceof RequestError && e.code === 'PERMISSION_NOT_FOUND') this.removeCard(id);
        else for (const b of card.querySelectorAll('button')) b.disabled = false;
        this.showNotice(e);
      }
    };
    const allow = h('button', { type: 'button', class: 'primary' }, 'Allow');
    allow.addEventListener('click', () => void answer('allow', false));
    const deny = h('button', { type: 'button', class: 'danger' }, 'Deny');
    deny.addEventListener('click', () => void answer('deny', false));
    const suggestions = Array.isArray(p.permission_suggestions) && p.permission_suggestions.length > 0;
    const always = suggestions ? h('button', { type: 'button' }, 'Allow for this session') : null;
    always?.addEventListener('click', () => void answer('allow', true));
    const expires = typeof p.expires_at === 'string' ? new Date(p.expires_at) : null;
    const card = h('div', { class: 'card permission', 'data-permission-id': id, role: 'group', 'aria-label': `Permission request for ${p.tool_name}` },
      h('div', { class: 'card-title' }, h('span', { class: 'badge warn' }, 'permission'), ' ',
        h('strong', null, String(p.display_name ?? p.tool_name ?? 'tool')), ' wants to run'),
      p.description && h('div', null, String(p.description)),
      h('pre', { class: 'code' }, h('code', null, typeof p.input?.command === 'string' ? p.input.command : json(p.input))),
      p.decision_reason && h('div', { class: 'muted small' }, `Why: ${p.decision_reason}`),
      p.blocked_path && h('div', { class: 'muted small' }, `Path: ${p.blocked_path}`),
      expires && h('div', { class: 'muted small' }, `Expires ${expires.toLocaleTimeString()}`),
      h('div', { class: 'row', 'data-needs': 'permission_response' }, allow, always, deny),
      h('p', { class: 'muted small', 'data-unless': 'permission_response' }, 'Waiting for a device that may answer permission requests.'));
    this.cards.set(id, card);
    this.cardsEl.appendChild(card);
    if (this.nearBottom()) this.scrollToEnd();
    if (id === this.wantedCard) this.highlight(card);
  }

  // The card asked for: scrolled into view, marked (aria-current) and focused for screen readers.
  private highlight(card: HTMLElement): void {
    this.wantedCard = null;
    for (const c of this.cards.values()) c.removeAttribute('aria-current');
    card.setAttribute('aria-current', 'true');
    card.tabIndex = -1;
    card.scrollIntoView({ block: 'center' });
    card.focus({ preventScroll: true });
  }

  private removeCard(id: unknown): void {
    const key = String(id ?? '');
    this.cards.get(key)?.remove();
    this.cards.delete(key);
  }

  private resetQueued(list: any[]): void {
    for (const q of this.queued.values()) q.remove();
    this.queued.clear();
    for (const q of list) this.addQueued(q);
  }

  private addQueued(q: any): void {
    const id = String(q.queue_id ?? '');
    if (!id || this.queued.has(id)) return;
    const li = h('li', { 'data-queue-id': id }, h('span', { class: 'badge' }, 'queued'), ' ', String(q.prompt ?? ''),
      q.by && h('span', { class: 'muted small' }, ` ${this.ctx.isMine(q.by) ? 'by you' : byText(q.by)}`));
    this.queued.set(id, li);
    this.queuedEl.appendChild(li);
  }

  private removeQueued(id: unknown): void {
    const key = String(id ?? '');
    this.queued.get(key)?.remove();
    this.queued.delete(key);
  }

  private setRaw(on: boolean): void {
    this.raw = on;
    this.stream.classList.toggle('show-raw', on);
    for (const el of this.items.values()) setRaw(el, on);
  }

  private nearBottom(): boolean {
    return this.stream.scrollHeight - this.stream.scrollTop - this.stream.clientHeight < NEAR_BOTTOM;
  }

  private scrollToEnd(): void {
    this.stream.scrollTop = this.stream.scrollHeight;
  }

  private showNotice(e: unknown): void {
    clear(this.notice);
    if (e instanceof RequestError) {
      this.notice.append(h('strong', null, e.code), ' ', e.message);
    } else {
      this.notice.append(e instanceof Error ? e.message : String(e));
    }
    this.notice.hidden = false;
  }

  private hideNotice(): void {
    this.notice.hidden = true;
  }
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
