// holding with the coordinator on PostgreSQL.
import { onPostgres } from './helpers.js';

await onPostgres('holding.test.js');
