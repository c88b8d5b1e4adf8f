import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeOrigin, environmentVariableFor, loadConfig } from '../../src/core/config.ts';
import { resolvePaths } from '../../src/core/paths.ts';

let root: string;
let environment: Record<string, string>;
let project: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'upkeep-config-'));
  project = join(root, 'project', 'sub');
  await mkdir(project, { recursive: true });
  await mkdir(join(root, 'upkeep', 'config'), { recursive: true });
  environment = { HOME: join(root, 'home'), UPKEEP_HOME: join(root, 'upkeep'), UPKEEP_SYSTEM_CONFIG: join(root, 'system.yaml') };
});
afterEach(async () => rm(root, { recursive: true, force: true }));

const load = (flags: Record<string, unknown> = {}, cwd = project) =>
  loadConfig({ paths: resolvePaths(environment), environment, cwd, flags });

describe('loadConfig', () => {
  it('gives the defaults when nothing is set', async () => {
    const { config, origins, files } = await load();
    expect(config.audit.probeTimeout).toBe(10);
    expect(config.network.retries).toBe(2);
    expect(config.endpoints.npm).toBe('https://registry.npmjs.org');
    expect(origins.size).toBe(0);
    expect(files).toEqual([]);
  });

  it('layers system < user < project < environment < flags and remembers each origin', async () => {
    await writeFile(join(root, 'system.yaml'), 'audit:\n  probeTimeout: 3\n  cacheTtl: 60\nnetwork:\n  retries: 5\n');
    await writeFile(join(root, 'upkeep', 'config', 'config.yaml'), 'audit:\n  probeTimeout: 4\n');
    await writeFile(join(root, 'project', '.upkeep.yaml'), 'audit:\n  probeTimeout: 5\n  offline: true\n');
    environment.UPKEEP_NETWORK_RETRIES = '7';
    environment.UPKEEP_AUDIT_EXTRA_PATHS = '/a,/b';
    const { config, origins, files } = await load({ 'audit.offline': false });
    expect(config.audit).toMatchObject({ probeTimeout: 5, cacheTtl: 60, offline: false, extraPaths: ['/a', '/b'] });
    expect(config.network.retries).toBe(7);
    expect(files.map((file) => file.layer)).toEqual(['system', 'user', 'project']);
    expect(describeOrigin(origins.get('audit.probeTimeout')!)).toBe(`project file ${join(root, 'project', '.upkeep.yaml')}`);
    expect(describeOrigin(origins.get('audit.cacheTtl')!)).toBe(`system file ${join(root, 'system.yaml')}`);
    expect(describeOrigin(origins.get('network.retries')!)).toBe('environment UPKEEP_NETWORK_RETRIES');
    expect(describeOrigin(origins.get('audit.offline')!)).toBe('flag --offline');
  });

  it('names the file, key and reason of an invalid value', async () => {
    const user = join(root, 'upkeep', 'config', 'config.yaml');
    await writeFile(user, 'audit:\n  probeTimeout: -1\n');
    await expect(load()).rejects.toMatchObject({ code: 'E_CONFIG_INVALID', exitCode: 2 });
    await expect(load()).rejects.toThrow(`${user}: audit.probeTimeout:`);
  });

  it('rejects unknown keys, so that typos are not silently ignored', async () => {
    await writeFile(join(root, 'upkeep', 'config', 'config.yaml'), 'audit:\n  probeTimout: 3\n');
    await expect(load()).rejects.toThrow(/probeTimout/);
  });

  it('reports YAML syntax errors with the path', async () => {
    const user = join(root, 'upkeep', 'config', 'config.yaml');
    await writeFile(user, 'audit: [unclosed\n');
    await expect(load()).rejects.toMatchObject({ code: 'E_CONFIG_PARSE' });
    await expect(load()).rejects.toThrow(user);
  });

  it('rejects a malformed environment value with the variable name', async () => {
    environment.UPKEEP_AUDIT_OFFLINE = 'maybe';
    await expect(load()).rejects.toThrow('UPKEEP_AUDIT_OFFLINE=maybe is not a boolean');
    environment.UPKEEP_AUDIT_OFFLINE = '1';
    environment.UPKEEP_NETWORK_TIMEOUT = 'soon';
    await expect(load()).rejects.toThrow('UPKEEP_NETWORK_TIMEOUT=soon is not a number');
  });

  it('treats an empty file as no settings', async () => {
    await writeFile(join(root, 'upkeep', 'config', 'config.yaml'), '');
    expect((await load()).config.audit.probeTimeout).toBe(10);
  });
});

describe('environmentVariableFor', () => {
  it('maps dotted camel-case keys to UPKEEP_ variables', () => {
    expect(environmentVariableFor('audit.probeTimeout')).toBe('UPKEEP_AUDIT_PROBE_TIMEOUT');
    expect(environmentVariableFor('endpoints.githubApi')).toBe('UPKEEP_ENDPOINTS_GITHUB_API');
  });
});
