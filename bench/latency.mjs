// Submit → result latency of single-task jobs on an idle mesh: the time from
// sending the submit request to holding the result (via the job's event stream).
import { arg, example, machine, mesh, percentile } from './lib.mjs';

const reps = arg("reps", 300);
const m = await mesh({ agents: 2, maxTasks: 1 });
try {
  const mod = await m.client.uploadModule(example('noop/noop.wasm'));
  const input = Buffer.from('ping').toString('base64');
  const samples = [];
  const server = []; // job accepted → result committed, coordinator clock (ms resolution)
  for (let i = 0; i < reps + 20; i++) {
    const t0 = performance.now();
    const job = await m.client.submitJob({ module: mod.hash, inputs: [input] });
    // One long poll: the coordinator answers when the job has ended.
    const page = await m.client.results(job.id, { wait: 10_000 });
    const t1 = performance.now();
    const done = await m.client.getJob(job.id);
    if (page.results[0]?.state !== 'succeeded') throw new Error(`task failed: ${JSON.stringify(page.results[0])}`);
    if (i >= 20) {
      // the first runs warm caches
      samples.push(t1 - t0);
      server.push((done.finishedAt ?? NaN) - done.createdAt);
    }
  }
  samples.sort((a, b) => a - b);
  server.sort((a, b) => a - b);
  console.log(JSON.stringify({
    bench: 'latency',
    reps,
    // Client view: submit request → results in hand (a submit and one long-polled results request).
    ms: { p50: +percentile(samples, 50).toFixed(2), p99: +percentile(samples, 99).toFixed(2), min: +samples[0].toFixed(2) },
    // Coordinator view: job committed → its result committed.
    serverMs: { p50: percentile(server, 50), p99: percentile(server, 99) },
    durability: m.info.durability,
    target: { p50Ms: 2 },
    machine: machine(),
  }));
} finally {
  await m.stop();
}
