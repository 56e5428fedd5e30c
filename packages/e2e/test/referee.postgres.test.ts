// The referee end to end with the coordinator on PostgreSQL: receipts, corrections and slashes on pg.
import { onPostgres } from './helpers.js';

await onPostgres('referee.test.js');
