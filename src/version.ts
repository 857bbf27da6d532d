import { PACKAGE_JSON } from './lib/package-root.js';

/** Version from package.json (one source of truth), read once at start-up. */
export const VERSION: string = PACKAGE_JSON.version ?? '0.0.0';
