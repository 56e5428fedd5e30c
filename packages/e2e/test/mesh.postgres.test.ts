// The same end-to-end scenarios with the coordinator on PostgreSQL.
import { onPostgres } from './helpers.js';

await onPostgres('mesh.test.js');
