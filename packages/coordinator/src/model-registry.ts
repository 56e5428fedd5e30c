/**
 * The model registry: every model the connected agents serve, who hosts it
 * and at what ask, and its demand over the last day — what an operator reads
 * to choose what to host (`idlemesh models`, `GET /v1/registry/models`).
 *
 * `registryOf` is pure; hosts come from live sessions (this coordinator's),
 * demand from the store (every coordinator's requests).
 */
import { FUEL_PER_TOKEN, SIZE_CLASS_WEIGHT } from '@idlemesh/protocol';
import type { ModelOffer, ModelRegistryEntry } from '@idlemesh/protocol';
import type { ModelDemandRow } from './store/index.js';

export const DEMAND_WINDOW_MS = 24 * 3600_000;

export interface HostOffer {
  nodeId: string;
  /** msat per EU the operator asks (0 = free). */
  ask: number;
  /** Requests it is answering now. */
  inFlight: number;
  offer: ModelOffer;
}

export type RegistryEntry = ModelRegistryEntry;

/** One entry per model id, busiest first (tokens served, then waiting), then by id. */
export function registryOf(hosts: readonly HostOffer[], demand: readonly ModelDemandRow[], maxInFlight: number): RegistryEntry[] {
  const byId = new Map<string, HostOffer[]>();
  for (const h of hosts) {
    const list = byId.get(h.offer.id);
    if (list) list.push(h);
    else byId.set(h.offer.id, [h]);
  }
  const byHash = new Map(demand.map((d) => [d.model, d]));
  const entries = [...byId.entries()].map(([id, list]): RegistryEntry => {
    const first = (list[0] as HostOffer).offer;
    const hashes = [...new Set(list.map((h) => h.offer.hash))].sort();
    const rows = hashes.map((h) => byHash.get(h)).filter((r): r is ModelDemandRow => r !== undefined);
    const weight = SIZE_CLASS_WEIGHT[first.sizeClass] * FUEL_PER_TOKEN;
    const asks = list.map((h) => h.ask).sort((a, b) => a - b);
    return {
      id,
      hashes,
      sizeClass: first.sizeClass,
      licence: list.find((h) => h.offer.licence !== undefined)?.offer.licence ?? null,
      contextSize: Math.max(...list.map((h) => h.offer.contextSize)),
      hosts: list.map((h) => ({ nodeId: h.nodeId, device: h.offer.device, backend: h.offer.backend, ask: h.ask, inFlight: h.inFlight, tokensPerSec: h.offer.tokensPerSec ?? null }))
        .sort((a, b) => a.ask - b.ask || a.nodeId.localeCompare(b.nodeId)),
      demand: {
        windowHours: DEMAND_WINDOW_MS / 3600_000,
        requests: rows.reduce((s, r) => s + r.requests, 0),
        tokens: Math.floor(rows.reduce((s, r) => s + r.fuel, 0) / weight),
        waiting: rows.reduce((s, r) => s + r.waiting, 0),
        load: Math.round((list.reduce((s, h) => s + h.inFlight, 0) / (list.length * maxInFlight)) * 1000) / 1000,
      },
      price: asks.length === 0 ? null : { askMin: asks[0] as number, askMedian: asks[Math.floor((asks.length - 1) / 2)] as number },
    };
  });
  return entries.sort((a, b) => b.demand.tokens - a.demand.tokens || b.demand.waiting - a.demand.waiting || a.id.localeCompare(b.id));
}
