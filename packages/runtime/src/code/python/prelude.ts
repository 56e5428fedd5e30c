/**
 * Python run once per interpreter, after Pyodide is up and before any fuel is
 * counted. It cuts the import paths that lead out of the sandbox and builds
 * the runner the host calls. The host also removes the risky built-in
 * modules from the interpreter's table (see hooks.ts), so they stay gone even
 * if the program undoes what this code does at the Python level.
 */

/** Top-level module names a program may not import. */
export const BLOCKED_MODULES = [
  // Pyodide's bridges to JavaScript, and its package installer.
  'js', 'pyodide_js', 'pyodide', '_pyodide', '_pyodide_core', 'micropip',
  // Raw memory and C-level access.
  'ctypes', '_ctypes', '_testcapi', '_testinternalcapi', '_testlimitedcapi', '_testbuffer',
  '_testclinic', '_testclinic_limited', '_testmultiphase', '_testsinglephase', '_xxtestfuzz',
  '_remote_debugging', '_posixsubprocess',
] as const;

/** Built-in (statically linked) modules among those, removed from the interpreter's table by the host. */
export const BLOCKED_BUILTINS = BLOCKED_MODULES.filter((m) => m.startsWith('_') && m !== '_pyodide');

/**
 * Evaluates to (seed, run, flush). `run` compiles and executes one source in
 * the task's namespace; its frame is the only one of ours a program can see,
 * and it holds nothing but its arguments and the namespace.
 */
export function lockdownSource(): string {
  const blocked = BLOCKED_MODULES.map((m) => `'${m}'`).join(', ');
  return `
def _idlemesh_lockdown():
    import sys, builtins, _imp, random
    import importlib.machinery as machinery
    from _pyodide._importhook import unregister_js_module
    for name in ('js', 'pyodide_js'):
        try:
            unregister_js_module(name)
        except Exception:
            pass
    blocked = frozenset((${blocked}))

    class Refuse:
        """First on sys.meta_path: the blocked modules are not found, wherever they are."""
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.partition('.')[0] in blocked:
                raise ModuleNotFoundError(f"No module named {name!r} (not available in the sandbox)", name=name)
            return None

    keep = (machinery.BuiltinImporter, machinery.FrozenImporter, machinery.PathFinder)
    sys.meta_path[:] = [Refuse] + [f for f in sys.meta_path if f in keep]
    for name in list(sys.modules):
        if name.partition('.')[0] in blocked:
            del sys.modules[name]
    create_builtin = _imp.create_builtin

    def guarded_create_builtin(spec):
        if spec.name.partition('.')[0] in blocked:
            raise ModuleNotFoundError(f"No module named {spec.name!r} (not available in the sandbox)", name=spec.name)
        return create_builtin(spec)

    _imp.create_builtin = guarded_create_builtin
    out, err = sys.stdout, sys.stderr
    for stream in (out, err):
        # Line by line to the host, so a program stopped midway still shows what it printed.
        stream.reconfigure(line_buffering=True)
    ns = {'__name__': '__main__', '__builtins__': builtins, '__doc__': None}
    run_exec, run_compile, seed = exec, compile, random.seed

    def run(source, filename):
        run_exec(run_compile(source, filename, 'exec', dont_inherit=True), ns)

    def flush():
        for stream in (out, err):
            try:
                stream.flush()
            except Exception:
                pass

    return seed, run, flush

globals().pop('_idlemesh_lockdown')()
`;
}
