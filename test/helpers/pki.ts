/**
 * A throwaway PKI made by the test with the `openssl` CLI (Node cannot issue X.509
 * certificates): a CA, and leaf certificates it signs for loopback servers and clients.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Pki {
  readonly dir: string;
  readonly caFile: string;
  readonly caPem: string;
  /** Issues a leaf (P-256) signed by the CA; returns its cert and key files. */
  issue(name: string, opts?: { san?: string; clientAuth?: boolean }): { certFile: string; keyFile: string };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makePki(dir = mkdtempSync(path.join(tmpdir(), 'hopguard-pki-'))): Pki {
  const caKey = path.join(dir, 'ca.key');
  const caFile = path.join(dir, 'ca.pem');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', caKey], dir);
  openssl(['req', '-x509', '-new', '-key', caKey, '-sha256', '-days', '2', '-subj', '/CN=hopguard test CA', '-out', caFile], dir);
  return {
    dir,
    caFile,
    caPem: readFileSync(caFile, 'utf8'),
    issue(name, opts = {}) {
      const keyFile = path.join(dir, `${name}.key`);
      const csr = path.join(dir, `${name}.csr`);
      const certFile = path.join(dir, `${name}.pem`);
      const ext = path.join(dir, `${name}.ext`);
      const san = opts.san ?? 'DNS:localhost,IP:127.0.0.1';
      writeFileSync(
        ext,
        [
          `subjectAltName=${san}`,
          'basicConstraints=critical,CA:FALSE',
          'keyUsage=critical,digitalSignature,keyEncipherment',
          `extendedKeyUsage=${opts.clientAuth === true ? 'clientAuth' : 'serverAuth'}`,
        ].join('\n'),
      );
      openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile], dir);
      openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${name}`, '-out', csr], dir);
      openssl(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-days', '2', '-sha256', '-extfile', ext, '-out', certFile], dir);
      return { certFile, keyFile };
    },
  };
}
