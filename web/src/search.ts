// Search over every project's history (`search_messages`): a search box above the project
// list, hits newest first with their project and snippet (matches in <mark>, built as text
// nodes: nothing is parsed as HTML), "More" pages with the last hit's cursor, and a click that
// opens the project at the hit (#/p/<id>/seq/<seq>).
import { Connection, RequestError } from './conn';
import { h, clear } from './dom';

interface Hit {
  project_id: string;
  seq: number;
  timestamp: string;
  snippet: string;
  marks: [number, number][];
  cursor: string;
}

// The snippet as text nodes with <mark> around each match ([start, end) in UTF-16 units, as
// JavaScript strings count).
export function snippetNodes(snippet: string, marks: [number, number][]): Node[] {
  const out: Node[] = [];
  let at = 0;
  for (const [start, end] of marks) {
    if (start < at || end <= start || end > snippet.length) continue;  // not as documented: skip
    if (start > at) out.push(document.createTextNode(snippet.slice(at, start)));
    out.push(h('mark', null, snippet.slice(start, end)));
    at = end;
  }
  if (at < snippet.length) out.push(document.createTextNode(snippet.slice(at)));
  return out;
}

export class SearchView {
  readonly el: HTMLElement;
  private input: HTMLInputElement;
  private results: HTMLOListElement;
  private status: HTMLElement;
  private more: HTMLButtonElement;
  private query = '';
  private cursor: string | null = null;

  // `pathOf` names a project by its path when the list knows it.
  constructor(private conn: Connection, private pathOf: (id: string) => string | undefined) {
    this.input = h('input', {
      type: 'search', id: 'search-query', name: 'query', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'Search all history: words, auth*', maxlength: 256, 'aria-label': 'Search all history',
    });
    const form = h('form', { class: 'search row', role: 'search' },
      this.input, h('button', { type: 'submit' }, 'Search'));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.search(this.input.value.trim(), null);
    });
    this.status = h('div', { class: 'muted small', 'aria-live': 'polite' });
    this.results = h('ol', { class: 'search-results', 'aria-label': 'Search results' });
    this.more = h('button', { type: 'button', hidden: true }, 'More results');
    this.more.addEventListener('click', () => void this.search(this.query, this.cursor));
    this.el = h('div', { class: 'search-view' }, form, this.status, this.results, this.more);
  }

  private async search(query: string, before: string | null): Promise<void> {
    if (!query) return;
    if (before === null) {
      this.query = query;
      clear(this.results);
    }
    this.status.textContent = 'Searching…';
    this.more.hidden = true;
    const data: Record<string, unknown> = { query, limit: 20 };
    if (before !== null) data.before = before;
    try {
      const r = await this.conn.request('search_messages', undefined, data);
      const hits = (r.data.hits ?? []) as Hit[];
      for (const hit of hits) this.results.append(this.render(hit));
      this.cursor = hits.length ? hits[hits.length - 1].cursor : null;
      this.more.hidden = !(r.data.has_more && this.cursor);
      const count = this.results.childElementCount;
      this.status.textContent = (count === 0 ? 'No matches.' : `${count} match${count === 1 ? '' : 'es'}${r.data.has_more ? ' so far' : ''}.`) +
        (r.data.indexing ? ' The index is still catching up: some may be missing.' : '');
    } catch (e) {
      this.status.textContent = e instanceof RequestError ? `${e.code}: ${e.message}` : String(e);
    }
  }

  private render(hit: Hit): HTMLElement {
    const href = `#/p/${encodeURIComponent(hit.project_id)}/seq/${hit.seq}`;
    const when = new Date(hit.timestamp);
    return h('li', { 'data-project-id': hit.project_id, 'data-seq': hit.seq },
      h('a', { href, class: 'hit' },
        h('span', { class: 'mono small' }, this.pathOf(hit.project_id) ?? hit.project_id),
        ' ',
        h('time', { datetime: hit.timestamp, class: 'muted small' }, isNaN(when.getTime()) ? hit.timestamp : when.toLocaleString()),
        h('span', { class: 'snippet' }, ...snippetNodes(hit.snippet, hit.marks ?? []))));
  }
}
