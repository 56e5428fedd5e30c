import type { Command } from 'commander';
import type { NodeView } from '@idlemesh/sdk';
import { age, megabytes, num, table } from '../format.js';
import { clientFor } from '../options.js';
import { out, outJson } from '../output.js';

export function registerNodes(program: Command): void {
  program
    .command('nodes')
    .description('list the agents the coordinator knows and their state')
    .option('--json', 'print {"nodes":[NodeView…]} as one JSON document')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const nodes = await clientFor(cmd).nodes();
      if (opts.json) {
        await outJson({ nodes });
        return;
      }
      if (nodes.length === 0) {
        await out('no nodes; start one with: idlemesh agent\n');
        return;
      }
      await out(nodesTable(nodes));
    });
}

export function nodesTable(nodes: readonly NodeView[], now = Date.now()): string {
  return table(
    ['ID', 'STATE', 'CORES', 'MEMORY', 'RUNNING', 'COMPLETED', 'FAILED', 'LAST SEEN', 'NAME'],
    nodes.map((n) => [
      n.id.slice(0, 12),
      n.pauseReason === undefined ? n.state : `${n.state} (${n.pauseReason})`,
      String(n.capabilities.cores),
      megabytes(n.capabilities.memoryMb),
      num(n.running),
      num(n.completed),
      num(n.failed),
      age(n.lastSeen, now),
      n.capabilities.name ?? '',
    ]),
  );
}
