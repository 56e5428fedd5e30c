/**
 * @idlemesh/sdk — a typed client for an idlemesh coordinator: upload a
 * WebAssembly module, submit a job (one task per input), follow its progress,
 * read its results.
 */
export { IdlemeshClient } from './client.js';
export type { ClientOptions, JobsQuery, ResultsQuery, WaitOptions } from './client.js';
export { parseInputsJsonl, decodeOutput, decodeUtf8 } from './inputs.js';
export { parseSse } from './sse.js';
export type { SseMessage } from './sse.js';
export { ImError, bytesToBase64, base64ToBytes } from '@idlemesh/protocol';
export type {
  AccountDetail, AccountView, BondView, PayoutBatchView, WithdrawalView, WithdrawBody, DepositAddressView, DepositList, LightningInvoiceView, DevFundBody, LedgerCheckView, MarketView, SignedRequest, StakeOp, StakeView, TransferView,
  ErrorCode, InfoView, JobEvent, JobState, JobView, ModuleInfo, NodeView, ResultsPage, SubmitJobBody, SubmittedJob,
  TaskResultView, TaskState, WireError,
} from '@idlemesh/protocol';
