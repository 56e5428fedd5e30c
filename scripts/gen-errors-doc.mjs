// Regenerates docs/errors.md from the error catalogue: node scripts/gen-errors-doc.mjs
import { writeFileSync } from 'node:fs';
import { ERRORS } from '../packages/protocol/dist/src/errors.js';

const rows = Object.entries(ERRORS).map(([code, e]) => `| \`${code}\` | ${e.status} | ${e.retryable ? 'yes' : 'no'} | ${e.message} |`);
writeFileSync(new URL('../docs/errors.md', import.meta.url), `# Error codes

Every error that crosses a process boundary carries a stable \`code\`. HTTP
answers \`{"error": {"code", "message", "retryable", "retryAfterMs"?, "details"?}}\`
with the status below; WebSocket peers send \`{"type": "error", "error": {…}}\`;
the CLI prints \`error CODE: message\` and exits 1 (2 for usage errors).

Codes are never renamed or reused. This page is generated from
\`packages/protocol/src/errors.ts\` by \`node scripts/gen-errors-doc.mjs\`; a test
fails when the two disagree.

| code | HTTP | retryable | meaning and what to do |
|---|---|---|---|
${rows.join('\n')}
`);
