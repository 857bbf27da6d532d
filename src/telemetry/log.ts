/**
 * Operational log: JSON lines on stderr, kept apart from decision events (stdout) by stream
 * and by the `event` field, so a log pipeline can never confuse the two.
 *
 * Debug tracing is grouped in categories switched on with HOPGUARD_TRACE=token,jwks,...
 * (or `all`). Call sites check `tracing.<cat>` BEFORE building a message, so a disabled
 * category costs one property read on the hot path.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type TraceCategory = 'check' | 'token' | 'jwks' | 'config';

function parseTrace(spec: string | undefined): Record<TraceCategory, boolean> {
  const set = new Set((spec ?? '').split(',').map((s) => s.trim()).filter(Boolean));
  const all = set.has('all') || set.has('*');
  return {
    check: all || set.has('check'),
    token: all || set.has('token'),
    jwks: all || set.has('jwks'),
    config: all || set.has('config'),
  };
}

export const tracing: Readonly<Record<TraceCategory, boolean>> = parseTrace(process.env.HOPGUARD_TRACE);

export interface LogSink {
  write(line: string): void;
}

const stderrSink: LogSink = { write: (line) => void process.stderr.write(line) };

export class Logger {
  private min: number;
  constructor(
    level: LogLevel = 'info',
    private sink: LogSink = stderrSink,
  ) {
    this.min = RANK[level];
  }
  setLevel(level: LogLevel): void {
    this.min = RANK[level];
  }
  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.min;
  }
  debug(msg: string, fields?: Record<string, unknown>): void {
    if (this.min <= RANK.debug) this.emit('debug', msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    if (this.min <= RANK.info) this.emit('info', msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    if (this.min <= RANK.warn) this.emit('warn', msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.emit('error', msg, fields);
  }
  /** Trace output is debug-level output of an enabled category, regardless of `log.level`. */
  trace(cat: TraceCategory, msg: string, fields?: Record<string, unknown>): void {
    this.emit('debug', msg, { trace: cat, ...fields });
  }
  private emit(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    const rec: Record<string, unknown> = { event: 'hopguard.log', level, ts: new Date().toISOString(), msg };
    // The envelope is fixed: a field named `event` (or level, ts, msg) cannot make a log
    // line pass for a decision event or lie about its level.
    if (fields !== undefined) {
      for (const k of Object.keys(fields)) if (!Object.hasOwn(rec, k)) rec[k] = fields[k];
    }
    let line: string;
    try {
      line = JSON.stringify(rec, errorReplacer);
    } catch {
      line = JSON.stringify({ event: 'hopguard.log', level, ts: rec.ts, msg });
    }
    this.sink.write(line + '\n');
  }
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return code === undefined ? { message: value.message } : { message: value.message, code };
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}
