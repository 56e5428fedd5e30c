import { fileURLToPath } from 'node:url';

// This file runs as packages/cli/dist/src/paths.js.
/** packages/cli/bin/idlemesh.js: what `idlemesh up` spawns its agents with. */
export const BIN_PATH = fileURLToPath(new URL('../../bin/idlemesh.js', import.meta.url));
/** The repository root (packages/cli/../..), where examples/ lives. */
export const REPO_ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
