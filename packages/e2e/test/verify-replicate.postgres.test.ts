// Verification by replication end to end with the coordinator on PostgreSQL: held results, replica claims apart, decisions, slashes on pg.
import { onPostgres } from './helpers.js';

await onPostgres('verify-replicate.test.js');
