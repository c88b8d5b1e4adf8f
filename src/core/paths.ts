import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where upkeep keeps its files (DESIGN rule 6). XDG variables are honoured;
 * UPKEEP_HOME puts everything under one folder (handy for tests and for
 * portable installs); UPKEEP_CONFIG_DIR and friends redirect one kind.
 */
export interface Paths {
  readonly config: string;
  readonly cache: string;
  readonly state: string;
  readonly data: string;
}

export type Environment = Readonly<Record<string, string | undefined>>;

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

export function resolvePaths(environment: Environment = process.env): Paths {
  const home = nonEmpty(environment.HOME) ?? homedir();
  const upkeepHome = nonEmpty(environment.UPKEEP_HOME);
  const base = (kind: 'config' | 'cache' | 'state' | 'data', xdg: string, fallback: string): string => {
    const explicit = nonEmpty(environment[`UPKEEP_${kind.toUpperCase()}_DIR`]);
    if (explicit) return explicit;
    if (upkeepHome) return join(upkeepHome, kind);
    return join(nonEmpty(environment[xdg]) ?? join(home, fallback), 'upkeep');
  };
  return {
    config: base('config', 'XDG_CONFIG_HOME', '.config'),
    cache: base('cache', 'XDG_CACHE_HOME', '.cache'),
    state: base('state', 'XDG_STATE_HOME', join('.local', 'state')),
    data: base('data', 'XDG_DATA_HOME', join('.local', 'share')),
  };
}
