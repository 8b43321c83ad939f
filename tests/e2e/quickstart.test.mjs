// The spec's JavaScript quick start, adapted only to pass the token and trust the test
// certificate, run against the built server with the fake CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startServer, requireEnv } from './server.mjs';

const serverBinary = requireEnv('PA_SERVER_BINARY');
const fakeClaude = requireEnv('PA_FAKE_CLAUDE');

test('quick start: create a project, execute a prompt, see it stream and end IDLE', async (t) => {
  const server = await startServer({ serverBinary, fakeClaude });
  const projectDir = mkdtempSync(join(tmpdir(), 'pa-e2e-project-'));
  t.after(async () => { await server.stop(); rmSync(projectDir, { recursive: true, force: true }); });

  const received = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out; received:\n' +
      received.map((m) => JSON.stringify(m)).join('\n'))), 30000);
    // --- the quick start, with the token and the self-signed certificate ---
    const ws = new WebSocket(`wss://localhost:${server.port}/ws`, {
      headers: { Authorization: `Bearer ${server.token}` },
      rejectUnauthorized: false,
    });
    let executed = false;

    ws.on('open', () => {
      ws.send(JSON.stringify({
        type: 'project_create',
        data: { path: projectDir },
      }));
    });

    ws.on('message', (data) => {
      const msg = JSON.parse(data);
      received.push(msg);

      if (msg.type === 'project_state' && msg.data.state === 'IDLE') {
        if (!executed) {
          executed = true;
          ws.send(JSON.stringify({
            type: 'execute',
            project_id: msg.project_id,
            data: {
              prompt: 'Create a hello world program in Go',
            },
          }));
        } else {
          clearTimeout(timer);
          ws.close();
          resolve();
        }
      }
      if (msg.type === 'error') { clearTimeout(timer); reject(new Error(JSON.stringify(msg))); }
    });

    ws.on('error', (err) => { clearTimeout(timer); reject(err); });
  });

  const types = received.map((m) => m.type);
  assert.equal(types[0], 'project_state');
  const executing = received.findIndex((m) => m.type === 'project_state' && m.data.state === 'EXECUTING');
  assert.ok(executing > 0, 'EXECUTING broadcast: ' + types.join(','));
  const agentMessages = received.filter((m) => m.type === 'agent_message');
  assert.ok(agentMessages.length >= 2, 'streamed CLI lines');
  assert.equal(agentMessages[0].data.type, 'system');
  assert.equal(agentMessages.at(-1).data.type, 'result');
  const last = received.at(-1);
  assert.equal(last.data.state, 'IDLE');
  assert.equal(last.data.session_id, agentMessages.at(-1).data.session_id);
  for (const m of received) assert.match(m.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

test('without the token the upgrade is refused with 401', async (t) => {
  const server = await startServer({ serverBinary, fakeClaude });
  t.after(() => server.stop());
  const status = await new Promise((resolve) => {
    const ws = new WebSocket(`wss://localhost:${server.port}/ws`, { rejectUnauthorized: false });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode));
    ws.on('open', () => resolve(101));
    ws.on('error', () => {});
  });
  assert.equal(status, 401);
});
