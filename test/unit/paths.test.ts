import { describe, expect, it } from 'vitest';
import { resolvePaths } from '../../src/core/paths.ts';

describe('resolvePaths', () => {
  it('follows XDG defaults under HOME', () => {
    expect(resolvePaths({ HOME: '/home/ada' })).toEqual({
      config: '/home/ada/.config/upkeep',
      cache: '/home/ada/.cache/upkeep',
      state: '/home/ada/.local/state/upkeep',
      data: '/home/ada/.local/share/upkeep',
    });
  });

  it('honours XDG variables, then UPKEEP_HOME, then one-kind overrides', () => {
    expect(resolvePaths({ HOME: '/h', XDG_CACHE_HOME: '/xdg/cache' }).cache).toBe('/xdg/cache/upkeep');
    expect(resolvePaths({ HOME: '/h', XDG_CACHE_HOME: '/xdg/cache', UPKEEP_HOME: '/u' })).toEqual({
      config: '/u/config',
      cache: '/u/cache',
      state: '/u/state',
      data: '/u/data',
    });
    expect(resolvePaths({ HOME: '/h', UPKEEP_HOME: '/u', UPKEEP_STATE_DIR: '/s' }).state).toBe('/s');
  });

  it('treats empty variables as unset', () => {
    expect(resolvePaths({ HOME: '/h', XDG_CONFIG_HOME: '', UPKEEP_HOME: '' }).config).toBe('/h/.config/upkeep');
  });
});
