// The Sessions tab: the project's past sessions (session_list) and "Resume this one": a prompt
// sent with execute options.session_id, which continues that conversation instead of the
// project's current one.
import { Connection, RequestError } from './conn';
import { h, clear } from './dom';

export class SessionsList {
  readonly el = h('div', { class: 'sessions', 'data-testid': 'sessions' });

  // `onResumed` runs after a resumed run was accepted (the view switches to the conversation).
  constructor(private conn: Connection, private projectId: string, private onResumed: () => void) {}

  async load(): Promise<void> {
    clear(this.el);
    this.el.append(h('p', { class: 'muted' }, 'Loading…'));
    try {
      const r = await this.conn.request('session_list', this.projectId);
      clear(this.el);
      const sessions = r.data.sessions as any[];
      if (sessions.length === 0) {
        this.el.append(h('p', { class: 'muted' }, 'No sessions yet.'));
        return;
      }
      const list = h('ul', { class: 'session-list' });
      for (const s of sessions) list.append(this.row(s));
      this.el.append(list);
    } catch (e) {
      clear(this.el);
      this.el.append(h('div', { class: 'notice', role: 'alert' }, e instanceof Error ? e.message : String(e)));
    }
  }

  private row(s: any): HTMLElement {
    const id = String(s.session_id);
    const started = s.started ? new Date(s.started).toLocaleString() : '';
    const cost = typeof s.cost_usd === 'number' ? `$${s.cost_usd.toFixed(4)}` : '';
    const prompt = h('textarea', { rows: 2, placeholder: 'Prompt to continue this session', 'aria-label': `Prompt for session ${id}` });
    const send = h('button', { type: 'submit', class: 'primary small' }, 'Resume');
    const error = h('div', { class: 'notice', role: 'alert', hidden: true });
    const form = h('form', { class: 'resume', hidden: true }, prompt, h('div', { class: 'row' }, send), error);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!prompt.value.trim()) return;
      send.disabled = true;
      try {
        await this.conn.request('execute', this.projectId, { prompt: prompt.value, options: { session_id: id } });
        prompt.value = '';
        form.hidden = true;
        this.onResumed();
      } catch (err) {
        error.textContent = err instanceof RequestError ? `${err.code}: ${err.message}` : String(err);
        error.hidden = false;
      } finally {
        send.disabled = false;
      }
    });
    const resume = h('button', { type: 'button', class: 'small', 'data-needs': 'execute' }, 'Resume this one');
    resume.addEventListener('click', () => {
      form.hidden = !form.hidden;
      if (!form.hidden) prompt.focus();
    });
    return h('li', { 'data-session-id': id },
      h('div', { class: 'session-prompt' }, String(s.first_prompt || '(no prompt)'), s.first_prompt_truncated ? '…' : ''),
      h('div', { class: 'muted small' },
        h('span', { class: 'mono' }, id.slice(0, 8)), ` · ${started} · ${s.runs} run${s.runs === 1 ? '' : 's'}`,
        cost ? ` · ${cost}` : '', s.current ? ' · current' : ''),
      h('div', { class: 'row' }, resume), form);
  }
}
