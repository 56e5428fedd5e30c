import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressBar, ProgressLines, renderBar } from '../src/index.js';

void test('renderBar draws the bar, counts, percent, rate and eta', () => {
  assert.equal(renderBar({ done: 512, total: 1000, ratePerSec: 1234.4, width: 10 }), '[=====>    ] 512/1,000 51% 1,234 tasks/s eta 1s');
  assert.equal(renderBar({ done: 100, total: 1000, ratePerSec: 30, width: 10 }), '[=>        ] 100/1,000 10% 30 tasks/s eta 30s');
  assert.equal(renderBar({ done: 1000, total: 1000, ratePerSec: 50, width: 10 }), '[==========] 1,000/1,000 100% 50 tasks/s');
  assert.equal(renderBar({ done: 0, total: 0, width: 4 }), '[>   ] 0/0 0%');
  assert.equal(renderBar({ done: 3, total: 4, failed: 1, width: 4 }), '[===>] 3/4 75% 1 failed');
});

void test('ProgressBar redraws with \\r at most every 100 ms and ends with a newline', () => {
  let now = 0;
  const writes: string[] = [];
  const bar = new ProgressBar({ stream: { write: (t: string) => writes.push(t), columns: 60 }, now: () => now });
  bar.update({ done: 0, total: 100 });
  now = 50;
  bar.update({ done: 10, total: 100 }); // throttled
  now = 1000;
  bar.update({ done: 50, total: 100 });
  now = 2000;
  bar.finish();
  assert.equal(writes.length, 4);
  assert.ok(writes.slice(0, 3).every((w) => w.startsWith('\r')));
  assert.match(writes[1] ?? '', /50\/100 50% 50 tasks\/s eta 1s/);
  assert.equal(writes[3], '\n');
});

void test('ProgressLines prints a line every interval and a final one', () => {
  let now = 0;
  const writes: string[] = [];
  const p = new ProgressLines({ stream: { write: (t: string) => writes.push(t) }, now: () => now, intervalMs: 5000 });
  p.update({ done: 1, total: 10 });
  now = 1000;
  p.update({ done: 2, total: 10 });
  now = 6000;
  p.update({ done: 7, total: 10, failed: 2 });
  p.update({ done: 10, total: 10, failed: 2 });
  p.finish();
  assert.deepEqual(writes, ['progress 1/10 (10%)\n', 'progress 7/10 (70%) 2 failed\n', 'progress 10/10 (100%) 2 failed\n']);
});
