/**
 * A worker thread that checkpoints the coordinator's SQLite WAL on its own
 * connection. SQLite's automatic checkpoint runs inside whichever commit
 * crosses the threshold, so every thousand pages or so one request waited
 * for the copy into the database file and its fsync: a few milliseconds,
 * right in the latency tail. Passive checkpoints here never block writers.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const { path, everyMs } = workerData as { path: string; everyMs: number };
const db = new Database(path);
db.pragma('busy_timeout = 5000');
db.pragma('synchronous = NORMAL');

const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Tried again next time; meanwhile the store's own checkpoint backstop holds the WAL's size.
  }
}, everyMs);

parentPort?.on('message', (m: unknown) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort?.close();
});
