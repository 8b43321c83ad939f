// A pairing link (`/?pair=<code>`, from `pocket-agent-server pair` or Devices → Add a device):
// the code is taken out of the address bar at once (it is a credential until used), then
// redeemed with POST /pair for this device's own token. Each refusal is said in words with the
// next step (docs/protocol.md, Pairing a device).
export interface Paired {
  device_id: string;
  token: string;
  role: string;
  name: string;
}

export function takePairCode(): string | null {
  const url = new URL(location.href);
  const code = url.searchParams.get('pair');
  if (code === null) return null;
  url.searchParams.delete('pair');
  history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  return code.trim() || null;
}

// Why the server refused, by its `reason` (and status when the body has none).
function refusal(status: number, reason: string, retryAfter: string | null): string {
  switch (reason) {
    case 'unknown_code':
      return 'This pairing code is not known: open the whole link again, or ask an admin for a new one.';
    case 'used':
      return 'This pairing link was used already: each works once. Ask an admin for a new one.';
    case 'expired':
      return 'This pairing link expired (they last 10 minutes): ask an admin for a new one.';
    case 'too_many_attempts':
      return `Too many wrong pairing codes from this address: try again in ${retryAfter ?? '60'} s.`;
    case 'too_many_devices':
      return 'The server has as many paired devices as it allows: an admin must revoke one, then make a new link.';
    case 'origin_not_allowed':
      return `The server does not accept pairing from pages at ${location.origin}: open the link at the address it names.`;
    case 'storage_failed':
      return 'The server could not save the new device (its data directory cannot be written): tell an admin, then use a new link.';
    default:
      return `Pairing failed (HTTP ${status}${reason ? `, ${reason}` : ''}): ask an admin for a new link.`;
  }
}

export async function redeemPairing(code: string): Promise<Paired> {
  let res: Response;
  try {
    res = await fetch('/pair', {
      method: 'POST', cache: 'no-store', credentials: 'omit',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ code }),
    });
  } catch {
    throw new Error(`No answer from ${location.host}: is the server running and reachable from this device? Open the pairing link again.`);
  }
  const body = await res.json().catch(() => null);
  if (res.ok && typeof body?.token === 'string' && body.token) return body as Paired;
  throw new Error(refusal(res.status, typeof body?.reason === 'string' ? body.reason : '', res.headers.get('Retry-After')));
}
