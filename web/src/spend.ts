// Spend (issue 19): the figures a project's runs cost (`totals`, `today` in project_state) and the
// server's day (`today` in health and server_stats), as short text.
import { h } from './dom';

export interface Totals {
  cost_usd?: number;
  input_tokens?: number;
  output_tokens?: number;
  cache_read_tokens?: number;
  cache_creation_tokens?: number;
  runs?: number;
}

// "$0.0123": cents are too coarse for a turn that costs a fraction of one.
export function dollars(usd: unknown): string {
  return typeof usd === 'number' && Number.isFinite(usd) ? `$${usd.toFixed(4)}` : '$?';
}

// "$0.2500 · 150 in / 50 out · 2 runs" (cache tokens when there are any).
export function spendText(t: Totals | null | undefined): string {
  if (!t || typeof t !== 'object') return '$?';
  const parts = [dollars(t.cost_usd), `${count(t.input_tokens)} in / ${count(t.output_tokens)} out`];
  const cache = (t.cache_read_tokens ?? 0) + (t.cache_creation_tokens ?? 0);
  if (cache > 0) parts.push(`${count(t.cache_read_tokens)} cache read / ${count(t.cache_creation_tokens)} written`);
  parts.push(`${count(t.runs)} run${t.runs === 1 ? '' : 's'}`);
  return parts.join(' · ');
}

// The project bar's figures: today's cost, with both days' details on hover.
export function spendBadge(): HTMLElement {
  return h('span', { class: 'badge spend', 'data-testid': 'project-spend' });
}

export function showProjectSpend(el: HTMLElement, info: { totals?: Totals; today?: Totals }): void {
  if (!info.totals) return;  // a server that keeps no totals
  el.textContent = `today ${dollars(info.today?.cost_usd)} · total ${dollars(info.totals.cost_usd)}`;
  el.title = `Today (UTC): ${spendText(info.today)}\nSince the project was created: ${spendText(info.totals)}`;
  el.dataset.today = String(info.today?.cost_usd ?? '');
  el.dataset.total = String(info.totals.cost_usd ?? '');
}

function count(n: unknown): string {
  return typeof n === 'number' ? n.toLocaleString('en-US') : '0';
}
