import { inWindows, localMinuteOfDay, parseHours } from './hours.js';
import type { HourWindow } from './hours.js';
import type { PowerSource } from './power.js';

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export interface OwnerLimits {
  hours?: string | undefined;
  /** Max 1-minute load average per core, excluding the agent's own tasks. */
  onlyWhenIdle?: number | undefined;
  onlyWhenCharging: boolean;
}

/** Resume only when the load is this fraction of the threshold, so the agent does not flap. */
const IDLE_HYSTERESIS = 0.8;
/** The kernel's 1-minute load average decays with this time constant. */
const LOAD_TAU_MS = 60_000;

/**
 * Decides whether the owner's limits allow work right now. Stateful only for
 * the load estimate: the kernel load average includes our own tasks, so we
 * track the same exponentially damped average of how many tasks we ran and
 * subtract it, and use hysteresis to resume.
 */
export class LimitsEvaluator {
  private readonly windows: HourWindow[] | undefined;
  private ownLoad = 0;
  private lastSample: number | undefined;

  constructor(
    private readonly limits: OwnerLimits,
    private readonly deps: { clock: Clock; power: PowerSource; load: () => number; cores: number },
  ) {
    if (limits.hours === undefined) {
      this.windows = undefined;
    } else {
      const parsed = parseHours(limits.hours);
      if (typeof parsed === 'string') throw new Error(parsed);
      this.windows = parsed;
    }
  }

  /** Feed how many tasks run now; call about once a second. */
  sampleOwnLoad(running: number): void {
    const now = this.deps.clock.now();
    const dt = this.lastSample === undefined ? 0 : Math.max(0, now - this.lastSample);
    this.lastSample = now;
    const decay = Math.exp(-dt / LOAD_TAU_MS);
    this.ownLoad = this.ownLoad * decay + running * (1 - decay);
  }

  /** The reason to pause, or undefined when work is allowed. */
  async check(currentlyPaused: string | undefined): Promise<string | undefined> {
    if (this.windows !== undefined && !inWindows(this.windows, localMinuteOfDay(this.deps.clock.now()))) {
      return `outside hours ${this.limits.hours}`;
    }
    if (this.limits.onlyWhenIdle !== undefined) {
      const perCore = Math.max(0, this.deps.load() - this.ownLoad) / Math.max(1, this.deps.cores);
      const busyPaused = currentlyPaused?.startsWith('busy') === true;
      const threshold = busyPaused ? this.limits.onlyWhenIdle * IDLE_HYSTERESIS : this.limits.onlyWhenIdle;
      if (perCore > threshold) return `busy: load ${perCore.toFixed(2)}/core > ${this.limits.onlyWhenIdle}`;
    }
    if (this.limits.onlyWhenCharging) {
      const charging = await this.deps.power.charging();
      // Unknown power state: do not stop work on a guess.
      if (charging === false) return 'on battery';
    }
    return undefined;
  }
}
