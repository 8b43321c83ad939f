// The Files tab: a directory listing (file_list) and a read-only file view (file_read) with
// syntax highlighting; long files load on in windows ("Load more").
import { Connection, RequestError } from './conn';
import { h, clear, append } from './dom';
import { highlighted, languageFor } from './highlight';

function parent(path: string): string {
  const i = path.lastIndexOf('/');
  return i > 0 ? path.slice(0, i) : '';
}

function join(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export class FileBrowser {
  readonly el = h('div', { class: 'files', 'data-testid': 'files' });

  constructor(private conn: Connection, private projectId: string) {}

  async showDirectory(path: string): Promise<void> {
    clear(this.el);
    this.el.append(this.crumbs(path, false), h('p', { class: 'muted' }, 'Loading…'));
    try {
      const r = await this.conn.request('file_list', this.projectId, { path });
      const d = r.data;
      const list = h('ul', { class: 'file-list', 'data-testid': 'file-list' });
      if (path) list.append(h('li', null, this.link('..', () => void this.showDirectory(parent(path)))));
      for (const e of d.entries as any[]) {
        const name = String(e.name);
        const target = join(path, name);
        const open = e.kind === 'dir' ? () => void this.showDirectory(target) : () => void this.showFile(target);
        list.append(h('li', { 'data-kind': e.kind },
          this.link(e.kind === 'dir' ? `${name}/` : name, open),
          h('span', { class: 'muted small' }, e.kind === 'file' ? size(Number(e.size)) : e.kind)));
      }
      clear(this.el);
      append(this.el, this.crumbs(path, false), list,
        d.truncated ? h('p', { class: 'muted small' }, 'Only the first entries are listed.') : null);
    } catch (e) {
      this.showError(path, e);
    }
  }

  async showFile(path: string): Promise<void> {
    clear(this.el);
    this.el.append(this.crumbs(path, true), h('p', { class: 'muted' }, 'Loading…'));
    try {
      const r = await this.conn.request('file_read', this.projectId, { path });
      const d = r.data;
      clear(this.el);
      const meta = h('div', { class: 'muted small' }, `${size(Number(d.size))}`, languageFor(path) ? ` · ${languageFor(path)}` : '');
      this.el.append(this.crumbs(path, true), meta);
      if (d.binary) {
        this.el.append(h('p', { class: 'muted', 'data-testid': 'binary' }, 'Binary file: not shown.'));
        return;
      }
      let text = String(d.content ?? '');
      const pre = h('pre', { class: 'code file-code', 'data-testid': 'file-content' }, highlighted(text, languageFor(path)));
      this.el.append(pre);
      let next = Number(d.offset) + Number(d.length);
      if (!d.eof) {
        const more = h('button', { type: 'button', class: 'small' }, 'Load more');
        more.addEventListener('click', async () => {
          more.disabled = true;
          try {
            const m = await this.conn.request('file_read', this.projectId, { path, offset: next });
            if (m.data.binary) return;
            text += String(m.data.content ?? '');
            next = Number(m.data.offset) + Number(m.data.length);
            pre.replaceChildren(highlighted(text, languageFor(path)));
            if (m.data.eof) more.remove();
          } finally {
            more.disabled = false;
          }
        });
        this.el.append(more);
      }
    } catch (e) {
      this.showError(path, e);
    }
  }

  private crumbs(path: string, isFile: boolean): HTMLElement {
    const nav = h('nav', { class: 'crumbs mono small', 'aria-label': 'Path' });
    nav.append(this.link('project', () => void this.showDirectory('')));
    const parts = path ? path.split('/') : [];
    parts.forEach((part, i) => {
      const sub = parts.slice(0, i + 1).join('/');
      const last = i === parts.length - 1;
      nav.append(' / ', last && isFile ? h('strong', null, part) : this.link(part, () => void this.showDirectory(sub)));
    });
    return nav;
  }

  private link(text: string, onClick: () => void): HTMLElement {
    const b = h('button', { type: 'button', class: 'link' }, text);
    b.addEventListener('click', onClick);
    return b;
  }

  private showError(path: string, e: unknown): void {
    clear(this.el);
    const message = e instanceof RequestError ? `${e.code}: ${e.message}` : String(e instanceof Error ? e.message : e);
    this.el.append(this.crumbs(path, false), h('div', { class: 'notice', role: 'alert' }, message));
  }
}
