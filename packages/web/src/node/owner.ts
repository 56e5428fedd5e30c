/**
 * What the owner of this browser lets the node do, as the browser tells it:
 * nothing while the tab is hidden (the owner is elsewhere, and browsers
 * throttle hidden tabs anyway), nothing on battery when the Battery Status
 * API says the device is discharging, nothing while the owner pressed Pause.
 * A browser without the Battery API counts as plugged in.
 */

interface BatteryLike extends EventTarget {
  charging: boolean;
  level: number;
}

export interface OwnerState {
  hidden: boolean;
  /** undefined: the browser does not say. */
  charging: boolean | undefined;
  batteryLevel: number | undefined;
  pausedByOwner: boolean;
}

export function pauseReason(s: OwnerState): string | undefined {
  if (s.pausedByOwner) return 'paused by the owner';
  if (s.hidden) return 'tab hidden';
  if (s.charging === false) return 'on battery (not charging)';
  return undefined;
}

export class OwnerWatch {
  state: OwnerState = { hidden: document.visibilityState === 'hidden', charging: undefined, batteryLevel: undefined, pausedByOwner: false };
  private battery: BatteryLike | undefined;
  private readonly onVisibility = (): void => this.set({ hidden: document.visibilityState === 'hidden' });
  private readonly onBattery = (): void => {
    if (this.battery) this.set({ charging: this.battery.charging, batteryLevel: this.battery.level });
  };

  constructor(private readonly onChange: (s: OwnerState) => void) {
    document.addEventListener('visibilitychange', this.onVisibility);
    const nav = navigator as Navigator & { getBattery?: () => Promise<BatteryLike> };
    if (typeof nav.getBattery === 'function') {
      nav.getBattery().then((b) => {
        this.battery = b;
        b.addEventListener('chargingchange', this.onBattery);
        b.addEventListener('levelchange', this.onBattery);
        this.onBattery();
      }, () => undefined);
    }
  }

  /** Resolves once the battery (if the browser has the API) has been read, so a node never starts before it knows. */
  async ready(): Promise<void> {
    const nav = navigator as Navigator & { getBattery?: () => Promise<BatteryLike> };
    if (typeof nav.getBattery !== 'function') return;
    try {
      const b = await nav.getBattery();
      this.set({ charging: b.charging, batteryLevel: b.level });
    } catch {
      /* no battery information */
    }
  }

  setPausedByOwner(paused: boolean): void {
    this.set({ pausedByOwner: paused });
  }

  close(): void {
    document.removeEventListener('visibilitychange', this.onVisibility);
    this.battery?.removeEventListener('chargingchange', this.onBattery);
    this.battery?.removeEventListener('levelchange', this.onBattery);
  }

  private set(patch: Partial<OwnerState>): void {
    const next = { ...this.state, ...patch };
    if (next.hidden === this.state.hidden && next.charging === this.state.charging && next.batteryLevel === this.state.batteryLevel && next.pausedByOwner === this.state.pausedByOwner) return;
    this.state = next;
    this.onChange(next);
  }
}
