// What this connection's role may do, applied to the whole page: the welcome's allowed_messages
// (docs/protocol.md, Devices and roles) turn into `deny-<message>` classes on <html>, and
// style.css hides every control marked `data-needs="<message>"` under its class, and shows the
// `data-unless="<message>"` notes that say why. Classes, not re-rendering: controls made later
// (a permission card, a project row) are hidden as they appear. The server checks regardless;
// this only keeps the console from offering what would be refused.
import type { Connection, Welcome } from './conn';

// The messages the console has controls for (each has rules in style.css).
const GATED = ['execute', 'agent_interrupt', 'agent_kill', 'agent_new_session', 'permission_response',
  'project_create', 'project_delete', 'device_list'] as const;

export function applyAccess(welcome: Welcome | null): void {
  const root = document.documentElement;
  for (const type of GATED) {
    const denied = welcome?.allowed ? !welcome.allowed.has(type) : false;
    root.classList.toggle(`deny-${type}`, denied);
  }
  if (welcome?.role) root.dataset.role = welcome.role;
  else delete root.dataset.role;
}

// Follows the connection's welcome; returns the function that stops following (and forgets the
// role, for the next sign-in).
export function followAccess(conn: Connection): () => void {
  const apply = (w: Welcome) => applyAccess(w);
  conn.onWelcome.add(apply);
  applyAccess(conn.welcome);
  return () => {
    conn.onWelcome.delete(apply);
    applyAccess(null);
  };
}
