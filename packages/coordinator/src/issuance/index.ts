/**
 * Issuance (issue 7): the rolling-24h/1 formula that splits the reward pool
 * over nodes by paid work, bonded capacity and reliability. Pure; see
 * docs/issuance.md. The simulator that drives it lives in ../sim but is
 * re-exported here, so `idlemesh sim issuance` reaches it through this one
 * namespace.
 */
export {
  FORMULA, ISSUANCE_DIVISOR, WINDOW_HOURS,
  baseScore, capUnits, checkParams, computeEpoch, countedCapacity, indexContext, issuedMsat, reliabilityScore, tieKey, windowStart,
} from './formula.js';
export type {
  ContextIndex, EpochContext, EpochInput, EpochResult, EpochTotals, Formula, HourRow, HourTable, IssuanceParams,
  NodeInfo, NodeReliability, OperatorInfo,
} from './formula.js';
export { RollingWindow } from './window.js';
export type { EpochColumns, HourColumns, RollingWindowStats } from './window.js';
export { expectedOf, hourRowJson, parseEpochDocument, serializeEpochDocument, serializeExpected } from './json.js';
export type { EpochDocument, EpochDocumentJson, EpochExpected, HourRowJson } from './json.js';
export { hourRowLeaf, hourRowsInLeafOrder, hourRowsRoot, hourRowsRootHex } from './merkle.js';
export { ISSUANCE_SCENARIOS, simulateIssuance } from '../sim/issuance.js';
export type { IssuanceScenario, IssuanceSimHour, IssuanceSimOptions, IssuanceSimReport } from '../sim/issuance.js';
export { issuanceChartSvg } from '../sim/issuance-chart.js';
export type { ChartOptions } from '../sim/issuance-chart.js';
