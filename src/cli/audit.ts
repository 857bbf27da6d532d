import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { calculateJwkThumbprint } from 'jose';
import { verifyAuditFiles, type ChainReport, type Finding, type VerifyReport } from '../audit/verify.js';
import { parseJwks, type JwkSet } from '../token/jwks.js';
import { parseStrictJson } from '../token/json.js';
import { UsageError, type Io } from './flags.js';

export const AUDIT_USAGE = 'hopguard audit verify [--jwks FILE] [--strict] [--json] FILE...';

/** Exit codes of `audit verify` (scriptable): */
export const AUDIT_EXIT = {
  /** Every chain verified: no tampering, no bad signature (and with --strict: no gap, closed). */
  ok: 0,
  /** A chain failed, or no chain was found. */
  failed: 1,
  /** Usage error, unreadable --jwks, or an input that could not be read to its end. */
  error: 2,
} as const;

export async function auditCommand(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'verify') throw new UsageError(sub === undefined ? 'missing subcommand' : `unknown subcommand ${JSON.stringify(sub)}`);
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      options: { jwks: { type: 'string' }, strict: { type: 'boolean' }, json: { type: 'boolean' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const { values, positionals } = parsed;
  if (positionals.length === 0) throw new UsageError('no FILE to verify');
  let keys: JwkSet | undefined;
  if (values.jwks !== undefined) {
    try {
      keys = await loadVerificationKeys(values.jwks);
    } catch (err) {
      io.err(`hopguard audit verify: --jwks ${values.jwks}: ${err instanceof Error ? err.message : String(err)}\n`);
      return AUDIT_EXIT.error;
    }
  }
  const report = await verifyAuditFiles(positionals, { keys, strict: values.strict === true });
  const code = report.files.some((f) => f.error !== undefined) ? AUDIT_EXIT.error : report.ok ? AUDIT_EXIT.ok : AUDIT_EXIT.failed;
  if (values.json === true) io.out(JSON.stringify(report) + '\n');
  else io.out(formatReport(report, values.jwks, code));
  return code;
}

/**
 * The public keys that verify checkpoints: a JWKS (what `hopguard keygen --jwks` writes) or
 * a single public JWK. A key without `kid` is known by its RFC 7638 thumbprint, the kid a
 * checkpoint key without one signs with.
 */
export async function loadVerificationKeys(file: string): Promise<JwkSet> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  const json = parseStrictJson(new TextEncoder().encode(text));
  if (!json.ok) throw new Error(`not JSON: ${json.problem}`);
  let doc = json.value;
  if (typeof doc === 'object' && doc !== null && !Array.isArray(doc) && 'kty' in doc) {
    const jwk = { ...(doc as Record<string, unknown>) };
    if (typeof jwk['kid'] !== 'string' || jwk['kid'] === '') {
      try {
        jwk['kid'] = await calculateJwkThumbprint(jwk, 'sha256');
      } catch {
        // parseJwks reports what is wrong with it
      }
    }
    doc = { keys: [jwk] };
  }
  const set = parseJwks(doc);
  if (!set.ok) {
    const hint = /private key material/.test(set.problem) ? ' (give the public keys, e.g. the JWKS `hopguard keygen` wrote)' : '';
    throw new Error(set.problem + hint);
  }
  if (set.keys.size === 0) throw new Error('no usable signature key (with a kid) in it');
  return set.keys;
}

// ---- human output ----------------------------------------------------------------------

const LIST = 20;

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function ranges(gaps: readonly [number, number][]): string {
  const shown = gaps.slice(0, LIST).map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`));
  return shown.join(', ') + (gaps.length > LIST ? `, … and ${gaps.length - LIST} more` : '');
}

function where(f: Finding): string {
  return f.file === '' ? '' : ` [${f.file}:${f.line}]`;
}

function findingLine(f: Finding): string {
  return `seq ${f.seq ?? '?'}: ${f.kind.replace(/_/g, ' ')} — ${f.detail}${where(f)}`;
}

const TAMPER = new Set(['prev_mismatch', 'conflict', 'out_of_order', 'after_final', 'bad_start']);
const SIGNATURE = new Set(['missing_signature', 'malformed_signature', 'checkpoint_mismatch', 'unknown_key', 'bad_signature']);

function block(label: string, lines: readonly string[]): string[] {
  const pad = label.padEnd(12);
  if (lines.length === 0) return [];
  return [`  ${pad} ${lines[0]}`, ...lines.slice(1).map((l) => `  ${' '.repeat(12)} ${l}`)];
}

function formatChain(c: ChainReport, report: VerifyReport): string[] {
  const out: string[] = [];
  const who = [c.workload !== null ? `workload ${c.workload}` : undefined, c.version !== null ? `hopguard ${c.version}` : undefined]
    .filter((s) => s !== undefined)
    .join(', ');
  out.push(`chain ${c.chain}${who === '' ? '' : `  (${who})`}`);
  const span = c.first_seq === null ? '' : ` (seq ${c.first_seq} to ${c.last_seq})`;
  const extra = [
    c.duplicates > 0 ? `${plural(c.duplicates, 'exact duplicate line')} ignored` : undefined,
    c.malformed > 0 ? `${plural(c.malformed, 'malformed line')} skipped` : undefined,
  ].filter((s) => s !== undefined);
  out.push(...block('events', [`${c.events}${span}${extra.length > 0 ? '; ' + extra.join('; ') : ''}`]));

  const missing = c.gaps.reduce((n, [a, b]) => n + (b - a + 1), 0);
  out.push(
    ...block('gaps', [
      c.gaps.length === 0 ? 'none' : `${plural(missing, 'event')} missing in ${plural(c.gaps.length, 'range')}: ${ranges(c.gaps)}`,
    ]),
  );

  const tamper = c.findings.filter((f) => TAMPER.has(f.kind));
  out.push(
    ...block(
      'tampering',
      c.broken_links.length === 0
        ? ['none']
        : [
            `${plural(c.broken_links.length, 'broken link')} at seq ${c.broken_links.slice(0, LIST).join(', ')}${c.broken_links.length > LIST ? ', …' : ''}`,
            ...tamper.slice(0, LIST).map(findingLine),
          ],
    ),
  );

  const sigs = c.findings.filter((f) => SIGNATURE.has(f.kind));
  const cp: string[] = [];
  if (c.checkpoints === 0) cp.push('none (no signing key, or the chain ended before its first checkpoint)');
  else {
    const state =
      c.bad_signatures.length > 0
        ? `${c.bad_signatures.length} bad`
        : report.signatures_checked
          ? 'all signatures valid'
          : 'signatures NOT checked (no --jwks)';
    cp.push(`${c.checkpoints}, ${state}${c.signed_through !== null ? `; last valid signed checkpoint at seq ${c.signed_through}` : ''}`);
    if (c.signed_through !== null && c.last_seq !== null && c.signed_through < c.last_seq) {
      cp.push(`events after seq ${c.signed_through} are not covered by a signature`);
    }
    cp.push(...sigs.slice(0, LIST).map(findingLine));
  }
  out.push(...block('checkpoints', cp));
  out.push(...block('closed', [c.closed ? `yes (final checkpoint at seq ${c.last_seq})` : 'no: no final checkpoint at the end (truncated, or the process had not stopped)']));
  const malformed = c.findings.filter((f) => f.kind === 'malformed');
  if (malformed.length > 0) out.push(...block('malformed', malformed.slice(0, 5).map(findingLine)));
  if (c.findings_omitted > 0) out.push(...block('', [`(${c.findings_omitted} more finding(s) not listed)`]));

  let verdict: string;
  if (c.broken_links.length > 0 && c.bad_signatures.length > 0) verdict = 'FAILED: tampering and bad checkpoint signature(s)';
  else if (c.broken_links.length > 0) verdict = 'FAILED: tampering';
  else if (c.bad_signatures.length > 0) verdict = 'FAILED: bad checkpoint signature(s)';
  else if (!c.ok) verdict = `FAILED (--strict): ${[c.gaps.length > 0 ? 'gaps' : '', !c.closed ? 'not closed' : ''].filter((s) => s !== '').join(', ')}`;
  else if (c.gaps.length > 0) verdict = 'OK, with gaps (events missing, not altered)';
  else verdict = 'OK';
  out.push(...block('verdict', [verdict]));
  return out;
}

export function formatReport(report: VerifyReport, jwksFile: string | undefined, code: number): string {
  const lines = report.files.reduce((n, f) => n + f.lines, 0);
  const out: string[] = [];
  out.push(
    `hopguard audit verify: ${plural(report.files.length, 'file')}, ${plural(lines, 'line')} (${report.ignored_lines} not chain events); ` +
      (report.signatures_checked ? `checkpoint signatures checked with ${jwksFile}` : 'checkpoint signatures NOT checked (no --jwks)') +
      (report.strict ? '; --strict' : ''),
  );
  for (const f of report.files) {
    if (f.error === undefined) continue;
    out.push(f.lines === 0 ? `error: cannot read ${f.file}: ${f.error}` : `error: ${f.file}: ${f.error} (reading stopped after line ${f.lines})`);
  }
  for (const c of report.chains) {
    out.push('');
    out.push(...formatChain(c, report));
  }
  out.push('');
  const failed = report.chains.filter((c) => !c.ok).length;
  if (code === AUDIT_EXIT.error) out.push(`Result: INCOMPLETE — an input could not be read to its end (exit ${code})`);
  else if (report.chains.length === 0) out.push(`Result: FAILED — no audit chain found in the input (exit ${code})`);
  else if (failed > 0) out.push(`Result: FAILED — ${failed} of ${plural(report.chains.length, 'chain')} failed (exit ${code})`);
  else out.push(`Result: OK — ${plural(report.chains.length, 'chain')} verified (exit ${code})`);
  if (report.chains.some((c) => c.gaps.length > 0)) {
    out.push('A gap is events missing from the input (dropped by a sink, or lines deleted); tampering is an altered, reordered or inserted event.');
  }
  return out.join('\n') + '\n';
}
