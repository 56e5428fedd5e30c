// No-op wasm tasks end to end through one coordinator and 2 agent processes:
// tasks/s from submit to the last accepted result, with per-task completion
// latency percentiles and the store's durability setting.
import { arg, example, machine, mesh, percentile } from './lib.mjs';

const tasks = arg('tasks', 20_000);
const agents = arg('agents', 2);
const maxTasks = arg('max-tasks', 1);
const m = await mesh({ agents, maxTasks });
try {
  const mod = await m.client.uploadModule(example('noop/noop.wasm'));
  const input = Buffer.from('{"task":"noop","payload":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123"}').toString('base64');
  // Warm-up: modules fetched and compiled on every agent.
  const warm = await m.client.submitJob({ module: mod.hash, inputs: Array.from({ length: 200 }, () => input) });
  await m.client.waitForJob(warm.id);

  const t0 = performance.now();
  const job = await m.client.submitJob({ module: mod.hash, inputs: Array.from({ length: tasks }, () => input) });
  const submitted = performance.now();
  const done = await m.client.waitForJob(job.id);
  const seconds = (performance.now() - t0) / 1000;
  const lat = [];
  for await (const r of m.client.allResults(job.id)) lat.push((r.finishedAt ?? 0) - done.createdAt);
  lat.sort((a, b) => a - b);
  console.log(JSON.stringify({
    bench: 'throughput',
    tasks,
    succeeded: done.counts.succeeded,
    agents,
    maxTasksPerAgent: maxTasks,
    seconds: +seconds.toFixed(3),
    submitMs: +(submitted - t0).toFixed(1),
    tasksPerSec: Math.round(tasks / seconds),
    completionMs: { p50: percentile(lat, 50), p99: percentile(lat, 99) },
    durability: m.info.durability,
    target: { tasksPerSec: 5000 },
    machine: machine(),
  }));
} finally {
  await m.stop();
}
