#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { processIo, UsageError, type Io } from './cli/flags.js';
import { auditCommand, AUDIT_USAGE } from './cli/audit.js';
import { callCommand, CALL_USAGE } from './cli/call.js';
import { checkCommand, CHECK_USAGE } from './cli/check.js';
import { devCommand, DEV_USAGE } from './cli/dev.js';
import { exchangeCommand, EXCHANGE_USAGE } from './cli/exchange.js';
import { keygenCommand, KEYGEN_USAGE, mintCommand, MINT_USAGE } from './cli/mint.js';
import { serveCommand, SERVE_USAGE } from './cli/serve.js';
import { stsCommand, STS_USAGE } from './cli/sts.js';
import { validateCommand, VALIDATE_USAGE } from './cli/validate.js';
import { VERSION } from './version.js';

const COMMANDS: Record<string, { run: (argv: string[], io: Io) => Promise<number>; usage: string; about: string }> = {
  serve: { run: serveCommand, usage: SERVE_USAGE, about: 'run the ext_authz server' },
  sts: { run: stsCommand, usage: STS_USAGE, about: 'run the token exchange that issues delegation tokens' },
  dev: { run: devCommand, usage: DEV_USAGE, about: 'zero-config local server with an ephemeral issuer' },
  validate: { run: validateCommand, usage: VALIDATE_USAGE, about: 'check a config file and exit' },
  check: { run: checkCommand, usage: CHECK_USAGE, about: 'explain the decision for one request, offline' },
  mint: { run: mintCommand, usage: MINT_USAGE, about: 'sign a delegation token' },
  keygen: { run: keygenCommand, usage: KEYGEN_USAGE, about: 'create a signing key and its JWKS' },
  call: { run: callCommand, usage: CALL_USAGE, about: 'send one CheckRequest to a running server' },
  exchange: { run: exchangeCommand, usage: EXCHANGE_USAGE, about: 'exchange a token at a running hopguard sts' },
  audit: { run: auditCommand, usage: AUDIT_USAGE, about: 'verify audit event files: hash chains and signed checkpoints' },
};

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    `hopguard ${VERSION} — Envoy ext_authz sidecar for per-hop delegation tokens`,
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.about}`),
    '',
    'Run `hopguard <command> --help` for its flags.',
  ].join('\n');
}

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    io.out(help() + '\n');
    return name === undefined ? 2 : 0;
  }
  if (name === 'version' || name === '--version') {
    io.out(VERSION + '\n');
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    io.err(`hopguard: unknown command ${JSON.stringify(name)}\n\n${help()}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(`usage: ${cmd.usage}\n`);
    return 0;
  }
  try {
    return await cmd.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`hopguard ${name}: ${err.message}\nusage: ${cmd.usage}\n`);
      return 2;
    }
    io.err(`hopguard ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

function isEntryPoint(): boolean {
  const invoked = process.argv[1];
  if (!invoked) return false;
  try {
    // npm's bin links are symlinks: compare real paths.
    return realpathSync(invoked) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

// Run only when executed, not when imported by tests.
if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`hopguard: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
