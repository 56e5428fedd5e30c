// One graphile-worker process for `npm run bench -- compare`: concurrency from
// argv, a no-op task. Jobs whose payload has `rec` report start/end to the
// parent over IPC (latency and kill runs only). Default settings otherwise
// (LISTEN/NOTIFY wake-ups, pollInterval 2 s, no local queue, no batching).
import { load } from './contenders.mjs';

const { run, Logger } = load('graphile-worker');

const [connectionString, concurrency = '1'] = process.argv.slice(2);
const send = (m) => { if (process.connected) process.send(m); };
const runner = await run({
  connectionString,
  concurrency: Number(concurrency),
  noHandleSignals: true,
  logger: new Logger(() => (level, message) => { if (level === 'error' || level === 'warning') console.error(message); }),
  taskList: {
    noop: async (payload, helpers) => {
      if (payload.rec) send({ ev: 'start', id: helpers.job.id, t: Date.now(), pid: process.pid });
      const out = payload; // the no-op: echo the input (graphile-worker keeps no results)
      if (payload.rec) send({ ev: 'done', id: helpers.job.id, t: Date.now(), pid: process.pid });
      return out;
    },
  },
});
send({ ev: 'ready', pid: process.pid });
process.on('SIGTERM', async () => { await runner.stop(); process.exit(0); });
