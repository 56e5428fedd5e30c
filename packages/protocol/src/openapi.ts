import { z } from 'zod';
import * as S from './schemas.js';
import { PROTOCOL_VERSION } from './schemas.js';

interface RouteDoc {
  method: 'get' | 'post';
  path: string;
  summary: string;
  body?: z.ZodType;
  bodyMedia?: string;
  query?: z.ZodObject;
  response: z.ZodType | { media: string; description: string };
  status?: number;
}

/** Every public HTTP route. The coordinator registers exactly these. */
export const ROUTES: readonly RouteDoc[] = [
  { method: 'get', path: '/healthz', summary: 'Liveness and store health', response: z.object({ ok: z.boolean() }) },
  { method: 'get', path: '/metrics', summary: 'Prometheus metrics', response: { media: 'text/plain', description: 'Prometheus text exposition' } },
  { method: 'get', path: '/openapi.json', summary: 'This document', response: { media: 'application/json', description: 'OpenAPI 3.1' } },
  { method: 'get', path: '/v1/info', summary: 'Coordinator version and settings', response: S.InfoView },
  { method: 'post', path: '/v1/modules', summary: 'Upload a WebAssembly module; it is validated and fuel-instrumented once', body: z.string().describe('raw module bytes'), bodyMedia: 'application/wasm', response: S.ModuleInfo, status: 201 },
  { method: 'get', path: '/v1/modules/{hash}', summary: 'Module metadata by uploaded or instrumented hash', response: S.ModuleInfo },
  { method: 'get', path: '/v1/modules/{hash}/instrumented', summary: 'The instrumented module agents run', response: { media: 'application/wasm', description: 'module bytes' } },
  { method: 'post', path: '/v1/jobs', summary: 'Submit a job (idempotent with Idempotency-Key); with ?wait= the answer waits for the job and carries its results', query: S.SubmitQuery, body: S.SubmitJobBody, response: S.SubmittedJob, status: 201 },
  { method: 'get', path: '/v1/jobs', summary: 'List jobs, newest first', query: S.JobsQuery, response: S.JobList },
  { method: 'get', path: '/v1/jobs/{id}', summary: 'One job with its progress counts', response: S.JobView },
  { method: 'post', path: '/v1/jobs/{id}/cancel', summary: 'Cancel a job; queued and leased tasks are cancelled', response: S.JobView },
  { method: 'get', path: '/v1/jobs/{id}/results', summary: 'Task results in index order, paged', query: S.ResultsQuery, response: S.ResultsPage },
  { method: 'get', path: '/v1/jobs/{id}/events', summary: 'Live progress as server-sent events (progress…, end)', response: { media: 'text/event-stream', description: 'JobEvent per `data:` line' } },
  { method: 'get', path: '/v1/nodes', summary: 'Known agents and their state', response: S.NodeList },
  { method: 'get', path: '/v1/registry/models', summary: 'The model registry: every model agents serve, its hosts and asks, and its demand over the last 24 h', response: S.ModelRegistryView },
  { method: 'get', path: '/v1/market', summary: 'Spot price per runtime (median clearing ask, last hour), supply and demand', response: S.MarketView },
  { method: 'get', path: '/v1/accounts/me', summary: "The caller's buyer account and its latest transfers", response: S.AccountDetail },
  { method: 'get', path: '/v1/accounts/{id}', summary: 'An account (buyer:…, operator:…, stake:…, system) and its latest transfers', response: S.AccountDetail },
  { method: 'get', path: '/v1/ledger/check', summary: 'Audit the ledger: debits = credits, balances = Σ transfers, no overdraft, pendings resolved once', response: S.LedgerCheckView },
  { method: 'get', path: '/v1/stakes/{nodeId}', summary: "A node's bonds (active, unbonding, released, slashed) and its stake and operator accounts", response: S.StakeView },
  { method: 'post', path: '/v1/stakes', summary: 'Bond, unbond or release stake; signed with the node key (idlemesh stake add|remove|release)', body: S.SignedStakeRequest, response: S.StakeView },
  { method: 'post', path: '/v1/deposits/address', summary: 'A fresh BIP84 receive address for an account (credited after minConf confirmations)', body: S.DepositAddressBody, response: S.DepositAddressView },
  { method: 'post', path: '/v1/deposits/lightning', summary: 'A Lightning invoice that credits an account once paid', body: S.LightningDepositBody, response: S.LightningInvoiceView, status: 201 },
  { method: 'get', path: '/v1/deposits', summary: 'On-chain deposits seen, with their state (seen, credited, reversed, dropped)', response: S.DepositList },
  { method: 'post', path: '/v1/withdrawals', summary: 'Withdraw to an address or a BOLT11 invoice; funds move to payouts-in-flight at once (operator accounts: node-signed form)', body: S.WithdrawBody, response: S.WithdrawalView, status: 201 },
  { method: 'get', path: '/v1/withdrawals', summary: 'Withdrawals and their state (queued, batched, paying, completed, failed)', response: S.WithdrawalList },
  { method: 'get', path: '/v1/payouts/key', summary: 'The coordinator payout key that signs batch approvals (pin it on the treasury signer)', response: z.object({ publicKey: z.string() }) },
  { method: 'get', path: '/v1/payouts/batches', summary: 'On-chain payout batches', response: S.PayoutBatchList },
  { method: 'post', path: '/v1/payouts/batches', summary: 'Batch the queued on-chain withdrawals into one unsigned PSBT now', response: S.PayoutBatchView, status: 201 },
  { method: 'get', path: '/v1/payouts/batches/{id}', summary: 'One batch: its PSBT and the approved payouts the treasury signer checks', response: S.PayoutBatchView },
  { method: 'post', path: '/v1/payouts/batches/{id}/signed', summary: "Import the treasury's signed PSBT: checked against the approved payouts, then broadcast", body: S.SignedPsbtBody, response: S.PayoutBatchView },
  { method: 'post', path: '/v1/payouts/batches/{id}/reject', summary: 'Reject an unsigned (or failed) batch: its withdrawals are refunded', body: S.RejectBatchBody, response: S.PayoutBatchView },
  { method: 'post', path: '/v1/dev/fund', summary: 'Dev only (--network regtest): credit an account from the dev faucet', body: S.DevFundBody, response: S.TransferView, status: 201 },
];

function schema(t: z.ZodType): unknown {
  return z.toJSONSchema(t, { target: 'openapi-3.0', unrepresentable: 'any', io: 'input' });
}

export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const op: Record<string, unknown> = { summary: r.summary, operationId: `${r.method}${r.path.replace(/[^a-zA-Z]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}` };
    const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (r.query) {
      for (const [name, t] of Object.entries(r.query.shape)) params.push({ name, in: 'query', required: false, schema: schema(t as z.ZodType) as { type: string } });
    }
    if (params.length) op.parameters = params;
    if (r.body) op.requestBody = { required: true, content: { [r.bodyMedia ?? 'application/json']: { schema: r.bodyMedia ? { type: 'string', format: 'binary' } : schema(r.body) } } };
    const ok = 'media' in r.response
      ? { description: r.response.description, content: { [r.response.media]: {} } }
      : { description: 'OK', content: { 'application/json': { schema: schema(r.response) } } };
    op.responses = { [String(r.status ?? 200)]: ok, default: { description: 'Error', content: { 'application/json': { schema: schema(S.ErrorBody) } } } };
    (paths[r.path] ??= {})[r.method] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'idlemesh coordinator', version, description: `Protocol v${PROTOCOL_VERSION}. Agents connect by WebSocket at /v1/agent.` },
    paths,
  };
}
