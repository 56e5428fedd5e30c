import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Whether the machine runs on external power. undefined: cannot tell. */
export interface PowerSource {
  charging(): Promise<boolean | undefined>;
}

/**
 * Reads Linux sysfs power supplies (`<dir>/<supply>/type`, `online`, `status`).
 * On external power when a Mains/USB supply is online or a battery reports
 * Charging/Full. A machine without a battery always counts as charging.
 */
export function sysfsPowerSource(dir = '/sys/class/power_supply'): PowerSource {
  return { charging: () => readSysfsPower(dir) };
}

export async function readSysfsPower(dir: string): Promise<boolean | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    // No power_supply class at all (container, desktop without ACPI, other OS): no battery.
    if (isCode(err, 'ENOENT') || isCode(err, 'ENOTDIR')) return true;
    return undefined;
  }
  let batteries = 0;
  let onMains = false;
  let batteryCharging = false;
  for (const name of names) {
    const type = await readAttr(join(dir, name, 'type'));
    if (type === undefined) continue;
    if (type === 'Battery') {
      // Peripheral batteries (mouse, keyboard) have scope=Device; they say nothing about this machine.
      if ((await readAttr(join(dir, name, 'scope'))) === 'Device') continue;
      batteries++;
      const status = await readAttr(join(dir, name, 'status'));
      if (status === 'Charging' || status === 'Full') batteryCharging = true;
    } else if ((await readAttr(join(dir, name, 'online'))) === '1') {
      // Mains, USB, USB_C, USB_PD, Wireless …: any online external supply.
      onMains = true;
    }
  }
  if (batteries === 0) return true;
  return onMains || batteryCharging;
}

async function readAttr(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
