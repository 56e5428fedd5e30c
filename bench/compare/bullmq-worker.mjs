// One BullMQ worker process for `npm run bench -- compare`: concurrency from
// argv, a no-op processor that echoes its input. Jobs whose data has `rec`
// report start/end to the parent over IPC (latency and kill runs only).
import { load } from './contenders.mjs';

const { Worker } = load('bullmq');

const [queueName, concurrency = '1', host = '127.0.0.1', port = '6379'] = process.argv.slice(2);
const send = (m) => { if (process.connected) process.send(m); };
const worker = new Worker(queueName, async (job) => {
  if (job.data.rec) send({ ev: 'start', id: job.id, t: Date.now(), pid: process.pid });
  const out = job.data; // the no-op: echo the input
  if (job.data.rec) send({ ev: 'done', id: job.id, t: Date.now(), pid: process.pid });
  return out;
}, { connection: { host, port: Number(port), maxRetriesPerRequest: null }, concurrency: Number(concurrency) });
worker.on('error', (err) => console.error('bullmq worker error', err.message));
await worker.waitUntilReady();
send({ ev: 'ready', pid: process.pid });
process.on('SIGTERM', async () => { await worker.close(); process.exit(0); });
