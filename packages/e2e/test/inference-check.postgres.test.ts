// inference-check with the coordinator on PostgreSQL.
import { onPostgres } from './helpers.js';

await onPostgres('inference-check.test.js');
