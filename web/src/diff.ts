// A unified diff as elements: one block per file (header, then each hunk in its own
// horizontally scrollable box, or wrapped), added lines green, removed lines red.
import { h } from './dom';

export interface DiffFile {
  path: string;
  header: string[];
  hunks: { title: string; lines: string[] }[];
}

// Splits `text` (git's unified diff, or the server's history diff) into files and hunks.
export function parseDiff(text: string): DiffFile[] {
  const files: DiffFile[] = [];
  let file: DiffFile | null = null;
  let hunk: { title: string; lines: string[] } | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('diff --')) {
      const m = / b\/(.*)$/.exec(line);
      file = { path: m ? m[1] : line, header: [line], hunks: [] };
      files.push(file);
      hunk = null;
    } else if (!file) {
      continue;
    } else if (line.startsWith('@@')) {
      hunk = { title: line, lines: [] };
      file.hunks.push(hunk);
    } else if (hunk) {
      if (line !== '' || hunk.lines.length > 0) hunk.lines.push(line);
    } else {
      file.header.push(line);
    }
  }
  for (const f of files) for (const k of f.hunks) {
    while (k.lines.length && k.lines[k.lines.length - 1] === '') k.lines.pop();
  }
  return files;
}

function lineClass(line: string): string {
  if (line.startsWith('+')) return 'dl add';
  if (line.startsWith('-')) return 'dl del';
  if (line.startsWith('\\')) return 'dl note';
  return 'dl';
}

export function renderDiff(text: string, wrap: boolean): HTMLElement {
  const files = parseDiff(text);
  const el = h('div', { class: wrap ? 'diff wrap' : 'diff', 'data-testid': 'diff' });
  if (files.length === 0) {
    el.append(h('p', { class: 'muted' }, 'No differences.'));
    return el;
  }
  for (const f of files) {
    const notes = f.header.filter((l) => /^(new file|deleted file|rename|Binary|similarity|\(untracked)/.test(l));
    el.append(h('section', { class: 'diff-file', 'data-path': f.path },
      h('h4', { class: 'mono' }, f.path),
      ...notes.map((n) => h('div', { class: 'muted small' }, n)),
      ...f.hunks.map((k) => h('div', { class: 'hunk' },
        h('div', { class: 'dl hunk-title' }, k.title),
        ...k.lines.map((l) => h('div', { class: lineClass(l) }, l || ' '))))));
  }
  return el;
}
