// The project list: state of each project, create by path, delete (with a confirming second
// click), open.
import { Connection, RequestError } from './conn';
import { h, clear } from './dom';
import type { ProjectInfo } from './project';

export class ProjectsView {
  readonly el: HTMLElement;
  private list: HTMLElement;
  private error: HTMLElement;
  private path: HTMLInputElement;
  private paths = new Map<string, string>();  // id -> path, as last listed (search hits name them)

  constructor(private conn: Connection, private open: (id: string) => void) {
    this.path = h('input', {
      id: 'new-path', name: 'path', required: true, autocomplete: 'off', spellcheck: 'false',
      placeholder: '/home/me/code/my-project', class: 'mono',
    });
    const form = h('form', { class: 'create', 'data-needs': 'project_create' },
      h('label', { for: 'new-path' }, 'New project (absolute path of an existing directory)'),
      h('div', { class: 'row' }, this.path, h('button', { type: 'submit', class: 'primary' }, 'Create')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.create();
    });
    this.error = h('div', { class: 'notice', role: 'alert', hidden: true });
    this.list = h('ul', { class: 'projects', 'aria-label': 'Projects' });
    const refresh = h('button', { type: 'button' }, 'Refresh');
    refresh.addEventListener('click', () => void this.refresh());
    this.el = h('div', { class: 'projects-view' },
      h('div', { class: 'row spread' }, h('h2', null, 'Projects'), refresh),
      this.error, this.list, form,
      h('p', { class: 'muted small', 'data-unless': 'project_create' }, 'Projects are created by an admin.'));
  }

  async refresh(): Promise<void> {
    if (!this.conn.isOpen) return;
    try {
      const r = await this.conn.request('project_list');
      this.render(r.data.projects as ProjectInfo[]);
    } catch (e) {
      this.show(e);
    }
  }

  private render(projects: ProjectInfo[]): void {
    clear(this.list);
    this.paths = new Map(projects.map((p) => [p.id, p.path]));
    if (projects.length === 0) {
      this.list.appendChild(h('li', { class: 'muted' }, 'No projects yet.',
        h('span', { 'data-needs': 'project_create' }, ' Create one below.')));
    }
    for (const p of projects) {
      const open = h('a', { href: `#/p/${encodeURIComponent(p.id)}`, class: 'open mono' }, p.path);
      const del = h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${p.path}`, 'data-needs': 'project_delete' }, 'Delete');
      del.addEventListener('click', () => {
        if (del.dataset.armed) {
          void this.remove(p.id);
        } else {
          del.dataset.armed = '1';
          del.textContent = 'Confirm delete';
        }
      });
      del.addEventListener('blur', () => {
        delete del.dataset.armed;
        del.textContent = 'Delete';
      });
      this.list.appendChild(h('li', { 'data-project-id': p.id },
        open,
        h('span', { class: 'badge state', 'data-state': p.state }, p.state),
        h('span', { class: 'muted small' }, p.session_id ? 'has session' : 'new'),
        del));
    }
  }

  pathOf(id: string): string | undefined {
    return this.paths.get(id);
  }

  private async create(): Promise<void> {
    const path = this.path.value.trim();
    if (!path) return;
    try {
      const r = await this.conn.request('project_create', undefined, { path });
      this.path.value = '';
      this.hide();
      this.open(r.data.id);
    } catch (e) {
      this.show(e);
    }
  }

  private async remove(id: string): Promise<void> {
    try {
      await this.conn.request('project_delete', id);
      this.hide();
    } catch (e) {
      this.show(e);
    }
    await this.refresh();
  }

  private show(e: unknown): void {
    clear(this.error);
    if (e instanceof RequestError) this.error.append(h('strong', null, e.code), ' ', e.message);
    else this.error.append(e instanceof Error ? e.message : String(e));
    this.error.hidden = false;
  }

  private hide(): void {
    this.error.hidden = true;
  }
}
