// The same governance scenario with the coordinator on PostgreSQL.
import { onPostgres } from './helpers.js';

await onPostgres('governance.test.js');
