// A small Markdown subset rendered straight to DOM nodes (never through innerHTML): fenced and
// indented code, headings, lists, block quotes, paragraphs; inline code, bold, italic and links.
// Links are kept only for http(s) URLs and open with rel="noopener noreferrer".
import { h, append } from './dom';

export function renderMarkdown(text: string): HTMLElement {
  const root = h('div', { class: 'md' });
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = /^\s*(```+|~~~+)\s*([\w+#.-]*)/.exec(line);
    if (fence) {
      const body: string[] = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++;  // the closing fence (or the end)
      const code = h('code', null, body.join('\n'));
      if (fence[2]) code.dataset.lang = fence[2];
      root.appendChild(h('pre', { class: 'code' }, code));
      continue;
    }
    if (/^\s*$/.test(line)) {
      i++;
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      const level = Math.min(heading[1].length + 2, 6);  // h3..h6: the page owns h1/h2
      const el = document.createElement(`h${level}`);
      inline(el, heading[2]);
      root.appendChild(el);
      i++;
      continue;
    }
    if (/^\s*>/.test(line)) {
      const quoted: string[] = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) quoted.push(lines[i++].replace(/^\s*>\s?/, ''));
      root.appendChild(h('blockquote', null, renderMarkdown(quoted.join('\n'))));
      continue;
    }
    const item = /^(\s*)([-*+]|\d{1,9}[.)])\s+/.exec(line);
    if (item) {
      const ordered = /\d/.test(item[2]);
      const list = h(ordered ? 'ol' : 'ul');
      if (ordered) {
        const start = parseInt(item[2], 10);
        if (start !== 1) list.setAttribute('start', String(start));
      }
      while (i < lines.length) {
        const m = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/.exec(lines[i]);
        if (!m || /\d/.test(m[2]) !== ordered) break;
        const li = h('li');
        const parts = [m[3]];
        i++;
        // Continuation lines indented under the item belong to it.
        while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !/^\s*([-*+]|\d{1,9}[.)])\s+/.test(lines[i]))
          parts.push(lines[i++].trim());
        inline(li, parts.join(' '));
        list.appendChild(li);
      }
      root.appendChild(list);
      continue;
    }
    if (/^ {4,}\S/.test(line)) {
      const body: string[] = [];
      while (i < lines.length && (/^ {4,}/.test(lines[i]) || lines[i].trim() === '')) body.push(lines[i++].slice(4));
      while (body.length && body[body.length - 1].trim() === '') body.pop();
      root.appendChild(h('pre', { class: 'code' }, h('code', null, body.join('\n'))));
      continue;
    }
    const para: string[] = [];
    while (i < lines.length && lines[i].trim() !== '' && !isBlockStart(lines[i])) para.push(lines[i++]);
    if (para.length === 0) para.push(lines[i++]);
    const p = h('p');
    para.forEach((l, n) => {
      if (n > 0) p.appendChild(h('br'));
      inline(p, l);
    });
    root.appendChild(p);
  }
  return root;
}

function isBlockStart(line: string): boolean {
  return /^\s*(```|~~~)|^#{1,6}\s|^\s*>|^\s*([-*+]|\d{1,9}[.)])\s+/.test(line);
}

// Inline spans, leftmost first; bold/italic/link text is parsed recursively.
const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\[([^\]\n]+)\]\(([^()\s]+)\)|\*\*([^*\n]+?)\*\*|__([^_\n]+?)__|\*([^*\s][^*\n]*?)\*|(?<![\w])_([^_\s][^_\n]*?)_(?![\w])|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/;

function inline(parent: Node, text: string): void {
  let rest = text;
  while (rest.length > 0) {
    const m = INLINE.exec(rest);
    if (!m) {
      append(parent, rest);
      return;
    }
    if (m.index > 0) append(parent, rest.slice(0, m.index));
    if (m[1] !== undefined) {
      parent.appendChild(h('code', null, m[2].replace(/^ (.*) $/, '$1')));
    } else if (m[3] !== undefined) {
      parent.appendChild(link(m[4], m[3]));
    } else if (m[5] !== undefined || m[6] !== undefined) {
      const strong = h('strong');
      inline(strong, m[5] ?? m[6]);
      parent.appendChild(strong);
    } else if (m[7] !== undefined || m[8] !== undefined) {
      const em = h('em');
      inline(em, m[7] ?? m[8]);
      parent.appendChild(em);
    } else if (m[9] !== undefined) {
      parent.appendChild(link(m[9], null));
    }
    rest = rest.slice(m.index + m[0].length);
  }
}

// Only absolute http(s) URLs become links; anything else (javascript:, data:, relative) stays text.
function link(href: string, label: string | null): Node {
  let url: URL | null = null;
  try {
    url = new URL(href);
  } catch {
    url = null;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    return document.createTextNode(label === null ? href : `[${label}](${href})`);
  }
  const a = h('a', { href: url.href, target: '_blank', rel: 'noopener noreferrer' });
  if (label === null) append(a, href);
  else inline(a, label);
  return a;
}
