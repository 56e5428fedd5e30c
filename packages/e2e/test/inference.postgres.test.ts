// The OpenAI-compatible API with the coordinator on PostgreSQL.
import { onPostgres } from './helpers.js';

await onPostgres('inference.test.js');
