import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { environmentVariableFor } from '../../src/core/config.ts';
import type { ToolPlan } from '../../src/install/plan.ts';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { createSandbox, runUpkeep, type Sandbox } from '../helpers/sandbox.ts';

/**
 * A release download is planned with the latest version known offline, then
 * the upstream is asked before anything runs: the plan shows (and the
 * install fetches) the release that is latest now, from the configured
 * GitHub endpoint.
 */

const repository = resolve(import.meta.dirname, '../..');
let fake: FakeUpstream;
let sandbox: Sandbox;

beforeAll(async () => {
  fake = await startFakeUpstream({});
});
afterAll(async () => fake.close());

beforeEach(async () => {
  sandbox = await createSandbox({ UPKEEP_NETWORK_TIMEOUT: '2', UPKEEP_NETWORK_RETRIES: '0' });
  const catalog = join(sandbox.root, 'catalog');
  await mkdir(join(catalog, 'tools'), { recursive: true });
  await copyFile(join(repository, 'catalog', 'groups.yaml'), join(catalog, 'groups.yaml'));
  await writeFile(
    join(catalog, 'tools', 'fetchme.yaml'),
    [
      'id: fetchme',
      'name: Fetchme',
      'description: A tool released on GitHub',
      'homepage: https://github.com/owner/fetchme',
      'category: system',
      'upstream: {source: github, repo: owner/fetchme}',
      'install:',
      '  binary:',
      '    url: https://github.com/owner/fetchme/releases/download/v{version}/fetchme-{version}-{os}-{arch}.tar.gz',
      '',
    ].join('\n'),
  );
  await writeFile(join(catalog, 'latest-versions.json'), JSON.stringify({ schemaVersion: 1, generatedAt: '2026-01-01T00:00:00Z', tools: { fetchme: { version: '1.0.0', source: 'github' } } }));
  sandbox.environment.UPKEEP_CATALOG_DIR = catalog;
  sandbox.environment.UPKEEP_OS_RELEASE = join(repository, 'test', 'fixtures', 'os-release', 'debian-12');
  for (const [key, url] of Object.entries(fake.endpoints())) sandbox.environment[environmentVariableFor(`endpoints.${key}`)] = url;
});
afterEach(async () => sandbox.cleanup());

describe('planning a release download', () => {
  it('asks the upstream for the latest release and plans that one from the configured endpoint', async () => {
    fake.setTool('fetchme', { source: 'github', repo: 'owner/fetchme', releases: [{ tag: 'v2.1.0' }] });
    const run = await runUpkeep(['install', 'fetchme', '--dry-run', '--json'], sandbox.environment);
    expect(run.exitCode, run.stderr).toBe(0);
    const plan = run.json<{ plans: ToolPlan[] }>().plans[0]!;
    expect(plan.version).toBe('2.1.0');
    const step = plan.steps.find((entry) => entry.kind === 'binary');
    expect(step?.kind === 'binary' && step.download.url).toBe(`${fake.endpoints().github}/owner/fetchme/releases/download/v2.1.0/fetchme-2.1.0-linux-x86_64.tar.gz`);
  });

  it('keeps the version known offline when the upstream cannot answer', async () => {
    fake.setTool('fetchme', { source: 'github', repo: 'owner/fetchme', releases: [{ tag: 'v2.1.0' }], behaviour: 'server-error' });
    const run = await runUpkeep(['install', 'fetchme', '--dry-run', '--json'], sandbox.environment);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.json<{ plans: ToolPlan[] }>().plans[0]!.version).toBe('1.0.0');
  });
});
