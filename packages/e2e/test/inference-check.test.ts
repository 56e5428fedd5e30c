/**
 * Inference honesty through the mesh: two agents serve the same generated
 * GGUF with node-llama-cpp, and a third node claims the same model file but
 * answers with other tokens (scripted, over the real protocol). Every greedy
 * answer is scored, teacher-forced, by another node serving that file: the
 * liar's answer fails, costs it reputation (an audit entry, last in routing)
 * and no money; an honest answer passes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { writeRandomLlama } from '@idlemesh/llm';
import { FakeModelAgent } from './fake-model-agent.js';
import { startAgentProc, startCoordinatorProc, tempDir, waitUntil } from './helpers.js';
import type { CoordinatorProc, Proc } from './helpers.js';

const MODEL = 'check-4block';

async function checks(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^idlemesh_inference_checks_total\{result="(\w+)"\} (\d+)/gm)) out[m[1] as string] = Number(m[2]);
  return out;
}

describe('inference honesty checks', () => {
  const dir = tempDir('infcheck');
  let coord: CoordinatorProc;
  let openai: OpenAI;
  const agents: Proc[] = [];
  let liar: FakeModelAgent;

  before(async () => {
    const file = join(dir.path, `${MODEL}.gguf`);
    const gguf = writeRandomLlama({ blocks: 4, hidden: 128, heads: 4, kvHeads: 2, ff: 256, vocab: 512, ctx: 256, seed: 21, type: 'f32' });
    writeFileSync(file, gguf);
    const hash = createHash('sha256').update(gguf).digest('hex');
    coord = await startCoordinatorProc({ dataDir: `${dir.path}/coord`, args: ['--inference-check-rate', '1', '--issuance-hour-ms', '2000'] });
    openai = new OpenAI({ baseURL: `${coord.url}/v1`, apiKey: 'any', maxRetries: 0, timeout: 60_000 });
    // The liar asks least, so routing tries it first.
    liar = await new FakeModelAgent({ url: coord.url, model: MODEL, hash, ask: 0, words: ['Hello', ' from', ' another', ' model', ' entirely', '.'] }).start();
    for (const name of ['a', 'b']) agents.push(startAgentProc({ coordinator: coord.url, dataDir: `${dir.path}/agent-${name}`, args: ['--model', file, '--gpu', 'off', '--ask', '1000000'] }));
    await waitUntil(async () => ((await openai.models.list()).data.find((m) => m.id === MODEL) as { hosts?: number } | undefined)?.hosts === 3, 120_000)
      .catch(async () => assert.fail(`the three hosts never showed: ${JSON.stringify((await openai.models.list()).data)}\n${agents.map((a) => a.text).join('\n')}`));
    await coord.client.devFund({ account: `buyer:key:${createHash('sha256').update('any').digest('hex').slice(0, 32)}`, sats: 100_000 });
  });
  after(async () => {
    liar.close();
    for (const a of agents) await a.stop();
    await coord.stop();
    dir.remove();
  });

  it('catches a node answering with another model\'s tokens, by reputation only, and passes honest answers', { timeout: 240_000 }, async () => {
    const ask = (content: string) => openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content }], temperature: 0, max_tokens: 12 });
    const lie = await ask('Tell me about idle machines');
    assert.equal(lie.choices[0]?.message.content, 'Hello from another model entirely.', 'the cheapest host (the liar) answered first');
    await waitUntil(async () => (await checks(coord.url)).dishonest === 1, 60_000, () => coord.text.slice(-3000));

    // Reputation: an audit entry names the liar; no stake moved (it has none to lose here, and a check never slashes).
    const { entries } = await (await fetch(`${coord.url}/v1/audit/entries`)).json() as { entries: Array<{ type: string; subject: string; data: Record<string, unknown> }> };
    const dishonest = entries.filter((e) => e.type === 'inference.dishonest');
    assert.equal(dishonest.length, 1);
    assert.equal(dishonest[0]?.subject, liar.nodeId);
    assert.ok(Number(dishonest[0]?.data.off) > 0);

    // The liar now comes last: the next greedy answers are the model's own, and each passes its check by the other honest node.
    const first = await ask('Tell me about idle machines');
    const text = first.choices[0]?.message.content ?? '';
    assert.notEqual(text, lie.choices[0]?.message.content);
    assert.ok(text.length > 0);
    const again = await ask('Tell me about idle machines');
    assert.equal(again.choices[0]?.message.content, text, 'deterministic at temperature 0 on either honest host');
    await waitUntil(async () => (await checks(coord.url)).honest === 2, 60_000, () => coord.text.slice(-3000));
    const c = await checks(coord.url);
    assert.equal(c.dishonest, 1, 'no honest answer failed');
    assert.equal(liar.leases.filter((l) => JSON.parse(Buffer.from(l.input, 'base64').toString()).kind === 'score').length, 0, 'a node caught lying is not asked to check others');

    // Paid answers, checked by sampling, are verified work: a third party's payment reaches the issuance's paidMsat.
    await waitUntil(async () => {
      const res = await fetch(`${coord.url}/v1/issuance/hours/latest`);
      if (res.status !== 200) return false;
      const last = (await res.json()) as { hour: number };
      for (let h = last.hour; h > last.hour - 6; h--) {
        const r = await fetch(`${coord.url}/v1/issuance/hours/${h}`);
        if (r.status !== 200) continue;
        const doc = (await r.json()) as { rows: Array<{ node: string; paidMsat: string }> };
        if (doc.rows.some((x) => x.node !== liar.nodeId && BigInt(x.paidMsat) > 0n)) return true;
      }
      return false;
    }, 30_000, () => 'no paid answer reached an hour\'s paidMsat');
  });
});
