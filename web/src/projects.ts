// The project list: state of each project, create by path, delete (with a confirming second
// click), open. In cluster mode (issue 20) each project shows its node, and the form offers the
// node to create it on.
import { Connection, RequestError } from './conn';
import { h, clear } from './dom';
import type { ProjectInfo } from './project';

export class ProjectsView {
  readonly el: HTMLElement;
  private list: HTMLElement;
  private error: HTMLElement;
  private path: HTMLInputElement;
  private node: HTMLSelectElement;  // cluster mode: where to create (hidden on a single host)
  private paths = new Map<string, string>();  // id -> path, as last listed (search hits name them)
  private nodes = new Map<string, string>();  // id -> node (cluster mode), as listed or created

  constructor(private conn: Connection, private open: (id: string) => void) {
    this.path = h('input', {
      id: 'new-path', name: 'path', required: true, autocomplete: 'off', spellcheck: 'false',
      placeholder: '/home/me/code/my-project', class: 'mono',
    });
    this.node = h('select', { id: 'new-node', name: 'node', 'aria-label': 'Node', hidden: true });
    const form = h('form', { class: 'create', 'data-needs': 'project_create' },
      h('label', { for: 'new-path' }, 'New project (absolute path of an existing directory)'),
      h('div', { class: 'row' }, this.path, this.node, h('button', { type: 'submit', class: 'primary' }, 'Create')));
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
      await this.refreshNodes();
    } catch (e) {
      this.show(e);
    }
  }

  private render(projects: ProjectInfo[]): void {
    clear(this.list);
    this.paths = new Map(projects.map((p) => [p.id, p.path]));
    for (const p of projects) if (p.node) this.nodes.set(p.id, p.node);
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
        p.node ? h('span', { class: 'badge node', 'data-testid': 'project-node' }, p.node) : null,
        h('span', { class: 'muted small' }, p.session_id ? 'has session' : 'new'),
        del));
    }
  }

  // The nodes a project may be created on (cluster mode): health.cluster lists them; this node
  // first (the default). A single host has none and the select stays hidden.
  private async refreshNodes(): Promise<void> {
    const r = await this.conn.request('health');
    const cluster = r.data.cluster as { node: string; nodes: { name: string; state: string }[] } | null;
    const chosen = this.node.value;
    clear(this.node);
    if (!cluster) {
      this.node.hidden = true;
      return;
    }
    const names = [cluster.node, ...cluster.nodes.filter((n) => n.state === 'up' && n.name !== cluster.node).map((n) => n.name)];
    for (const name of names) {
      this.node.appendChild(h('option', { value: name }, name === cluster.node ? `${name} (this node)` : name));
    }
    if (names.includes(chosen)) this.node.value = chosen;
    this.node.hidden = false;
  }

  // The node that owns a project (cluster mode), when known here.
  nodeOf(id: string): string | undefined {
    return this.nodes.get(id);
  }

  pathOf(id: string): string | undefined {
    return this.paths.get(id);
  }

  private async create(): Promise<void> {
    const path = this.path.value.trim();
    if (!path) return;
    try {
      const data: Record<string, unknown> = { path };
      if (!this.node.hidden && this.node.value) data.node = this.node.value;
      const r = await this.conn.request('project_create', undefined, data);
      if (typeof data.node === 'string') this.nodes.set(r.data.id, data.node);
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
