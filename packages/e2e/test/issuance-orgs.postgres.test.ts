// Issuance with two organisations, a posing pair and a cheater, with the coordinator on PostgreSQL.
import { onPostgres } from './helpers.js';

await onPostgres('issuance-orgs.test.js');
