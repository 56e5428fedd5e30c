/** One line per notable event, to stderr: human-readable or JSON lines. */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'silent';
export type LogFields = Record<string, unknown>;

export interface Logger {
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
}

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3, silent: -1 };

export function createLogger(opts: {
  level: LogLevel;
  json: boolean;
  now?: () => number;
  write?: (line: string) => void;
}): Logger {
  const max = RANK[opts.level];
  const now = opts.now ?? Date.now;
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const emit = (level: Exclude<LogLevel, 'silent'>, msg: string, fields: LogFields = {}): void => {
    if (RANK[level] > max) return;
    const time = new Date(now()).toISOString();
    if (opts.json) {
      write(`${JSON.stringify({ time, level, name: 'agent', msg, ...fields })}\n`);
      return;
    }
    const extra = Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
      .join(' ');
    write(`${time} ${level.toUpperCase().padEnd(5)} agent: ${msg}${extra === '' ? '' : ` ${extra}`}\n`);
  };
  return {
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    debug: (m, f) => emit('debug', m, f),
  };
}
