// The transport floor under `compare`'s latency figures: a client POSTs
// ~200 bytes of JSON over a kept-alive HTTP connection to a relay process, the
// relay sends it over a WebSocket to an echo process and answers the request
// with the echo — the process topology of an idlemesh job (client →
// coordinator → agent → coordinator → client) with no work at all: no store,
// no signature, no sandbox. What idlemesh's submit→result adds above this is
// its own work; what this takes is the machine's.
//
//   --reps N    round trips measured (default 10000), after --warm N (default 20000: until the
//               JIT of all three processes has settled, which takes thousands of round trips)
// Prints one JSON line.
// Internal: --relay and --echo PORT run the other two processes.
import { fork } from 'node:child_process';
import { Agent, createServer, request } from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { arg, machine, percentile } from './lib.mjs';

// ws is a dependency of the coordinator, not of the benches.
const { WebSocketServer, WebSocket } = createRequire(new URL('../packages/coordinator/package.json', import.meta.url))('ws');
const self = fileURLToPath(import.meta.url);

if (process.argv.includes('--relay')) {
  const wss = new WebSocketServer({ noServer: true });
  const waiting = new Map();
  let echo;
  let next = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const id = next++;
      waiting.set(id, res);
      echo.send(JSON.stringify({ id, body }));
    });
  });
  server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => {
    echo = ws;
    ws.on('message', (m) => {
      const { id, body } = JSON.parse(m);
      const res = waiting.get(id);
      waiting.delete(id);
      res.setHeader('content-type', 'application/json');
      res.end(body);
    });
    process.send('ready');
  }));
  server.listen(0, '127.0.0.1', () => process.send(server.address().port));
} else if (process.argv.includes('--echo')) {
  const ws = new WebSocket(`ws://127.0.0.1:${arg('echo', 0)}`);
  ws.on('message', (m) => ws.send(m.toString()));
} else {
  const REPS = arg('reps', 10000);
  const WARM = arg('warm', 20000);
  const relay = fork(self, ['--relay']);
  const port = await new Promise((resolve) => relay.once('message', resolve));
  const echo = fork(self, ['--echo', String(port)]);
  await new Promise((resolve) => relay.once('message', resolve));
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const body = JSON.stringify({ module: 'a'.repeat(64), inputs: ['b'.repeat(132)] });
  const once = () => new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end(body);
  });
  for (let i = 0; i < WARM; i++) await once();
  const ms = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    await once();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  const r2 = (x) => Math.round(x * 100) / 100;
  console.log(JSON.stringify({ bench: 'floor', what: 'HTTP → relay → WebSocket → echo → relay → HTTP, no work', reps: REPS, p50: r2(percentile(ms, 50)), p90: r2(percentile(ms, 90)), p99: r2(percentile(ms, 99)), max: r2(ms.at(-1)), machine: machine() }));
  relay.kill();
  echo.kill();
}
