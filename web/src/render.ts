// Turns one history entry (or the live broadcast that carries it) into an element for people.
// Every entry with a seq gets an element with data-seq, even kinds that are only visible with
// "Raw JSON" on, so the stream holds each seq exactly once.
import { h, append, json, fmtDuration } from './dom';
import { renderMarkdown } from './markdown';

export interface Item {
  seq: number;
  timestamp?: string;
  direction: 'client' | 'claude' | 'server';
  message: any;  // client: {type: execute, data}; claude: the CLI line; server: {type, data}
}

// What an entry's rendering needs to know about this tab: whether a `by` (who sent a prompt,
// who stopped a run) is this tab's own connection.
export interface RenderContext {
  isMine(by: any): boolean;
  // A prompt's attachment references → their thumbnails (fetched from the server).
  attachments?(refs: any[]): Node;
}

export function renderItem(item: Item, raw: boolean, ctx: RenderContext): HTMLElement {
  const body = renderBody(item, ctx);
  const el = h('article', { class: `item ${body.cls}`, 'data-seq': item.seq, 'data-kind': body.kind });
  if (item.timestamp) el.title = `#${item.seq} · ${new Date(item.timestamp).toLocaleString()}`;
  append(el, body.node);
  if (raw) addRaw(el, item);
  rawSource.set(el, item);
  return el;
}

const rawSource = new WeakMap<HTMLElement, Item>();

export function setRaw(el: HTMLElement, raw: boolean): void {
  const existing = el.querySelector(':scope > pre.raw');
  if (!raw) existing?.remove();
  else if (!existing) {
    const item = rawSource.get(el);
    if (item) addRaw(el, item);
  }
}

function addRaw(el: HTMLElement, item: Item): void {
  el.appendChild(h('pre', { class: 'raw', 'aria-label': 'raw JSON' }, json(item)));
}

interface Body {
  kind: string;
  cls: string;
  node: Node | null;
}

function renderBody(item: Item, ctx: RenderContext): Body {
  const m = item.message ?? {};
  if (item.direction === 'client') {
    if (m.type === 'execute') return { kind: 'prompt', cls: 'prompt', node: prompt(m.data ?? {}, m.by, ctx) };
    return minor('client', m);
  }
  if (item.direction === 'claude') return claude(m);
  return server(m, ctx);
}

// "You" for this tab's own connection, else the client's name.
export function whoText(by: any, ctx: RenderContext): string {
  if (!by || typeof by !== 'object') return 'someone';
  if (by.type === 'server') return 'the server';
  if (ctx.isMine(by)) return 'You';
  return typeof by.client_name === 'string' && by.client_name ? by.client_name : 'another client';
}

function minor(kind: string, m: any): Body {
  return { kind, cls: 'minor', node: h('span', { class: 'muted' }, String(m?.type ?? kind)) };
}

function prompt(data: any, by: any, ctx: RenderContext): Node {
  const opts = data.options && typeof data.options === 'object'
    ? Object.entries(data.options).filter(([, v]) => v !== null && v !== undefined)
    : [];
  return h('div', null,
    // Entries written before prompts carried `by` name nobody.
    h('div', { class: 'who' }, by ? whoText(by, ctx) : 'Prompt'),
    h('div', { class: 'prompt-text' }, String(data.prompt ?? '')),
    Array.isArray(data.attachments) && data.attachments.length > 0 && ctx.attachments?.(data.attachments),
    opts.length > 0 && h('div', { class: 'muted small' },
      opts.map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' · ')));
}

function claude(m: any): Body {
  switch (m.type) {
    case 'system':
      if (m.subtype === 'init') {
        return {
          kind: 'init', cls: 'meta',
          node: h('span', { class: 'muted small' }, `Session ${short(m.session_id)} · ${m.model ?? 'model ?'} · ${m.permissionMode ?? ''}`),
        };
      }
      return minor('system', m);
    case 'assistant':
      return { kind: 'assistant', cls: 'assistant', node: assistant(m.message?.content) };
    case 'user':
      return user(m);
    case 'result': {
      const cls = stoppedTurn(m) ? 'result stopped' : m.is_error ? 'result error' : 'result';
      return { kind: 'result', cls, node: result(m) };
    }
    case 'raw':
      return { kind: 'raw', cls: 'rawline', node: h('pre', { class: 'plain' }, String(m.text ?? '')) };
    case 'oversized_line':
      return { kind: 'oversized', cls: 'error', node: h('span', null, `A CLI line of ${m.bytes} bytes was dropped (limit ${m.limit}).`) };
    default:
      return minor(String(m.type ?? 'claude'), m);
  }
}

function assistant(content: unknown): Node {
  const wrap = h('div');
  if (!Array.isArray(content)) return wrap;
  for (const block of content) {
    if (block?.type === 'text') {
      wrap.appendChild(renderMarkdown(String(block.text ?? '')));
    } else if (block?.type === 'tool_use') {
      wrap.appendChild(h('div', { class: 'tool-use' },
        h('div', null, h('span', { class: 'badge' }, 'tool'), ' ', h('strong', null, String(block.name ?? '?'))),
        toolInput(block.input)));
    } else if (block?.type === 'thinking') {
      wrap.appendChild(h('details', { class: 'thinking' }, h('summary', null, 'Thinking'),
        h('div', { class: 'prompt-text' }, String(block.thinking ?? ''))));
    }
  }
  return wrap;
}

function toolInput(input: any): Node {
  if (input && typeof input === 'object' && typeof input.command === 'string') {
    return h('div', null,
      h('pre', { class: 'code' }, h('code', null, input.command)),
      typeof input.description === 'string' && h('div', { class: 'muted small' }, input.description));
  }
  return h('pre', { class: 'code' }, h('code', null, json(input)));
}

function user(m: any): Body {
  const content = m.message?.content;
  const wrap = h('div');
  let error = false;
  if (typeof content === 'string') {
    wrap.appendChild(h('div', { class: 'muted' }, content));
  } else if (Array.isArray(content)) {
    for (const block of content) {
      if (block?.type === 'tool_result') {
        error ||= !!block.is_error;
        const text = Array.isArray(block.content)
          ? block.content.map((c: any) => (c?.type === 'text' ? String(c.text) : json(c))).join('\n')
          : String(block.content ?? '');
        wrap.appendChild(h('details', { class: block.is_error ? 'tool-result error' : 'tool-result' },
          h('summary', null, block.is_error ? 'Tool error' : 'Tool result', h('span', { class: 'muted small' }, ` · ${text.split('\n')[0].slice(0, 80)}`)),
          h('pre', { class: 'plain' }, text)));
      } else if (block?.type === 'text') {
        wrap.appendChild(h('div', { class: 'muted' }, String(block.text ?? '')));
      }
    }
  }
  return { kind: 'user', cls: error ? 'tool error' : 'tool', node: wrap };
}

// A turn ended by an interrupt: the CLI marks its result an error ("error_during_execution")
// with terminal_reason "aborted_streaming" or "aborted_tools". It is a stop, not a failure.
function stoppedTurn(m: any): boolean {
  return typeof m.terminal_reason === 'string' && m.terminal_reason.startsWith('aborted');
}

// The CLI's own diagnostics ("[ede_diagnostic] result_type=user …") mean nothing to a person:
// they stay behind "Details".
const DIAGNOSTIC = /^\[[a-z_]+_diagnostic\]/;

function result(m: any): Node {
  const stopped = stoppedTurn(m);
  const parts: string[] = [stopped ? 'Stopped' : m.is_error ? `Failed (${m.subtype ?? 'error'})` : 'Done'];
  if (typeof m.total_cost_usd === 'number') parts.push(`$${m.total_cost_usd.toFixed(4)}`);
  if (typeof m.duration_ms === 'number') parts.push(fmtDuration(m.duration_ms));
  if (typeof m.num_turns === 'number') parts.push(`${m.num_turns} turn${m.num_turns === 1 ? '' : 's'}`);
  const errors: string[] = Array.isArray(m.errors) ? m.errors.map(String) : [];
  const hidden = errors.filter((e) => stopped || DIAGNOSTIC.test(e));
  const shown = errors.filter((e) => !hidden.includes(e));
  if (stopped && typeof m.result === 'string' && m.result) hidden.unshift(m.result);
  return h('div', null, h('span', { class: 'result-line' }, parts.join(' · ')),
    m.is_error && !stopped && typeof m.result === 'string' && h('div', null, m.result),
    shown.length > 0 && h('div', null, shown.join('\n')),
    hidden.length > 0 && h('details', { class: 'diagnostic' }, h('summary', null, 'Details'),
      h('pre', { class: 'plain' }, hidden.join('\n'))));
}

function server(m: any, ctx: RenderContext): Body {
  const d = m.data ?? {};
  switch (m.type) {
    case 'project_state':
      return projectState(d, ctx);
    case 'run_stopping':
      return {
        kind: 'stopping', cls: 'meta',
        node: h('span', { class: 'muted small' }, `Stopping… (${d.how === 'kill' ? 'kill' : 'interrupt'} asked by ${whoText(d.by, ctx)})`),
      };
    case 'error': {
      // A failed run's stderr tail (EXECUTION_FAILED details.stderr) is what says why.
      const stderr = typeof d.details?.stderr === 'string' ? d.details.stderr.trimEnd() : '';
      return {
        kind: 'error', cls: 'error',
        node: h('div', null, h('strong', null, String(d.code ?? 'ERROR')), ' ', String(d.message ?? ''),
          stderr && h('div', { class: 'small' }, 'The CLI\'s last output on stderr:'),
          stderr && h('pre', { class: 'plain stderr' }, stderr)),
      };
    }
    case 'session_reset':
      return { kind: 'session', cls: 'meta', node: h('span', { class: 'muted small' }, 'New session started') };
    case 'permission_request':
      return {
        kind: 'permission', cls: 'meta',
        node: h('span', { class: 'muted small' }, `Permission asked: ${d.display_name ?? d.tool_name} ${summarize(d.input)}`),
      };
    case 'permission_resolved':
      return {
        kind: 'permission', cls: d.decision === 'allow' ? 'meta' : 'meta warn',
        node: h('span', { class: 'muted small' }, `Permission ${d.decision} (${d.reason}) ${byText(d.by)}`),
      };
    case 'prompt_queued':
      return { kind: 'queued', cls: 'meta', node: h('span', { class: 'muted small' }, `Queued: ${d.prompt}`) };
    case 'prompt_dequeued':
      return { kind: 'queued', cls: 'meta', node: h('span', { class: 'muted small' }, `Queued prompt ${d.reason}`) };
    case 'budget_exceeded':
      return { kind: 'budget', cls: 'error', node: h('div', null, h('strong', null, 'Budget reached'), ' ', String(d.message ?? '')) };
    case 'oversized_line':
      return claude(m);
    default:
      return minor(String(m.type ?? 'server'), m);
  }
}

// IDLE says how the run ended (`ended`); interrupted or killed by a client is a stop, not a failure.
function projectState(d: any, ctx: RenderContext): Body {
  const ended = d.ended && typeof d.ended === 'object' ? d.ended : null;
  if (ended && (ended.reason === 'interrupted' || ended.reason === 'killed')) {
    return {
      kind: 'ended', cls: 'meta stopped',
      node: h('span', null, h('strong', null, `Stopped by ${whoText(ended.by, ctx)}`),
        h('span', { class: 'muted small' }, ` · ${ended.reason}`)),
    };
  }
  const how = ended && ended.reason !== 'completed' ? ` · ${String(ended.reason).replace('_', ' ')}` : '';
  return {
    kind: ended ? 'ended' : 'state', cls: 'meta',
    node: h('span', { class: 'muted small' }, `State ${d.state}${d.queue_position ? ` (position ${d.queue_position})` : ''}${how}`),
  };
}

export function byText(by: any): string {
  if (!by || by.type === 'server') return 'by the server';
  return `by ${by.client_name ?? 'client'} #${by.connection_id}`;
}

export function summarize(input: any): string {
  if (input && typeof input === 'object' && typeof input.command === 'string') return input.command;
  const s = JSON.stringify(input ?? {});
  return s.length > 120 ? `${s.slice(0, 117)}…` : s;
}

function short(id: unknown): string {
  return typeof id === 'string' ? id.slice(0, 8) : '?';
}
