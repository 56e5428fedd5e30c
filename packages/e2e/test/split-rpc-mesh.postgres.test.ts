// split-rpc-mesh with the coordinator on PostgreSQL.
import { onPostgres } from './helpers.js';

await onPostgres('split-rpc-mesh.test.js');
