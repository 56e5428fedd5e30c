// The same payout scenarios with the coordinator on PostgreSQL.
import { onPostgres } from './helpers.js';

await onPostgres('payouts.test.js');
