// The same deposit scenarios with the coordinator on PostgreSQL.
import { onPostgres } from './helpers.js';

await onPostgres('deposits.test.js');
