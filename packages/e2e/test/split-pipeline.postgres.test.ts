// Split inference (charges by stage included) with the coordinator on PostgreSQL.
import { onPostgres } from './helpers.js';

await onPostgres('split-pipeline.test.js');
