// Submit → result latency of single-task jobs on an idle mesh (2 agents × 1 slot),
// one job at a time, two ways:
//   ms      submit, then one long-polled results request (two round trips)
//   waitMs  one request: POST /v1/jobs?wait=, answered when the job has ended
// and, on Linux, the CPU each process spent per job during the waitMs loop
// (client = this process; from /proc/<pid>/stat, all threads), and the
// coordinator's own timing of the steps on that path (its /metrics).
//
//   --reps N   samples of each kind (default 1000), after --warm N one-request jobs
//              (default 5000: the JIT of every process on the path takes thousands of
//              jobs to settle; coldWaitMs is the first 1,000 of them)
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { arg, example, machine, mesh, percentile } from './lib.mjs';

const reps = arg('reps', 1000);
const warm = arg('warm', 5000);

/** User + system CPU of a process so far, ms; undefined where /proc is not there. */
function cpuMs(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // clock ticks, USER_HZ = 100 on Linux
  } catch {
    return undefined;
  }
}

/**
 * The coordinator's step histograms (idlemesh_job_path_step_seconds): seconds and count per step. Read once, after
 * the samples: an HTTP request of this process's own beside the client's, before the loop, left it 0.15 ms of CPU
 * heavier per job (four alternating runs).
 */
async function steps(url) {
  const text = await new Promise((resolve, reject) => {
    get(`${url}/metrics`, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
  const out = {};
  for (const m of text.matchAll(/^idlemesh_job_path_step_seconds_(sum|count)\{step="(\w+)"\} (\S+)$/gm)) {
    out[m[2]] ??= { sum: 0, count: 0 };
    out[m[2]][m[1]] = Number(m[3]);
  }
  return out;
}

const pct = (s) => {
  s.sort((a, b) => a - b);
  return { p50: +percentile(s, 50).toFixed(2), p90: +percentile(s, 90).toFixed(2), p99: +percentile(s, 99).toFixed(2), min: +s[0].toFixed(2) };
};

const m = await mesh({ agents: 2, maxTasks: 1 });
try {
  const mod = await m.client.uploadModule(example('noop/noop.wasm'));
  const input = Buffer.from('ping').toString('base64');
  const submitWait = async () => {
    const t0 = performance.now();
    const job = await m.client.submitJob({ module: mod.hash, inputs: [input] }, { wait: 10_000 });
    const t1 = performance.now();
    if (job.results?.[0]?.state !== 'succeeded') throw new Error(`task failed: ${JSON.stringify(job.results?.[0] ?? job)}`);
    return t1 - t0;
  };
  const cold = [];
  for (let i = 0; i < warm; i++) {
    const ms = await submitWait();
    if (i < 1000) cold.push(ms);
  }
  const samples = [];
  const server = []; // job accepted → result committed, coordinator clock (ms resolution)
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const job = await m.client.submitJob({ module: mod.hash, inputs: [input] });
    // One long poll: the coordinator answers when the job has ended.
    const page = await m.client.results(job.id, { wait: 10_000 });
    const t1 = performance.now();
    const done = await m.client.getJob(job.id);
    if (page.results[0]?.state !== 'succeeded') throw new Error(`task failed: ${JSON.stringify(page.results[0])}`);
    samples.push(t1 - t0);
    server.push((done.finishedAt ?? NaN) - done.createdAt);
  }
  const waited = [];
  const pids = { client: process.pid, coordinator: m.pids.coordinator, agents: m.pids.agents };
  const before = { client: cpuMs(pids.client), coordinator: cpuMs(pids.coordinator), agents: pids.agents.map(cpuMs) };
  for (let i = 0; i < reps; i++) waited.push(await submitWait());
  const per = (now, then) => (now === undefined || then === undefined ? null : +((now - then) / reps).toFixed(2));
  const cpuMsPerJob = before.client === undefined ? null : {
    client: per(cpuMs(pids.client), before.client),
    coordinator: per(cpuMs(pids.coordinator), before.coordinator),
    // The busier agent first: with one job at a time, most jobs go to one of them.
    agents: pids.agents.map((p, i) => per(cpuMs(p), before.agents[i])).sort((a, b) => b - a),
  };
  // Mean µs of each step over the whole run (warm-up included), and how many times it ran (a claim: a job not leased by its submit).
  const stepUs = {};
  for (const [k, v] of Object.entries(await steps(m.url))) if (v.count > 0) stepUs[k] = { us: Math.round((v.sum / v.count) * 1e6), n: v.count };
  server.sort((a, b) => a - b);
  console.log(JSON.stringify({
    bench: 'latency',
    reps,
    // Client view: submit request → results in hand (a submit and one long-polled results request).
    ms: pct(samples),
    // One request that waits for the job.
    waitMs: pct(waited),
    // The same, over the first 1,000 jobs after the coordinator and agents started.
    coldWaitMs: cold.length > 0 ? pct(cold) : null,
    // Coordinator view: job committed → its result committed.
    serverMs: { p50: percentile(server, 50), p99: percentile(server, 99) },
    cpuMsPerJob,
    // The coordinator's own timing of steps on the path (GET /metrics, idlemesh_job_path_step_seconds): mean µs, count.
    coordinatorSteps: stepUs,
    durability: m.info.durability,
    target: { p50Ms: 2 },
    machine: machine(),
  }));
} finally {
  await m.stop();
}
