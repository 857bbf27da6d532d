/** Public API of the pure decision core. */
export * from './reasons.js';
export type * from './types.js';
export { allow, deny } from './decision.js';
export { isExempt, selectToken } from './select.js';
export { canonicalProblem, compilePattern, matchPattern, stripQuery, type PathPattern } from './path.js';
export { x5tS256 } from './cert.js';
export { isSpiffeId, parseChain, trustDomainOf } from './chain.js';
export {
  isPlainObject,
  validateClaims,
  type ActClaim,
  type AuthorizationDetail,
  type DelegationClaims,
} from './claims.js';
export { explainGrants, matchGrant } from './grants.js';
export { decide } from './decide.js';
export { auditFromPayload, type PayloadAudit } from './audit.js';
