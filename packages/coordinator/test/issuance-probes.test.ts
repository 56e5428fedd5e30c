/**
 * The capacity probe's pieces that must not drift: the built-in module's
 * fuel is what `probeFuel` says (the coordinator measures with that number,
 * never with the node's), its output depends on the seed, the groups probed
 * together join operators and IP prefixes, and the spot rule for availability.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Sandbox } from '@idlemesh/runtime';
import { Instrumenter } from '../src/modules/index.js';
import { FUEL_PER_CAP_UNIT, PROBE_WASM, probeFuel, probeGroups, probeInput, splitGroupCapacity } from '../src/probes.js';
import { atOrBelowSpot } from '../src/issuance-service.js';

describe('capacity probes', () => {
  it('the probe module burns exactly probeFuel(steps), and its output depends on the seed', async () => {
    const inst = await new Instrumenter({ maxMemoryMb: 64, maxBytes: 1 << 20 }).instrument(PROBE_WASM);
    const hash = createHash('sha256').update(inst.bytes).digest('hex');
    const sandbox = new Sandbox({ workers: 1 });
    try {
      await sandbox.addModule(hash, inst.bytes, inst.abi);
      const limits = { fuel: 1e12, memoryMb: 16, timeoutMs: 60_000, outputBytes: 64 };
      const outputs = new Set<string>();
      for (const [steps, seed] of [[0, 1], [1, 1], [1000, 1], [1000, 2], [123_457, 3]] as const) {
        const r = await sandbox.run({ moduleHash: hash, input: probeInput(steps, new Uint8Array(8).fill(seed)), limits });
        assert.ok(r.ok, JSON.stringify(r));
        assert.equal(r.fuel, probeFuel(steps), `fuel of ${steps} steps`);
        assert.equal(r.output.byteLength, 8);
        outputs.add(Buffer.from(r.output).toString('hex'));
      }
      assert.equal(outputs.size, 5, 'every (steps, seed) gives its own state');
      const bad = await sandbox.run({ moduleHash: hash, input: new Uint8Array(5), limits });
      assert.equal(bad.ok, false, 'a malformed input fails');
    } finally {
      await sandbox.close();
    }
  });

  it('groups join nodes of one operator and nodes behind one prefix, transitively', () => {
    const groups = probeGroups([
      { nodeId: 'a', operator: 'org:x', prefix: '10.0.0.0/24' },
      { nodeId: 'b', operator: 'node:b', prefix: '10.0.0.0/24' }, // a's machine, b's own key
      { nodeId: 'c', operator: 'org:x', prefix: '10.9.9.0/24' }, // x's node elsewhere
      { nodeId: 'd', operator: 'node:d', prefix: '10.9.9.0/24' }, // next to c
      { nodeId: 'e', operator: 'node:e', prefix: '192.168.1.0/24' },
    ]);
    assert.deepEqual(groups, [['a', 'b', 'c', 'd'], ['e']]);
  });

  it('nodes of one group share its throughput: posing as many never adds up to more than the machine', () => {
    const F = 1_000_000_000; // fuel per task; 1 s of one core
    // One 2-core machine posing as six 1-slot nodes, its scheduler running them two at a time: done at 1, 1, 2, 2, 3, 3 s.
    const six = splitGroupCapacity(F, [1, 1, 2, 2, 3, 3].map((s, i) => ({ nodeId: `n${i}`, tasks: 1, elapsedMs: s * 1000 })));
    const total = [...six.values()].reduce((a, b) => a + b, 0);
    assert.ok(total <= (6 * F) / 3 / FUEL_PER_CAP_UNIT, `${total} units: no more than 6 tasks over 3 s`);
    assert.ok(total >= (6 * F) / 3 / FUEL_PER_CAP_UNIT - 6, 'and the rounding loses at most a unit per node');
    // Timed one by one they would have claimed 2 + 1 + 0.67 machines' worth of cores.
    assert.ok(six.get('n0')! > six.get('n5')!, 'the faster node keeps the larger share');
    // The same machine as one 2-slot node: the same capacity.
    const one = splitGroupCapacity(F, [{ nodeId: 'm', tasks: 6, elapsedMs: 3000 }]);
    assert.equal(one.get('m'), (6 * F) / 3 / FUEL_PER_CAP_UNIT);
    assert.equal(splitGroupCapacity(F, []).size, 0);
  });

  it('a node is available only while asking at or below the lowest spot of its runtimes', () => {
    const spot = new Map([['wasm', 1000], ['python', 400]]);
    assert.equal(atOrBelowSpot(1000, ['wasm'], spot), true);
    assert.equal(atOrBelowSpot(1001, ['wasm'], spot), false);
    assert.equal(atOrBelowSpot(500, ['wasm', 'python'], spot), false, 'the cheapest market it offers binds');
    assert.equal(atOrBelowSpot(10_000, ['js'], spot), true, 'no market yet: nothing to undercut');
  });
});
