import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import type { AuditDocument, ToolReport } from '../../src/audit/types.ts';
import { environmentVariableFor } from '../../src/core/config.ts';
import { startFakeUpstream, type FakeUpstream } from '../helpers/fake-upstream.ts';
import { createSandbox, runUpkeep, writeStub, type Sandbox } from '../helpers/sandbox.ts';

/** `upkeep audit` end to end against the fake upstream: one failing source never stops the rest. */

const catalogDir = resolve(import.meta.dirname, '../fixtures/catalogs/basic');
let fake: FakeUpstream;
let sandbox: Sandbox;
let environment: Record<string, string>;

beforeAll(async () => {
  fake = await startFakeUpstream({ slowMs: 4000 });
});
afterAll(async () => fake.close());

beforeEach(async () => {
  sandbox = await createSandbox({ UPKEEP_CATALOG_DIR: catalogDir, UPKEEP_NETWORK_TIMEOUT: '1', UPKEEP_NETWORK_RETRIES: '1' });
  environment = sandbox.environment;
  for (const [key, url] of Object.entries(fake.endpoints())) environment[environmentVariableFor(`endpoints.${key}`)] = url;
  fake.setTool('ripgrep', { source: 'github', repo: 'BurntSushi/ripgrep', releases: [{ tag: '15.0.0-rc.1', prerelease: true }, { tag: '14.1.2' }] });
  fake.setTool('jq', { source: 'github', repo: 'jqlang/jq', releases: [{ tag: 'jq-1.8.1' }], behaviour: 'rate-limit' });
  fake.setTool('yq', { source: 'github', repo: 'mikefarah/yq', releases: [{ tag: 'v4.48.0' }], behaviour: 'server-error' });
  fake.setTool('ast-grep', { source: 'crates', crate: 'ast-grep', maxStable: '0.40.0', max: '0.40.0', behaviour: 'html' });
  fake.setTool('terraform', { source: 'github', repo: 'hashicorp/terraform', releases: [{ tag: 'v1.14.0' }], behaviour: 'slow' });
  fake.setTool('eslint', { source: 'npm', package: 'eslint', distTags: { latest: '10.1.0' } });
  fake.setTool('slowtool', { source: 'npm', package: 'slowtool', distTags: {}, behaviour: 'bad-json' });
  fake.clearRequests();
});
afterEach(async () => sandbox.cleanup());

function tool(document: AuditDocument, id: string): ToolReport {
  return document.tools.find((report) => report.id === id)!;
}

describe('upkeep audit against upstreams', () => {
  it('uses fresh versions where the upstream answers, and the baseline, marked stale, where it fails', async () => {
    await writeStub(sandbox.bin, 'rg', { stdout: 'ripgrep 14.1.2' });
    await writeStub(sandbox.bin, 'jq', { stdout: 'jq-1.7.1' });
    await writeStub(sandbox.bin, 'eslint', { stdout: 'v9.30.0' });
    const run = await runUpkeep(['audit', '--json'], environment);
    expect(run.exitCode).toBe(0);
    const document = run.json<AuditDocument>();

    expect(tool(document, 'ripgrep')).toMatchObject({ status: 'up-to-date', latest: { version: '14.1.2', stale: false } });
    expect(tool(document, 'eslint')).toMatchObject({ status: 'outdated', delta: 'major', latest: { version: '10.1.0', source: 'npm', stale: false } });
    // Rate limited, 500, HTML instead of JSON, too slow, bad JSON: the committed baseline, marked stale.
    for (const id of ['jq', 'yq', 'ast-grep', 'terraform', 'slowtool']) {
      expect(tool(document, id).latest, id).toMatchObject({ stale: true });
    }
    expect(tool(document, 'jq')).toMatchObject({ status: 'up-to-date', latest: { version: '1.7.1' } });
  });

  it('asks nothing again within the time to live, and everything again with --refresh', async () => {
    await runUpkeep(['audit', '--json'], environment);
    const first = fake.requests.length;
    expect(first).toBeGreaterThan(0);
    fake.clearRequests();
    const again = await runUpkeep(['audit', '--json'], environment);
    expect(tool(again.json<AuditDocument>(), 'ripgrep').latest?.version).toBe('14.1.2');
    // Fresh answers are cached; failures back off for an hour.
    expect(fake.requests).toEqual([]);
    fake.setTool('ripgrep', { source: 'github', repo: 'BurntSushi/ripgrep', releases: [{ tag: '14.2.0' }] });
    const refreshed = await runUpkeep(['audit', 'rg', '--refresh', '--json'], environment);
    expect(tool(refreshed.json<AuditDocument>(), 'ripgrep').latest?.version).toBe('14.2.0');
    expect(fake.requests.length).toBeGreaterThan(0);
  });

  it('never touches the network with --offline', async () => {
    const run = await runUpkeep(['audit', '--offline', '--refresh', '--json'], environment);
    expect(run.exitCode).toBe(0);
    expect(fake.requests).toEqual([]);
    expect(tool(run.json<AuditDocument>(), 'ripgrep').latest).toMatchObject({ version: '14.1.1', stale: true });
  });
});
