import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { CodeSandbox, FIXED_EPOCH_MS, runCode, type CodeLanguage, type CodeLimits, type CodeResult, type CodeTask } from '../src/index.js';

/** ~0.4 s of an infinite Python loop, ~1 s of a JS one: far above what the small programs here need. */
const FUEL: Record<CodeLanguage, number> = { python: 100_000_000, js: 20_000_000 };

function task(language: CodeLanguage, program: string, tests = '', over: Partial<CodeLimits> = {}, seed?: number): CodeTask {
  const limits: CodeLimits = { fuel: FUEL[language], memoryMb: language === 'python' ? 64 : 32, timeoutMs: 20_000, outputBytes: 4096, ...over };
  return seed === undefined ? { language, program, tests, limits } : { language, program, tests, limits, seed };
}

function expectVerdict(r: CodeResult, verdict: CodeResult['verdict'], code?: string): void {
  assert.equal(r.verdict, verdict, JSON.stringify(r));
  if (code !== undefined) assert.equal(r.error?.code, code, JSON.stringify(r));
}

let sb: CodeSandbox;

before(async () => {
  // The first run on a machine instruments Pyodide and snapshots it (~10 s); later runs load both from ~/.cache/idlemesh.
  sb = new CodeSandbox({ pythonPool: 2, jsPool: 2 });
  await sb.ready();
});

after(async () => {
  await sb.close();
});

const PY_ADD = 'def add(a, b):\n    return a + b\n';
const PY_ADD_TESTS = 'def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n\ncheck(add)\n';
const JS_ADD = 'function add(a, b) { return a + b; }';
const JS_ADD_TESTS = 'if (add(1, 2) !== 3) throw new Error("add(1, 2) should be 3");\nif (add(-1, 1) !== 0) throw new Error("add(-1, 1) should be 0");';

/** What each language's candidates look like, so the shared behaviours are tested once for both. */
interface Cases {
  correct: [string, string];
  wrong: [string, string];
  /** Enough work to register fuel in either language's unit. */
  work: string;
  spin: string;
  memoryBomb: string;
  crashes: string[];
  clobber: string;
  setGlobal: string;
  checkGlobal: string;
  chance: string;
  escapes: string;
}

const CASES: { python: Cases; js: Cases } = {
  python: {
    correct: [PY_ADD, PY_ADD_TESTS],
    wrong: ['def add(a, b):\n    return a - b\n', PY_ADD_TESTS],
    work: 'print(sum(i * i for i in range(10000)))\n',
    spin: 'while True:\n    pass\n',
    memoryBomb: 'chunks = []\nwhile True:\n    chunks.append(bytearray(8 * 1024 * 1024))\n',
    crashes: [
      'import os\nos._exit(1)\n',
      'import sys, functools\nsys.setrecursionlimit(10**6)\n@functools.lru_cache(None)\ndef f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\nf(10**5)\n',
      'import faulthandler\nfaulthandler._sigsegv()\n',
    ],
    clobber: 'import sys, builtins\nsys.settrace(None)\nsys.setprofile(None)\nbuiltins.range = None\nbuiltins.print = None\nwhile True:\n    pass\n',
    setGlobal: 'LEAKED = 42\nimport builtins\nbuiltins.LEAKED_TOO = 1\n',
    checkGlobal: 'import builtins\nassert "LEAKED" not in globals()\nassert not hasattr(builtins, "LEAKED_TOO")\n',
    chance: 'import random, time, datetime, os\nprint(random.random(), random.randint(0, 10**9), os.urandom(4).hex())\nprint(time.time(), time.monotonic(), datetime.datetime.now().isoformat())\n',
    escapes: `
def attempt(label, f):
    try:
        f()
        print(label, "ALLOWED")
    except BaseException as e:
        print(label, "refused", type(e).__name__)

import importlib
for name in ("js", "pyodide_js", "pyodide.ffi", "pyodide.http", "micropip", "ctypes", "_pyodide_core", "_ctypes"):
    attempt("import " + name, lambda: importlib.import_module(name))
import _imp
from importlib.machinery import ModuleSpec, BuiltinImporter
attempt("create_builtin", lambda: _imp.create_builtin(ModuleSpec("_ctypes", BuiltinImporter)) or 1 / 0)
attempt("open /etc/passwd", lambda: open("/etc/passwd").read())
import os
attempt("system", lambda: os.system("echo pwned") == 0 or 1 / 0)
attempt("host environment", lambda: [k for k in os.environ if k not in ("USER", "LOGNAME", "PATH", "PWD", "HOME", "LANG", "_", "TZ", "PYTHONHASHSEED", "PYTHONINSPECT", "LD_LIBRARY_PATH")] or 1 / 0)
import socket
attempt("socket", lambda: socket.create_connection(("1.1.1.1", 80), timeout=1))
import urllib.request
attempt("urlopen", lambda: urllib.request.urlopen("http://example.com", timeout=1))
import gc
core = [m for m in gc.get_objects() if type(m).__name__ == "module" and m.__name__ == "_pyodide_core"]
attempt("eval through a leftover proxy", lambda: core[0].to_js({}).constructor.constructor("return process")())
`,
  },
  js: {
    correct: [JS_ADD, JS_ADD_TESTS],
    wrong: ['function add(a, b) { return a - b; }', JS_ADD_TESTS],
    work: 'let s = 0; for (let i = 0; i < 100000; i++) s += i * i; console.log(s);',
    spin: 'while (true) {}',
    memoryBomb: 'const a = new Array(1e8).fill(0);',
    crashes: [
      'function down(n) { return down(n + 1) + 1; }\ndown(0);',
      'throw 42;',
      'throw { not: "an Error" };',
      'throw null;',
    ],
    clobber: 'globalThis.Object = null; Function.prototype.call = null; console.log = null;\nwhile (true) {}',
    setGlobal: 'globalThis.LEAKED = 42; var LEAKED_TOO = 1;',
    checkGlobal: 'if (typeof LEAKED !== "undefined" || typeof LEAKED_TOO !== "undefined") throw new Error("a global leaked between tasks");',
    chance: 'console.log(Math.random(), Math.random(), Date.now(), new Date().toISOString(), new Date(2020, 5, 1).getHours());',
    escapes: `
const attempt = (label, f) => { try { f(); console.log(label, "ALLOWED"); } catch (e) { console.log(label, "refused", String(e).split(":")[0]); } };
attempt("require", () => require("fs"));
attempt("process", () => process.env);
attempt("fetch", () => fetch("http://example.com"));
attempt("XMLHttpRequest", () => new XMLHttpRequest());
attempt("std", () => std.loadFile("/etc/passwd"));
attempt("os", () => os.exec(["ls"]));
attempt("Function", () => Function("return globalThis.process")().env);
`,
  },
};

for (const language of ['python', 'js'] as const) {
  const c = CASES[language];
  describe(`${language} candidates`, () => {
    test('a correct candidate passes, a wrong one fails', async () => {
      const ok = await sb.run(task(language, ...c.correct));
      expectVerdict(ok, 'passed');
      assert.equal(ok.error, undefined);
      const bad = await sb.run(task(language, ...c.wrong));
      expectVerdict(bad, 'failed', 'IM_TRAP');
      assert.match(bad.error?.message ?? '', language === 'python' ? /AssertionError/ : /should be 3/);
    });

    test('an infinite loop runs out of fuel, and the sandbox keeps working', async () => {
      const r = await sb.run(task(language, c.spin));
      expectVerdict(r, 'timed-out', 'IM_FUEL_EXHAUSTED');
      assert.equal(r.fuel, FUEL[language]);
      expectVerdict(await sb.run(task(language, ...c.correct)), 'passed');
    });

    test('a memory bomb errors, and the sandbox keeps working', async () => {
      const r = await sb.run(task(language, c.memoryBomb));
      expectVerdict(r, 'errored', 'IM_MEMORY_EXCEEDED');
      expectVerdict(await sb.run(task(language, ...c.correct)), 'passed');
    });

    test('attempts to crash the interpreter error, and the sandbox keeps working', async () => {
      const results = await Promise.all(c.crashes.map((p) => sb.run(task(language, p))));
      for (const r of results) {
        expectVerdict(r, 'errored');
        assert.ok(r.fuel <= FUEL[language]);
      }
      expectVerdict(await sb.run(task(language, ...c.correct)), 'passed');
    });

    test('the fuel of a task does not depend on what ran before it', async () => {
      const a = task(language, c.work);
      const first = await sb.run(a);
      await sb.run(task(language, c.spin));
      await sb.run(task(language, c.setGlobal));
      const again = await sb.run(a);
      expectVerdict(first, 'passed');
      assert.ok(first.fuel > 0);
      assert.equal(again.fuel, first.fuel);
      assert.equal(again.stdout, first.stdout);
    });

    test('switching off tracing or clobbering builtins does not stop metering', async () => {
      const r = await sb.run(task(language, c.clobber));
      expectVerdict(r, 'timed-out', 'IM_FUEL_EXHAUSTED');
      assert.equal(r.fuel, FUEL[language]);
    });

    test('a task cannot see the globals of the previous one', async () => {
      expectVerdict(await sb.run(task(language, c.setGlobal)), 'passed');
      expectVerdict(await sb.run(task(language, '', c.checkGlobal)), 'passed');
    });

    test('random numbers are seeded and the clock is fixed', async () => {
      const [one, two, other] = await Promise.all([
        sb.run(task(language, c.chance, '', {}, 7)),
        sb.run(task(language, c.chance, '', {}, 7)),
        sb.run(task(language, c.chance, '', {}, 8)),
      ]);
      expectVerdict(one, 'passed');
      assert.equal(two.stdout, one.stdout);
      assert.equal(two.fuel, one.fuel);
      assert.notEqual(other.stdout, one.stdout);
      // The guest's clock starts at 2024-01-01T00:00:00Z and moves only when read.
      assert.match(one.stdout, language === 'python' ? /1704067200\.\d+ .*2024-01-01T00:00:00/ : new RegExp(`${FIXED_EPOCH_MS + 1} 2024-01-01T00:00:00`));
    });

    test('network, file system and host access attempts fail', async () => {
      const r = await sb.run(task(language, c.escapes, '', { outputBytes: 1 << 16 }));
      expectVerdict(r, 'passed');
      const lines = r.stdout.trim().split('\n');
      assert.ok(lines.length >= 7, r.stdout);
      for (const line of lines) assert.match(line, / refused /, r.stdout);
    });
  });
}

describe('sandbox behaviour', () => {
  test('output is captured per stream and cut at outputBytes', async () => {
    const py = await sb.run(task('python', 'import sys\nprint("é" * 100)\nsys.stderr.write("warn\\n")\nprint("tail", end="")', '', { outputBytes: 11 }));
    expectVerdict(py, 'passed');
    assert.equal(py.stdout, 'é'.repeat(5));
    assert.equal(py.stderr, 'warn\n');
    const js = await sb.run(task('js', 'console.log("a"); console.error("b"); console.log({ x: [1, 2] }, 3n, null);'));
    expectVerdict(js, 'passed');
    assert.equal(js.stdout, 'a\n{"x":[1,2]} 3 null\n');
    assert.equal(js.stderr, 'b\n');
  });

  test('errors in the program are errored, errors in the tests are failed', async () => {
    expectVerdict(await sb.run(task('python', 'def f(:\n')), 'errored', 'IM_TRAP');
    expectVerdict(await sb.run(task('python', 'raise ValueError("top level")')), 'errored', 'IM_TRAP');
    expectVerdict(await sb.run(task('python', 'import sys\nsys.exit(0)')), 'errored', 'IM_EXIT_NONZERO');
    expectVerdict(await sb.run(task('python', PY_ADD, 'add(1)')), 'failed', 'IM_TRAP');
    expectVerdict(await sb.run(task('js', 'function (')), 'errored', 'IM_TRAP');
    expectVerdict(await sb.run(task('js', JS_ADD, 'throw "not an Error"')), 'failed', 'IM_TRAP');
  });

  test('the wall-clock cap stops a task from outside', async () => {
    const r = await sb.run(task('python', 'while True:\n    pass\n', '', { fuel: Number.MAX_SAFE_INTEGER, timeoutMs: 300 }));
    expectVerdict(r, 'timed-out', 'IM_TIMEOUT');
    const j = await sb.run(task('js', 'while (true) {}', '', { fuel: Number.MAX_SAFE_INTEGER, timeoutMs: 300 }));
    expectVerdict(j, 'timed-out', 'IM_TIMEOUT');
    expectVerdict(await sb.run(task('python', ...CASES.python.correct)), 'passed');
  });

  test('an aborted task ends as errored and frees its interpreter', async () => {
    const ac = new AbortController();
    const running = sb.run(task('js', 'while (true) {}', '', { fuel: Number.MAX_SAFE_INTEGER }), ac.signal);
    setTimeout(() => ac.abort(), 100);
    const r = await running;
    expectVerdict(r, 'errored', 'IM_AGENT_ERROR');
    expectVerdict(await sb.run(task('js', ...CASES.js.correct)), 'passed');
  });

  test('invalid tasks are refused as results, not exceptions', async () => {
    expectVerdict(await sb.run({ ...task('python', ''), language: 'ruby' as CodeLanguage }), 'errored', 'IM_VALIDATION');
    expectVerdict(await sb.run(task('js', '', '', { fuel: -1 })), 'errored', 'IM_VALIDATION');
  });

  test('runCode and a fresh process count the same fuel as the pool', async () => {
    const py = task('python', 'print(sorted(str(i) for i in range(2000))[-1])', PY_ADD_TESTS.replace('check(add)', ''), {}, 1);
    const js = task('js', 'let s = 0; for (let i = 0; i < 100000; i++) s += i; console.log(s);', '', {}, 1);
    const pooled = await Promise.all([sb.run(py), sb.run(js)]);
    const oneShot = await Promise.all([runCode(py), runCode(js)]);
    const entry = new URL('../src/index.js', import.meta.url).href;
    const script = `import { runCode } from ${JSON.stringify(entry)};
      const tasks = JSON.parse(process.argv[1]);
      const rs = await Promise.all(tasks.map((t) => runCode(t)));
      console.log(JSON.stringify(rs.map((r) => [r.verdict, r.fuel, r.stdout])));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, JSON.stringify([py, js])]);
    const fresh = JSON.parse(stdout) as Array<[string, number, string]>;
    for (let i = 0; i < 2; i++) {
      const p = pooled[i] as CodeResult;
      expectVerdict(p, 'passed');
      assert.ok(p.fuel > 0);
      assert.deepEqual([oneShot[i]?.verdict, oneShot[i]?.fuel, oneShot[i]?.stdout], [p.verdict, p.fuel, p.stdout]);
      assert.deepEqual(fresh[i], [p.verdict, p.fuel, p.stdout]);
    }
  });
});
