// Starts the built server for an end-to-end test: port 0, temp data dir, dev certificate.
// A restart passes the previous server's `dir`, `port` and `token` and stops it with
// `stop({ keepDir: true })`.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function startServer({ serverBinary, fakeClaude, extraArgs = [], env = {},
                                   dir = mkdtempSync(join(tmpdir(), 'pa-e2e-')), port: wantPort = 0,
                                   token = 'e2e-token-' + Math.random().toString(16).slice(2) }) {
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  if (!existsSync(cert)) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
      '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
  }
  const child = spawn(serverBinary, ['--host', '127.0.0.1', '--port', String(wantPort), '--data-dir', join(dir, 'data'),
    '--tls-cert', cert, '--tls-key', key, '--claude-binary', fakeClaude, '--log-format', 'text',
    // The server refuses root without --allow-root; CI containers run tests as root.
    ...(process.getuid() === 0 ? ['--allow-root'] : []), ...extraArgs],
    { env: { ...process.env, PA_AUTH_TOKEN: token, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server did not start:\n' + log.join('\n'))), 30000);
    const onData = (chunk) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        log.push(line);
        const m = /listening on \S+ \(port (\d+)\)/.exec(line);
        if (m) { clearTimeout(timer); resolve(Number(m[1])); }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited ${code}:\n${log.join('\n')}`)); });
  });
  return {
    port, token, dir, log,
    async stop({ keepDir = false } = {}) {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      if (!keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function requireEnv(name) {
  const v = process.env[name];
  if (!v || !existsSync(v)) throw new Error(`${name} must name an existing file (got ${v})`);
  return v;
}
