/**
 * What never changes about a job once it is created — who submitted it, its
 * label, runtime and verification — read from the store once and kept, so
 * the result path (referee draws, replication plans) and the issuance's
 * payment filter do not read the job again for every result.
 */
import type { Verification } from '@idlemesh/protocol';
import type { JobRecord, Store } from './store/index.js';

export interface JobFacts {
  caller: string;
  label: string | undefined;
  runtime: string;
  /** As submitted; undefined when the job named none (the coordinator's default applies). */
  verification: Verification | undefined;
}

/** Jobs are read at most once each while cached; the cache starts over past this many. */
const MAX_CACHED = 100_000;

export class JobFactsCache {
  private readonly facts = new Map<string, JobFacts>();

  constructor(private readonly store: Store) {}

  /** The job's facts, or undefined when there is no such job. */
  async get(jobId: string): Promise<JobFacts | undefined> {
    const cached = this.facts.get(jobId);
    if (cached) return cached;
    const job = await this.store.getJob(jobId);
    return job ? this.remember(job) : undefined;
  }

  /** Keeps the facts of a job read or created elsewhere (a submit), which then need no read of their own. */
  remember(job: JobRecord): JobFacts {
    const f: JobFacts = { caller: job.caller, label: job.label, runtime: job.runtime, verification: job.verification };
    if (this.facts.size >= MAX_CACHED) this.facts.clear();
    this.facts.set(job.id, f);
    return f;
  }
}
