/**
 * The form a `typ` is compared in (SPEC §2: case-insensitive, an `application/` prefix
 * allowed): `Application/Delegation+JWT` → `delegation+jwt`. ASCII letters only are
 * lower-cased: Unicode case folding could map other text onto ours (`K`, U+212A KELVIN
 * SIGN, folds to `k`). The config's expected typ and the token's typ both go through this.
 */
export function normalizeTyp(typ: string): string {
  const l = typ.replace(/[A-Z]+/g, (m) => m.toLowerCase());
  return l.startsWith('application/') ? l.slice('application/'.length) : l;
}
