/** Caller certificates for `cnf` (RFC 8705) binding tests, shared by unit, integration and CLI tests. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Self-signed P-256 certificates generated with openssl for these tests (SAN = the orders CALLER). */
export const CALLER_PEM_FILE = fileURLToPath(new URL('../fixtures/core-caller-cert.pem', import.meta.url));
export const OTHER_PEM_FILE = fileURLToPath(new URL('../fixtures/core-other-cert.pem', import.meta.url));
export const CALLER_PEM = readFileSync(CALLER_PEM_FILE, 'utf8');
export const OTHER_PEM = readFileSync(OTHER_PEM_FILE, 'utf8');
/**
 * Their RFC 8705 thumbprints, computed independently with
 * `openssl x509 -outform DER | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '='`.
 */
export const CALLER_X5T = 'Ozs79rbqCuug7FuGWKWMwbPlospZa0w0PjMOX5XJQS0';
export const OTHER_X5T = 'vuEBQesvDzvu0FlnuB0awHyP24RKSBDDQ-r07Euy8sA';
