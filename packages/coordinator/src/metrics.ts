import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per coordinator, so several can run in one process (tests). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'idlemesh_process_' });
  return {
    registry,
    jobsSubmitted: new Counter({ name: 'idlemesh_jobs_submitted_total', help: 'Jobs accepted by the API', registers: [registry] }),
    tasksLeased: new Counter({ name: 'idlemesh_tasks_leased_total', help: 'Task leases granted', registers: [registry] }),
    taskOutcomes: new Counter({ name: 'idlemesh_task_outcomes_total', help: 'Results received from agents, by status', labelNames: ['status'], registers: [registry] }),
    leasesExpired: new Counter({ name: 'idlemesh_leases_expired_total', help: 'Leases that came back because their agent went away', registers: [registry] }),
    leasesReleased: new Counter({ name: 'idlemesh_leases_released_total', help: 'Leases handed back by agents (pause, drain)', registers: [registry] }),
    agentsConnected: new Gauge({ name: 'idlemesh_agents_connected', help: 'Authenticated agent connections', registers: [registry] }),
    wsMessages: new Counter({ name: 'idlemesh_ws_messages_total', help: 'WebSocket messages from agents, by type', labelNames: ['type'], registers: [registry] }),
    protocolErrors: new Counter({ name: 'idlemesh_protocol_errors_total', help: 'Refused agent messages, by error code', labelNames: ['code'], registers: [registry] }),
    refereeChecks: new Counter({ name: 'idlemesh_referee_checks_total', help: 'Results the referee re-executed, by verdict (agree, task-fault, fraud, inconclusive, dropped, error)', labelNames: ['result'], registers: [registry] }),
    resultBatch: new Histogram({ name: 'idlemesh_result_batch_size', help: 'Results per signed batch', buckets: [1, 4, 16, 64, 256, 1024], registers: [registry] }),
    ledgerTransfers: new Counter({ name: 'idlemesh_ledger_transfers_total', help: 'Ledger transfers recorded by this coordinator, by code', labelNames: ['code'], registers: [registry] }),
    jobsSettled: new Counter({ name: 'idlemesh_jobs_settled_total', help: 'Finished jobs whose charges were settled', registers: [registry] }),
    depositsCredited: new Counter({ name: 'idlemesh_deposits_total', help: 'Deposits credited or reversed, by rail and action', labelNames: ['rail', 'action'], registers: [registry] }),
    withdrawals: new Counter({ name: 'idlemesh_withdrawals_total', help: 'Withdrawals by rail and final state', labelNames: ['rail', 'state'], registers: [registry] }),
    tasksQueued: new Gauge({ name: 'idlemesh_tasks_queued', help: 'Tasks waiting for an agent (set on scrape)', registers: [registry] }),
    pathStep: new Histogram({
      name: 'idlemesh_job_path_step_seconds',
      help: "Steps on a job's way through this coordinator: submit (the job's transaction, its first leases included), claim (a dispatch round's transaction), signature (a results batch's check), receipts (its receipts recomputed and countersigned), results (its transaction)",
      labelNames: ['step'], buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05], registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'idlemesh_http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['route', 'method', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5], registers: [registry],
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
export type PathStep = 'submit' | 'claim' | 'signature' | 'receipts' | 'results';

/** Times `work` as a step of a job's path (`idlemesh_job_path_step_seconds`), whether it succeeds or throws. */
export async function timed<T>(metrics: Metrics, step: PathStep, work: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await work();
  } finally {
    metrics.pathStep.observe({ step }, (performance.now() - t0) / 1000);
  }
}
