// The same settlement scenarios with the coordinator on PostgreSQL.
import { onPostgres } from './helpers.js';

await onPostgres('settlement.test.js');
