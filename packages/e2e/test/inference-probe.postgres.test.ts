// inference-probe with the coordinator on PostgreSQL.
import { onPostgres } from './helpers.js';

await onPostgres('inference-probe.test.js');
