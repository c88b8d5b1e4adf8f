import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closestNames, loadCatalog } from '../../src/catalog/loader.ts';
import { BaselineSchema } from '../../src/catalog/schema.ts';
import { createSandbox, runUpkeep, type Sandbox } from '../helpers/sandbox.ts';

const shipped = resolve(import.meta.dirname, '../../catalog');

describe('the shipped catalog', () => {
  it('loads every file without a problem', async () => {
    const catalog = await loadCatalog({ root: shipped });
    expect(catalog.problems).toEqual([]);
    expect(catalog.tools.length).toBeGreaterThanOrEqual(120);
    expect(Object.keys(catalog.presets).length).toBeGreaterThanOrEqual(15);
  });

  it('has a baseline version for every tool with an upstream, and none for unknown tools', async () => {
    const catalog = await loadCatalog({ root: shipped });
    const baseline = BaselineSchema.parse(JSON.parse(await readFile(join(shipped, 'latest-versions.json'), 'utf8')));
    const withUpstream = catalog.tools.filter((tool) => tool.upstream.source !== 'none').map((tool) => tool.id);
    expect(withUpstream.filter((id) => !baseline.tools[id])).toEqual([]);
    expect(Object.keys(baseline.tools).filter((id) => !catalog.byId.has(id))).toEqual([]);
    for (const id of withUpstream) expect(baseline.tools[id]!.source).toBe(catalog.byId.get(id)!.upstream.source);
  });

  it('tells the tools that share a binary name apart', async () => {
    const catalog = await loadCatalog({ root: shipped });
    expect(catalog.byId.get('ast-grep')?.identity?.notPackages).toContain('login');
    expect(catalog.byId.get('yq')?.identity?.output).toMatch(/mikefarah/);
  });
});

describe('loadCatalog on bad files', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'upkeep-catalog-'));
    await mkdir(join(root, 'tools'));
  });
  afterEach(async () => rm(root, { recursive: true, force: true }));

  const good = 'id: good\nname: Good\ndescription: fine\nhomepage: https://example.com\ncategory: text\nupstream:\n  source: npm\n  package: good\n';

  it('names each bad file with the field and the reason, and keeps the good ones', async () => {
    await writeFile(join(root, 'tools', 'good.yaml'), good);
    await writeFile(join(root, 'tools', 'broken.yaml'), 'id: broken\nname: [unclosed\n');
    await writeFile(join(root, 'tools', 'typo.yaml'), good.replace('id: good', 'id: typo').replace('category: text', 'category: text\nbinarys: [x]'));
    await writeFile(join(root, 'tools', 'renamed.yaml'), good.replace('id: good', 'id: other'));
    await writeFile(join(root, 'tools', 'pattern.yaml'), good.replace('id: good', 'id: pattern').replace('category: text', 'category: text\nprobe:\n  pattern: "(unclosed"'));
    await writeFile(join(root, 'tools', 'source.yaml'), good.replace('id: good', 'id: source').replace('source: npm', 'source: sourceforge'));
    await writeFile(join(root, 'presets.yaml'), 'set:\n  description: a set\n  tools: [good, missing]\n');
    const catalog = await loadCatalog({ root });
    expect(catalog.tools.map((tool) => tool.id)).toEqual(['good']);
    const byFile = Object.fromEntries(catalog.problems.map((problem) => [problem.file, problem]));
    expect(byFile['tools/broken.yaml']?.message).toMatch(/not valid YAML/);
    expect(byFile['tools/typo.yaml']?.message).toMatch(/binarys/);
    expect(byFile['tools/renamed.yaml']).toMatchObject({ field: 'id', message: expect.stringMatching(/named renamed\.yaml/) });
    expect(byFile['tools/pattern.yaml']).toMatchObject({ field: 'probe.pattern', message: 'is not a valid regular expression' });
    expect(byFile['tools/source.yaml']?.field).toBe('upstream.source');
    expect(byFile['presets.yaml']).toMatchObject({ field: 'set.tools.1', message: 'names unknown tool "missing"' });
  });

  it('rebuilds its compiled cache when a file changes', async () => {
    const cacheFile = join(root, 'compiled.json');
    await writeFile(join(root, 'tools', 'good.yaml'), good);
    expect((await loadCatalog({ root, cacheFile })).byId.get('good')?.name).toBe('Good');
    await writeFile(join(root, 'tools', 'good.yaml'), good.replace('name: Good', 'name: Better'));
    const later = new Date(Date.now() + 10_000);
    await utimes(join(root, 'tools', 'good.yaml'), later, later);
    expect((await loadCatalog({ root, cacheFile })).byId.get('good')?.name).toBe('Better');
    await writeFile(cacheFile, '{ not json');
    expect((await loadCatalog({ root, cacheFile })).byId.get('good')?.name).toBe('Better');
  });

  describe('upkeep catalog validate', () => {
    let sandbox: Sandbox;
    beforeEach(async () => {
      sandbox = await createSandbox();
    });
    afterEach(async () => sandbox.cleanup());

    it('exits 1 and lists every problem', async () => {
      await writeFile(join(root, 'tools', 'typo.yaml'), good.replace('id: good', 'id: typo').replace('category: text', 'category: txt'));
      const run = await runUpkeep(['catalog', 'validate', '--dir', root], sandbox.environment);
      expect(run.exitCode).toBe(1);
      expect(run.stdout).toMatch(/invalid tools\/typo\.yaml category: /);
      const json = await runUpkeep(['catalog', 'validate', '--dir', root, '--json'], sandbox.environment);
      expect(json.json<{ problems: Array<{ file: string; field: string }> }>().problems).toEqual([
        expect.objectContaining({ file: 'tools/typo.yaml', field: 'category' }),
      ]);
    });

    it('reports recipes whose templates do not render or whose names point nowhere', async () => {
      const recipe = good.replace('id: good', 'id: recipe').concat(
        [
          'install:',
          '  apt: recipe',
          '  binary:',
          '    url: https://example.org/recipe-{version}-{bogus}.tar.gz',
          'prefer: [brew]',
          'requires:',
          '  tools: [nowhere]',
          '  packages: [no-such-group]',
          '',
        ].join('\n'),
      );
      await writeFile(join(root, 'tools', 'recipe.yaml'), recipe);
      await writeFile(join(root, 'groups.yaml'), 'build-tools:\n  description: compilers\n  debian: [build-essential]\n');
      const run = await runUpkeep(['catalog', 'validate', '--dir', root, '--json'], sandbox.environment);
      expect(run.exitCode).toBe(1);
      const problems = run.json<{ problems: Array<{ file: string; field: string; message: string }> }>().problems.filter((problem) => problem.file === 'tools/recipe.yaml');
      expect(problems.map((problem) => problem.field).sort()).toEqual(['install.binary', 'prefer.0', 'requires.packages.0', 'requires.tools.0']);
      expect(problems.find((problem) => problem.field === 'install.binary')?.message).toMatch(/bogus/);
    });

    it('exits 0 for the shipped catalog', async () => {
      const run = await runUpkeep(['catalog', 'validate'], sandbox.environment);
      expect(run.exitCode).toBe(0);
      expect(run.stdout).toMatch(/^ok: \d+ tools \(\d+ with recipes\), \d+ presets, \d+ package groups and \d+ failure handlers/);
    });
  });
});

describe('closestNames', () => {
  it('suggests near misses and substrings, nearest first', () => {
    expect(closestNames('ripgrap', ['ripgrep', 'rg', 'grep'])).toEqual(['ripgrep']);
    expect(closestNames('terra', ['terraform', 'terragrunt', 'jq'])).toEqual(['terraform', 'terragrunt']);
    expect(closestNames('zzzzzz', ['jq'])).toEqual([]);
  });
});

describe('the shipped catalog', () => {
  it('has recipes for at least 150 tools covering two families, and presets of known tools', async () => {
    const catalog = await loadCatalog({ root: shipped });
    const familyOf: Record<string, string> = { apt: 'debian', dnf: 'rhel', yum: 'rhel', pacman: 'arch', apk: 'alpine', zypper: 'suse', brew: 'macos' };
    // A cross-platform method (a release binary, npm, pipx...) serves every family.
    const covered = catalog.tools.filter((tool) => {
      const families = new Set(Object.keys(tool.install ?? {}).map((method) => familyOf[method] ?? 'every'));
      return families.size >= 2 || (families.has('every') && families.size >= 1 && Object.keys(tool.install ?? {}).length >= 2);
    });
    expect(covered.length).toBeGreaterThanOrEqual(150);
    expect(Object.keys(catalog.presets).length).toBeGreaterThanOrEqual(15);
    for (const name of ['agent-essentials', 'python-dev', 'node-dev', 'rust-dev', 'go-dev', 'devops', 'security', 'data']) expect(catalog.presets[name]).toBeDefined();
    expect(catalog.problems).toEqual([]);
  });

  it('counts itself with catalog stats --json', async () => {
    const sandbox = await createSandbox();
    try {
      const run = await runUpkeep(['catalog', 'stats', '--json'], sandbox.environment);
      expect(run.exitCode).toBe(0);
      const stats = run.json<{ tools: number; toolsWithRecipes: number; handlers: number; presets: number; methods: Record<string, number> }>();
      expect(stats.toolsWithRecipes).toBeLessThanOrEqual(stats.tools);
      expect(stats.toolsWithRecipes).toBeGreaterThanOrEqual(150);
      expect(stats.handlers).toBeGreaterThanOrEqual(60);
      expect(stats.methods.apt).toBeGreaterThan(0);
      expect(Object.keys(stats.methods)).toContain('binary');
    } finally {
      await sandbox.cleanup();
    }
  });
});
