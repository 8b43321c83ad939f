// Sharing the token between tabs of the console. The token is kept per tab (sessionStorage)
// unless "remember" was ticked, so a project link opened in a new tab would ask for it again.
// A new tab without a token asks the console's other open tabs over a BroadcastChannel (same
// origin only: other sites cannot listen) and takes the token of one that is connected with it.
const CHANNEL = 'pocket-agent.tabs';
const WAIT_MS = 400;  // how long a new tab waits for an answer before showing the login form

interface Ask { type: 'token?'; nonce: string }
interface Answer { type: 'token'; nonce: string; token: string }

export function askOtherTabs(): Promise<string | null> {
  if (typeof BroadcastChannel === 'undefined') return Promise.resolve(null);
  const channel = new BroadcastChannel(CHANNEL);
  // Only matches answers to this ask (crypto.randomUUID needs a secure context: plain http has none).
  const nonce = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  return new Promise((resolve) => {
    const done = (token: string | null) => {
      window.clearTimeout(timer);
      channel.close();
      resolve(token);
    };
    const timer = window.setTimeout(() => done(null), WAIT_MS);
    channel.onmessage = (ev: MessageEvent<Answer>) => {
      const m = ev.data;
      if (m?.type === 'token' && m.nonce === nonce && typeof m.token === 'string' && m.token) done(m.token);
    };
    channel.postMessage({ type: 'token?', nonce } satisfies Ask);
  });
}

// Answers other tabs while `usable()` (this tab is connected with the token). Returns the
// function that stops answering (sign-out).
export function answerOtherTabs(token: string, usable: () => boolean): () => void {
  if (typeof BroadcastChannel === 'undefined') return () => {};
  const channel = new BroadcastChannel(CHANNEL);
  channel.onmessage = (ev: MessageEvent<Ask>) => {
    const m = ev.data;
    if (m?.type === 'token?' && typeof m.nonce === 'string' && usable()) {
      channel.postMessage({ type: 'token', nonce: m.nonce, token } satisfies Answer);
    }
  };
  return () => channel.close();
}
