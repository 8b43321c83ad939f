// Syntax highlighting for the file viewer: highlight.js grammars through lowlight, which returns
// a syntax tree instead of HTML, so the code becomes text nodes in spans (the console never
// parses HTML: no innerHTML). Only a few common languages are registered to keep the bundle small.
import { createLowlight } from 'lowlight';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import css from 'highlight.js/lib/languages/css';
import go from 'highlight.js/lib/languages/go';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import markdown from 'highlight.js/lib/languages/markdown';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';
import 'highlight.js/styles/github.css';
import { h } from './dom';

const lowlight = createLowlight({ bash, c, cpp, css, go, java, javascript, json, markdown, python, rust, typescript, xml, yaml });

const BY_EXTENSION: Record<string, string> = {
  sh: 'bash', bash: 'bash', zsh: 'bash', c: 'c', h: 'c', cc: 'cpp', cpp: 'cpp', cxx: 'cpp', hpp: 'cpp',
  hh: 'cpp', css: 'css', go: 'go', java: 'java', js: 'javascript', mjs: 'javascript', cjs: 'javascript',
  jsx: 'javascript', json: 'json', md: 'markdown', py: 'python', rs: 'rust', ts: 'typescript',
  tsx: 'typescript', html: 'xml', xml: 'xml', svg: 'xml', yml: 'yaml', yaml: 'yaml',
};

// The language registered for a file name, or null (shown as plain text).
export function languageFor(path: string): string | null {
  const name = path.split('/').pop() ?? '';
  if (name === 'Makefile' || name === 'Dockerfile') return 'bash';
  const ext = name.includes('.') ? name.split('.').pop()!.toLowerCase() : '';
  return BY_EXTENSION[ext] ?? null;
}

interface HastNode {
  type: string;
  value?: string;
  properties?: { className?: string[] };
  children?: HastNode[];
}

function toDom(node: HastNode): Node {
  if (node.type === 'text') return document.createTextNode(node.value ?? '');
  const span = h('span', { class: (node.properties?.className ?? []).join(' ') });
  for (const child of node.children ?? []) span.appendChild(toDom(child));
  return span;
}

// `code` as highlighted nodes inside a <code class="hljs">.
export function highlighted(code: string, language: string | null): HTMLElement {
  const el = h('code', { class: 'hljs', 'data-language': language ?? 'text' });
  if (!language) {
    el.textContent = code;
    return el;
  }
  const tree = lowlight.highlight(language, code) as unknown as HastNode;
  for (const child of tree.children ?? []) el.appendChild(toDom(child));
  return el;
}
