// dispatch with the coordinator on PostgreSQL.
import { onPostgres } from './helpers.js';

await onPostgres('dispatch.test.js');
