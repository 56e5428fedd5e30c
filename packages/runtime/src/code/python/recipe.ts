/**
 * Everything that shapes the memory snapshot besides the interpreter's
 * bytes. Snapshots are cached under a hash of this, so changing it makes
 * every agent build a new one.
 */

/** Part of the snapshot: must be the same when it is made and when it is restored. */
export const PYTHON_ENV = { HOME: '/home/pyodide', LANG: 'C.UTF-8', TZ: 'UTC', PYTHONHASHSEED: '0', _: '/usr/bin/python3' };

/** Loaded into the snapshot, so programs do not pay fuel to import the common modules. */
export const SNAPSHOT_IMPORTS = 'import math, itertools, functools, collections, heapq, bisect, string, re, json, random, typing, datetime, time, copy, operator, fractions, decimal, statistics';

export const SNAPSHOT_RECIPE = JSON.stringify({ v: 1, env: PYTHON_ENV, imports: SNAPSHOT_IMPORTS });
