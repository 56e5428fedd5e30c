/**
 * What a guest may observe of time and chance, made a function of the task
 * alone. Both interpreters are emscripten builds that read the clock through
 * the host's Date and performance objects, so a worker that runs one task
 * replaces those globals before it loads its interpreter (pinHostTime).
 */

/** The guest's wall clock starts here: 2024-01-01T00:00:00Z. */
export const FIXED_EPOCH_MS = Date.UTC(2024, 0, 1);

/**
 * Every clock read advances the guest's clocks by this much, so code that
 * waits for time to pass (time.sleep busy-waits under emscripten) still ends,
 * after a number of reads that depends only on the program.
 */
export const CLOCK_STEP_MS = 1;

export class GuestClock {
  private ticks = 0;

  reset(): void {
    this.ticks = 0;
  }

  /** Milliseconds since the task started, advancing by CLOCK_STEP_MS per read. */
  monotonicMs(): number {
    this.ticks += CLOCK_STEP_MS;
    return this.ticks;
  }

  realtimeMs(): number {
    return FIXED_EPOCH_MS + this.monotonicMs();
  }
}

/** splitmix32: small, fast, and the same on every machine. */
export class SeededBytes {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  fill(out: Uint8Array): void {
    for (let i = 0; i < out.length; i += 4) {
      let v = this.next();
      for (let j = i; j < Math.min(i + 4, out.length); j++) {
        out[j] = v & 0xff;
        v >>>= 8;
      }
    }
  }
}

/** The host's own clock, kept for deadlines after pinHostTime replaced the globals. */
export type RealClock = () => number;

/**
 * Replaces Date and performance.now in this worker with the guest clock, and
 * makes local time UTC so the host's time zone does not leak into
 * localtime()/mktime(). Call once, before the interpreter loads.
 */
export function pinHostTime(clock: GuestClock): RealClock {
  const realNow = performance.now.bind(performance);
  const RealDate = Date;
  const utc: Record<string, string> = {
    getFullYear: 'getUTCFullYear', getMonth: 'getUTCMonth', getDate: 'getUTCDate', getDay: 'getUTCDay',
    getHours: 'getUTCHours', getMinutes: 'getUTCMinutes', getSeconds: 'getUTCSeconds', getMilliseconds: 'getUTCMilliseconds',
  };
  class PinnedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(clock.realtimeMs());
      // Multi-field dates are local time; local time is UTC here.
      else if (args.length >= 2) super(RealDate.UTC(...(args as [number, number])));
      else super(args[0] as number);
    }

    static override now(): number {
      return clock.realtimeMs();
    }

    override getTimezoneOffset(): number {
      return 0;
    }
  }
  for (const [local, universal] of Object.entries(utc)) {
    Object.defineProperty(PinnedDate.prototype, local, {
      value: function (this: Date) {
        return (RealDate.prototype as unknown as Record<string, () => number>)[universal]?.call(this);
      },
    });
  }
  globalThis.Date = PinnedDate as DateConstructor;
  performance.now = () => clock.monotonicMs();
  return realNow;
}
