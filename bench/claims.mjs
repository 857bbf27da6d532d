// The delegation token every benchmark mints: a two-actor chain, a cnf-bound certificate and
// one hop grant, as an STS would issue for orders → ledger on behalf of a user.
export const ISSUER = 'https://sts.bench.example.org';
export const WORKLOAD = 'spiffe://bench.example.org/ns/payments/sa/ledger';
export const CALLER = 'spiffe://bench.example.org/ns/orders/sa/orders';

/** Claims for one token; `jti` makes it unique, `thumb` binds it to the caller's certificate. */
export function benchClaims({ nowS, jti, thumb }) {
  return {
    iss: ISSUER,
    aud: WORKLOAD,
    sub: 'user:alice@example.org',
    iat: nowS,
    exp: nowS + 3000,
    jti,
    txn: 'txn-7d1c',
    act: { sub: CALLER, act: { sub: 'spiffe://bench.example.org/ns/edge/sa/gateway' } },
    cnf: { 'x5t#S256': thumb },
    authorization_details: [
      {
        type: 'hop',
        locations: [WORKLOAD],
        actions: ['POST', 'GET'],
        paths: ['/v1/ledger/entries', '/v1/accounts/*/balance', '/v1/reports/**'],
      },
    ],
  };
}
