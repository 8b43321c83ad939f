// Reviewing a project from the phone: tabs over the project view (Conversation, Changes, Files,
// Sessions). Changes lists the changed files with their line counts (project_changes) and shows
// the diff (project_diff) of one file or of all; Files and Sessions live in fileview.ts and
// sessions.ts. Everything here is read-only except "Resume this one", which starts a run.
import { Connection, RequestError } from './conn';
import { h, clear, append } from './dom';
import { renderDiff } from './diff';
import { FileBrowser } from './fileview';
import { SessionsList } from './sessions';
import './review.css';

type Tab = 'conversation' | 'changes' | 'files' | 'sessions';

export class ReviewTabs {
  readonly tabs: HTMLElement;
  readonly el: HTMLElement;
  private buttons = new Map<Tab, HTMLButtonElement>();
  private changes = h('div', { class: 'changes', 'data-testid': 'changes' });
  private files: FileBrowser;
  private sessions: SessionsList;
  private wrap = false;
  private lastDiff: { path: string; text: string; source: string; truncated: boolean } | null = null;

  // `conversation`: the project view's own elements, hidden while another tab is shown.
  constructor(private conn: Connection, private projectId: string, private conversation: HTMLElement[]) {
    this.files = new FileBrowser(conn, projectId);
    this.sessions = new SessionsList(conn, projectId, () => this.show('conversation'));
    this.tabs = h('nav', { class: 'tabs', role: 'tablist', 'aria-label': 'Project views' });
    for (const [tab, label] of [['conversation', 'Conversation'], ['changes', 'Changes'], ['files', 'Files'], ['sessions', 'Sessions']] as [Tab, string][]) {
      const b = h('button', { type: 'button', role: 'tab', 'data-tab': tab }, label);
      b.addEventListener('click', () => this.show(tab));
      this.buttons.set(tab, b);
      this.tabs.append(b);
    }
    this.el = h('section', { class: 'review', hidden: true }, this.changes, this.files.el, this.sessions.el);
    this.select('conversation');
  }

  show(tab: Tab): void {
    this.select(tab);
    if (tab === 'changes') void this.loadChanges();
    if (tab === 'files') void this.files.showDirectory('');
    if (tab === 'sessions') void this.sessions.load();
  }

  // Opens a file of the project in the Files tab.
  openFile(path: string): void {
    this.select('files');
    void this.files.showFile(path);
  }

  private select(tab: Tab): void {
    for (const [t, b] of this.buttons) b.setAttribute('aria-selected', String(t === tab));
    for (const el of this.conversation) el.classList.toggle('tab-hidden', tab !== 'conversation');
    this.el.hidden = tab === 'conversation';
    this.changes.hidden = tab !== 'changes';
    this.files.el.hidden = tab !== 'files';
    this.sessions.el.hidden = tab !== 'sessions';
  }

  private async loadChanges(): Promise<void> {
    clear(this.changes);
    this.changes.append(h('p', { class: 'muted' }, 'Loading…'));
    try {
      const r = await this.conn.request('project_changes', this.projectId);
      const d = r.data;
      clear(this.changes);
      const files = d.files as any[];
      const source = d.source === 'git'
        ? 'From git: the work tree compared with HEAD.'
        : 'Not a git repository: the edits the agent made with its Edit/Write tools.';
      const refresh = h('button', { type: 'button', class: 'small' }, 'Refresh');
      refresh.addEventListener('click', () => void this.loadChanges());
      const all = h('button', { type: 'button', class: 'small' }, 'Whole diff');
      all.addEventListener('click', () => void this.loadDiff(''));
      all.disabled = files.length === 0;
      this.changes.append(h('div', { class: 'row spread' }, h('span', { class: 'muted small', 'data-testid': 'changes-source' }, source), h('div', { class: 'row' }, all, refresh)));
      if (files.length === 0) {
        this.changes.append(h('p', { class: 'muted' }, 'No changes.'));
        return;
      }
      const list = h('ul', { class: 'changed-files', 'data-testid': 'changed-files' });
      for (const f of files) list.append(this.fileRow(f));
      append(this.changes, list, d.truncated ? h('p', { class: 'muted small' }, 'Only the first files are listed.') : null,
        h('div', { class: 'diff-area' }));
    } catch (e) {
      this.showError(this.changes, e);
    }
  }

  private fileRow(f: any): HTMLElement {
    const path = String(f.path);
    const open = h('button', { type: 'button', class: 'link mono' }, f.old_path ? `${f.old_path} → ${path}` : path);
    open.addEventListener('click', () => void this.loadDiff(path));
    const view = h('button', { type: 'button', class: 'small', title: 'Show the file' }, 'View');
    view.addEventListener('click', () => this.openFile(path));
    view.disabled = f.status === 'deleted';
    const counts = f.binary
      ? h('span', { class: 'muted small' }, 'binary')
      : h('span', { class: 'counts small mono' },
        h('span', { class: 'add' }, `+${f.added ?? '?'}`), ' ', h('span', { class: 'del' }, `−${f.deleted ?? '?'}`));
    return h('li', { 'data-path': path }, h('span', { class: `badge status-${f.status}` }, String(f.status)), open, counts, view);
  }

  private async loadDiff(path: string): Promise<void> {
    const area = this.changes.querySelector('.diff-area');
    if (!area) return;
    clear(area);
    area.append(h('p', { class: 'muted' }, 'Loading…'));
    try {
      const r = await this.conn.request('project_diff', this.projectId, path ? { path } : {});
      this.lastDiff = { path, text: String(r.data.diff ?? ''), source: r.data.source, truncated: !!r.data.truncated };
      this.drawDiff(area);
      area.scrollIntoView({ block: 'start' });
    } catch (e) {
      this.showError(area, e);
    }
  }

  private drawDiff(area: Element): void {
    const d = this.lastDiff;
    if (!d) return;
    clear(area);
    const wrap = h('input', { type: 'checkbox', id: 'diff-wrap', checked: this.wrap });
    wrap.addEventListener('change', () => {
      this.wrap = wrap.checked;
      this.drawDiff(area);
    });
    append(area,
      h('div', { class: 'row spread' },
        h('strong', { class: 'mono small' }, d.path || 'All changes'),
        h('label', { class: 'toggle small' }, wrap, ' Wrap lines')),
      d.source === 'history' ? h('p', { class: 'muted small' }, 'Built from the recorded tool calls: each "@@ seq N Tool @@" block is one edit as the agent asked for it.') : null,
      renderDiff(d.text, this.wrap),
      d.truncated ? h('p', { class: 'muted small' }, 'The diff is longer than the server sends: ask for one file at a time.') : null);
  }

  private showError(el: Element, e: unknown): void {
    clear(el);
    const message = e instanceof RequestError ? `${e.code}: ${e.message}` : String(e instanceof Error ? e.message : e);
    el.append(h('div', { class: 'notice', role: 'alert' }, message));
  }
}
