/** Flag parsing, output and run helpers shared by every command (commands never import each other). */
import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigIssuesError, formatIssues } from '../config/issues.js';
import type { ParsedConfig } from '../config/load.js';
import type { LogLevel } from '../config/types.js';
import { exitAfterStop } from '../runtime/signals.js';
import { Logger } from '../telemetry/log.js';

/** A usage mistake: printed with the command's usage text, exit code 2. */
export class UsageError extends Error {
  readonly code = 'usage';
}

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse<O extends Options>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`missing --${flag}`);
  return value;
}

/** Output channel for commands; tests capture it instead of the real stdout/stderr. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: Io = {
  out: (t) => void process.stdout.write(t),
  err: (t) => void process.stderr.write(t),
};

/** `--now` accepts epoch seconds or an RFC 3339 time, so a decision can be replayed later. */
export function parseNow(s: string): number {
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  const ms = Date.parse(s);
  if (Number.isNaN(ms)) throw new UsageError(`--now: expected epoch seconds or RFC 3339, got ${JSON.stringify(s)}`);
  return ms;
}

/** A token flag's value: the token itself, `@FILE` to read it from a file, or `-` for stdin. */
export async function readTokenArg(arg: string): Promise<string> {
  if (arg === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8').trim();
  }
  if (arg.startsWith('@')) return (await readFile(arg.slice(1), 'utf8')).trim();
  return arg;
}

/**
 * A long-running command (`serve`, `sts`): load its config file (an invalid one names the
 * key, exit 2), run until a signal stops it (a config error found while starting — a
 * checkpoint key that does not load — also names the key, exit 2), then end the process.
 */
export async function runServerCommand<C extends { readonly log: { readonly level: LogLevel } }>(
  file: string,
  io: Io,
  load: (file: string, env: Readonly<Record<string, string | undefined>>) => Promise<ParsedConfig<C>>,
  run: (config: C, logger: Logger) => Promise<void>,
): Promise<number> {
  const loaded = await load(file, process.env);
  if (!loaded.ok) {
    io.err(formatIssues(loaded.errors, file) + '\n');
    return 2;
  }
  const logger = new Logger(loaded.config.log.level);
  try {
    await run(loaded.config, logger);
  } catch (err) {
    if (!(err instanceof ConfigIssuesError)) throw err;
    io.err(formatIssues(err.issues, file) + '\n');
    return 2;
  }
  exitAfterStop(logger);
  return 0;
}
