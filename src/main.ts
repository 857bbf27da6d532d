#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { processIo, UsageError, type Io } from './cli/flags.js';
import { VERSION } from './version.js';

interface Command {
  readonly run: (argv: string[], io: Io) => Promise<number>;
  readonly usage: string;
}

/**
 * The command table. A command's module is imported only when that command runs, so each
 * command loads only its own graph: `serve`, the sidecar in every pod, never loads what only
 * the other commands need (the STS and its signing, `mint`/`dev`, proto-loader's client in
 * `call`, the audit verifier, …). Measured in bench/RESULTS.md (Footprint and rate, issue 17).
 */
const COMMANDS: Record<string, { readonly about: string; readonly load: () => Promise<Command> }> = {
  serve: {
    about: 'run the ext_authz server',
    load: () => import('./cli/serve.js').then((m) => ({ run: m.serveCommand, usage: m.SERVE_USAGE })),
  },
  sts: {
    about: 'run the token exchange that issues delegation tokens',
    load: () => import('./cli/sts.js').then((m) => ({ run: m.stsCommand, usage: m.STS_USAGE })),
  },
  dev: {
    about: 'zero-config local run: a local STS, two sidecars and a two-hop walk-through',
    load: () => import('./cli/dev.js').then((m) => ({ run: m.devCommand, usage: m.DEV_USAGE })),
  },
  validate: {
    about: 'check a config file and exit',
    load: () => import('./cli/validate.js').then((m) => ({ run: m.validateCommand, usage: m.VALIDATE_USAGE })),
  },
  check: {
    about: 'explain the decision for one request, offline',
    load: () => import('./cli/check.js').then((m) => ({ run: m.checkCommand, usage: m.CHECK_USAGE })),
  },
  mint: {
    about: 'sign a delegation token',
    load: () => import('./cli/mint.js').then((m) => ({ run: m.mintCommand, usage: m.MINT_USAGE })),
  },
  keygen: {
    about: 'create a signing key and its JWKS',
    load: () => import('./cli/mint.js').then((m) => ({ run: m.keygenCommand, usage: m.KEYGEN_USAGE })),
  },
  call: {
    about: 'send one CheckRequest to a running server',
    load: () => import('./cli/call.js').then((m) => ({ run: m.callCommand, usage: m.CALL_USAGE })),
  },
  exchange: {
    about: 'exchange a token at a running hopguard sts',
    load: () => import('./cli/exchange.js').then((m) => ({ run: m.exchangeCommand, usage: m.EXCHANGE_USAGE })),
  },
  audit: {
    about: 'verify audit event files: hash chains and signed checkpoints',
    load: () => import('./cli/audit.js').then((m) => ({ run: m.auditCommand, usage: m.AUDIT_USAGE })),
  },
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
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (entry === undefined) {
    io.err(`hopguard: unknown command ${JSON.stringify(name)}\n\n${help()}\n`);
    return 2;
  }
  const cmd = await entry.load();
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
