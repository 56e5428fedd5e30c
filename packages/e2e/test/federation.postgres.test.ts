// The same federation scenario with both coordinators on PostgreSQL (separate schemas).
import { onPostgres } from './helpers.js';

await onPostgres('federation.test.js');
