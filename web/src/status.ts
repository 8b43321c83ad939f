// The status panel: the connection, `health` (asked on connect and every minute) and the
// `server_stats` broadcasts.
import { Connection, Failure, Status } from './conn';
import { h, clear, fmtUptime, fmtDuration } from './dom';
import { spendText } from './spend';

export class StatusPanel {
  readonly pill: HTMLElement;
  readonly panel: HTMLDetailsElement;
  private healthEl: HTMLElement;
  private statsEl: HTMLElement;
  private timer: number | undefined;

  constructor(private conn: Connection) {
    this.pill = h('span', { class: 'pill', role: 'status', 'aria-live': 'polite', 'data-testid': 'conn-status' });
    this.healthEl = h('dl', { class: 'kv' });
    this.statsEl = h('dl', { class: 'kv' }, h('dt', null, 'Stats'), h('dd', null, 'every 10 s…'));
    this.panel = h('details', { class: 'status-panel' },
      h('summary', null, 'Server'),
      h('div', { class: 'panel-body' }, h('h3', null, 'Health'), this.healthEl, h('h3', null, 'Activity'), this.statsEl));
    conn.onStatus.add((s) => this.showStatus(s));
    conn.onOpen.add(() => void this.refresh());
    conn.onMessage.add((m) => {
      if (m.type === 'server_stats') this.showStats(m.data ?? {});
    });
    this.timer = window.setInterval(() => void this.refresh(), 60000);
    this.showStatus(conn.status);
  }

  destroy(): void {
    window.clearInterval(this.timer);
  }

  private async refresh(): Promise<void> {
    if (!this.conn.isOpen) return;
    try {
      const r = await this.conn.request('health');
      this.showHealth(r.data ?? {});
    } catch {
      // The connection dropped; the status pill says so.
    }
  }

  private showStatus(s: Status): void {
    let text = '';
    switch (s.kind) {
      case 'open': text = 'connected'; break;
      case 'connecting': text = s.attempt > 1 ? `reconnecting (attempt ${s.attempt})` : 'connecting'; break;
      case 'waiting': text = `${FAILURE_WORDS[s.failure.kind]}, retrying in ${Math.max(1, Math.round((s.retryAt - Date.now()) / 1000))} s`; break;
      case 'refused': text = FAILURE_WORDS[s.failure.kind]; break;
      case 'stopped': text = 'disconnected'; break;
    }
    this.pill.textContent = text;
    this.pill.dataset.state = s.kind;
  }

  private showHealth(d: any): void {
    clear(this.healthEl);
    const rows: [string, string][] = [
      ['Status', String(d.status ?? '?')],
      ['Version', String(d.version ?? '?')],
      ['Uptime', typeof d.uptime === 'number' ? fmtUptime(d.uptime) : '?'],
      ['Connections', `${d.connections?.active ?? '?'} / ${d.connections?.limit ?? '?'}`],
      ['Projects', `${d.projects?.count ?? '?'} (${d.projects?.executing ?? 0} running)`],
      ['Claude CLI', d.claude?.available ? String(d.claude.version) : `unavailable${d.claude?.error ? `: ${d.claude.error}` : ''}`],
      ['CPU / memory', `${num(d.resources?.cpu_percent)} % · ${num(d.resources?.memory_mb)} MB`],
      ['Disk free', `${num(d.resources?.disk_free_gb)} GB`],
    ];
    if (d.today) rows.push(['Spend today', spendText(d.today)]);
    for (const [k, v] of rows) this.healthEl.append(h('dt', null, k), h('dd', { 'data-key': k }, v));
    this.healthEl.dataset.status = String(d.status ?? '');
  }

  private showStats(d: any): void {
    clear(this.statsEl);
    const e = d.executions ?? {};
    const rows: [string, string][] = [
      ['Runs', `${e.active ?? 0} active · ${e.queued ?? 0} queued`],
      ['Finished', `${e.total ?? 0} (${e.success ?? 0} ok, ${e.failed ?? 0} failed)`],
      ['Average run', typeof e.avg_duration_ms === 'number' ? fmtDuration(e.avg_duration_ms) : '?'],
      ['Messages', `${num(d.messages?.rate_per_sec)}/s (${d.messages?.sent ?? 0} sent)`],
      ['Connections', String(d.connections ?? '?')],
    ];
    if (d.today) rows.push(['Spend today', spendText(d.today)]);
    for (const [k, v] of rows) this.statsEl.append(h('dt', null, k), h('dd', { 'data-key': k }, v));
  }
}

// The pill's short words for why the connection is down (main.ts says more and what to do).
const FAILURE_WORDS: Record<Failure['kind'], string> = {
  token: 'wrong token',
  revoked: 'device revoked',
  origin: 'origin not allowed',
  locked: 'too many wrong tokens',
  busy: 'server busy',
  shutdown: 'server shutting down',
  unreachable: 'server unreachable',
  lost: 'offline',
};

function num(v: unknown): string {
  return typeof v === 'number' ? String(Math.round(v * 10) / 10) : '?';
}
