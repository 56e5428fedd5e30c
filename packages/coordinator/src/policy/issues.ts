/**
 * Turns zod issues into one plain line per offending field
 * (`overflow.waitMs: expected a number, got a string`), so an operator
 * editing a policy file sees the path and what to write instead.
 */
import type { z } from 'zod';

/** One problem in a policy document; `path` is dotted (`eligibility.operators[0]`), '' for the whole document. */
export interface PolicyIssue {
  readonly path: string;
  /** The zod issue code, or `syntax` when the text is not YAML/JSON at all. */
  readonly code: string;
  readonly message: string;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : Number.isFinite(v) ? (Number.isInteger(v) ? 'a whole number' : 'a fraction') : 'an infinite number';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return 'a string';
  return `a ${typeof v}`;
}

const EXPECTED: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  string: 'a string',
  array: 'a list',
  object: 'a mapping',
  boolean: 'true or false',
};

function bound(origin: string, op: string, n: number | bigint, what: 'min' | 'max'): string {
  if (origin === 'string') return what === 'min' && Number(n) === 1 ? 'must not be empty' : `must have ${what === 'min' ? 'at least' : 'at most'} ${n} characters`;
  if (origin === 'array' || origin === 'set') return `must have ${what === 'min' ? 'at least' : 'at most'} ${n} entries`;
  return `must be ${op} ${n}`;
}

/**
 * @param known the keys each mapping accepts, by dotted path, to name them
 *   next to an unknown key (typos are the usual cause).
 */
export function describeIssues(issues: readonly z.core.$ZodIssue[], input: unknown, known: Readonly<Record<string, readonly string[]>>): PolicyIssue[] {
  const out: PolicyIssue[] = [];
  for (const iss of issues) {
    const path = formatPath(iss.path);
    const value = valueAt(input, iss.path);
    switch (iss.code) {
      case 'invalid_type': {
        const want = EXPECTED[iss.expected] ?? iss.expected;
        out.push({ path, code: iss.code, message: value === undefined ? `required (${want})` : `expected ${want}, got ${kindOf(value)}` });
        break;
      }
      case 'too_small':
        out.push({ path, code: iss.code, message: bound(iss.origin, iss.inclusive === false ? '>' : '≥', iss.minimum, 'min') });
        break;
      case 'too_big':
        out.push({ path, code: iss.code, message: bound(iss.origin, iss.inclusive === false ? '<' : '≤', iss.maximum, 'max') });
        break;
      case 'invalid_value': {
        const vals = iss.values.map((v) => JSON.stringify(v));
        const want = vals.length === 1 ? `expected ${vals[0]}` : `expected one of ${vals.join(', ')}`;
        out.push({ path, code: iss.code, message: value === undefined ? `required (${want.slice('expected '.length)})` : `${want}, got ${JSON.stringify(value) ?? kindOf(value)}` });
        break;
      }
      case 'unrecognized_keys': {
        const keys = known[path];
        const hint = keys ? ` (known keys: ${keys.join(', ')})` : '';
        for (const key of iss.keys) out.push({ path: formatPath([...iss.path, key]), code: iss.code, message: `unknown key${hint}` });
        break;
      }
      default:
        out.push({ path, code: iss.code, message: iss.message });
    }
  }
  return out;
}

export function issueLine(i: PolicyIssue): string {
  return `${i.path === '' ? '(document)' : i.path}: ${i.message}`;
}
