/**
 * The shared test vectors (../shared/vectors/issuance, a sibling checkout of
 * this repository) are the executable definition of rolling-24h/1: every
 * expected issuedMsat, score and allocation must come out exactly, from the
 * reference and from the rolling window. Skipped, saying so, where the
 * vectors are not checked out.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { computeEpoch, expectedOf, parseEpochDocument, serializeEpochDocument, serializeExpected } from '../src/issuance/index.js';
import { viaWindow } from './issuance-networks.js';

/** The workspace root: the nearest directory up from this file whose package.json has workspaces. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { workspaces?: unknown }).workspaces !== undefined) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('no workspace root above the test file');
    dir = up;
  }
}

const DIR = join(repoRoot(), '..', 'shared', 'vectors', 'issuance');
const files = existsSync(DIR) ? readdirSync(DIR).filter((f) => f.endsWith('.json')).sort() : [];
const skip = files.length === 0 ? `no issuance vectors at ${DIR} (check out the shared repository next to this one to run them)` : false;

describe('issuance: shared vectors', { skip }, () => {
  for (const file of files) {
    const json: unknown = JSON.parse(readFileSync(join(DIR, file), 'utf8'));
    const doc = parseEpochDocument(json);
    const expected = doc.expected;

    it(`${file}: the reference reproduces expected (${doc.why ?? ''})`, () => {
      assert.ok(expected, 'the vector has an expected block');
      assert.deepEqual(serializeExpected(expectedOf(computeEpoch(doc.input))), serializeExpected(expected));
    });

    it(`${file}: the rolling window reproduces expected, from rows and from columns`, () => {
      assert.ok(expected);
      assert.deepEqual(serializeExpected(expectedOf(viaWindow(doc.input))), serializeExpected(expected));
      assert.deepEqual(serializeExpected(expectedOf(viaWindow(doc.input, true))), serializeExpected(expected));
    });

    it(`${file}: parse then serialize gives the file back`, () => {
      assert.deepEqual(serializeEpochDocument(doc), json);
    });
  }

  it('there are vectors for the cases the formula distinguishes', () => {
    for (const name of ['basic', 'no-work', 'no-capacity', 'slashed', 'bond-cap', 'ties', 'young-network', 'empty']) {
      assert.ok(files.some((f) => f.includes(name)), `a vector for ${name}`);
    }
  });
});
