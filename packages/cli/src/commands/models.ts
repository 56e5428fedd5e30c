import type { Command } from 'commander';
import type { ModelRegistryEntry } from '@idlemesh/protocol';
import { num, table } from '../format.js';
import { clientFor } from '../options.js';
import { out, outJson } from '../output.js';

export function registerModels(program: Command): void {
  program
    .command('models')
    .description('the model registry: what agents serve, who hosts it at what ask, and its demand over the last 24 h')
    .option('--json', 'print {"models":[ModelRegistryEntry…]} as one JSON document')
    .addHelpText('after', `
Operators: host what is asked for and poorly served (high TOKENS or WAITING, few HOSTS).
Buyers: the same models answer through the OpenAI-compatible API (GET /v1/models).

Columns: SIZE is the size class that weights tokens into effort (xs…xl);
ASK is the cheapest and median ask of the hosts, in msat per EU;
LOAD is requests in flight ÷ what the hosts take at once, on this coordinator.`)
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const models = await clientFor(cmd).modelRegistry();
      if (opts.json) {
        await outJson({ models });
        return;
      }
      if (models.length === 0) {
        await out('no models are served; host one with: idlemesh agent --model path.gguf (or --backend openai=URL)\n');
        return;
      }
      await out(modelsTable(models));
    });
}

export function modelsTable(models: readonly ModelRegistryEntry[]): string {
  return table(
    ['MODEL', 'SIZE', 'LICENCE', 'HOSTS', 'GPU', 'ASK MIN/MEDIAN', 'REQUESTS 24H', 'TOKENS 24H', 'WAITING', 'LOAD'],
    models.map((m) => [
      m.id,
      m.sizeClass,
      m.licence ?? '',
      String(m.hosts.length),
      String(m.hosts.filter((h) => h.device === 'gpu').length),
      m.price ? `${num(m.price.askMin)}/${num(m.price.askMedian)}` : '',
      num(m.demand.requests),
      num(m.demand.tokens),
      num(m.demand.waiting),
      `${Math.round(m.demand.load * 100)}%`,
    ]),
  );
}
