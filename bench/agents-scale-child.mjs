// Child of bench/agents-scale.mjs: holds `count` simulated agents on one
// coordinator, speaking the real protocol (hello → signed auth → welcome, then
// heartbeats every heartbeatMs). Connects `wave` at a time. Reports over IPC.
import WebSocket from 'ws';
import { PROTOCOL_VERSION, generateNodeKey, signMessage } from '../packages/protocol/dist/src/index.js';

const [wsUrl, countArg, waveArg, nameArg] = process.argv.slice(2);
const count = Number(countArg);
const wave = Number(waveArg);
const caps = (i) => ({
  runtimes: ['wasm'], cores: 2, memoryMb: 1024, arch: 'x64', os: 'linux', gpus: [], maxTasks: 1,
  benchmark: { fuelPerSec: 1e9 }, agentVersion: 'bench-sim', name: `${nameArg}-${i}`,
});
const stats = { connected: 0, welcomed: 0, heartbeats: 0, errors: 0, closed: 0, lastError: '' };
const sockets = [];
const timers = [];

function connect(i) {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok) => { if (!settled) { settled = true; resolve(ok); } };
    const key = generateNodeKey();
    const ws = new WebSocket(wsUrl, { perMessageDeflate: false });
    sockets.push(ws);
    ws.on('open', () => { stats.connected++; });
    ws.on('message', async (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.type === 'hello') {
        const auth = await signMessage(await key, 'auth', { v: PROTOCOL_VERSION, challenge: msg.challenge, capabilities: caps(i) }, Date.now());
        ws.send(JSON.stringify(auth));
      } else if (msg.type === 'welcome') {
        stats.welcomed++;
        const every = msg.heartbeatMs;
        // spread the heartbeats over the period
        const first = setTimeout(() => {
          const beat = () => { if (ws.readyState === ws.OPEN) { ws.send(JSON.stringify({ type: 'heartbeat', state: 'active', running: 0 })); stats.heartbeats++; } };
          beat();
          timers.push(setInterval(beat, every));
        }, Math.floor(Math.random() * every));
        timers.push(first);
        done(true);
      } else if (msg.type === 'error') {
        stats.errors++;
        stats.lastError = msg.error?.code ?? 'error';
      }
    });
    ws.on('error', (err) => { stats.errors++; stats.lastError = err.message; done(false); });
    ws.on('close', () => { stats.closed++; done(false); });
  });
}

const report = () => process.send?.({ type: 'stats', ...stats, rss: process.memoryUsage().rss });
setInterval(report, 1000).unref();
for (let i = 0; i < count; i += wave) {
  await Promise.all(Array.from({ length: Math.min(wave, count - i) }, (_, k) => connect(i + k)));
  report();
}
process.send?.({ type: 'connected', ...stats });
process.on('message', (m) => {
  if (m === 'close') {
    for (const t of timers) clearInterval(t);
    for (const ws of sockets) ws.terminate();
    setTimeout(() => process.exit(0), 200);
  }
});
