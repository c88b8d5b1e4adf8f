import { createRequire } from 'node:module';

declare const __UPKEEP_VERSION__: string | undefined;

/** Set by the bundler; read from package.json when running from source. */
export const upkeepVersion: string =
  typeof __UPKEEP_VERSION__ === 'string'
    ? __UPKEEP_VERSION__
    : (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
