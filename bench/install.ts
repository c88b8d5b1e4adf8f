/**
 * Speed of install planning and of bulk runs, on this machine:
 *   planning: a plan for every catalog tool with a recipe (target: under 100 ms in all);
 *   bulk: tools spread over stub package managers of different speeds, some
 *   requiring others; the makespan is compared with the sum of the steps (no
 *   overlap at all) and with the critical path (the best any schedule can do:
 *   the longest dependency chain, or the busiest package-manager mutex).
 * Prints a table and writes bench/results/install.json. Run: npm run bench:install
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { findCatalogRoot, loadCatalog } from '../src/catalog/loader.ts';
import { loadConfig } from '../src/core/config.ts';
import { silentLogger } from '../src/core/log.ts';
import { resolvePaths } from '../src/core/paths.ts';
import { executeInstall, planInstall } from '../src/install/install.ts';
import { planTool } from '../src/install/plan.ts';
import { openSession } from '../src/install/session.ts';

const root = resolve(import.meta.dirname, '..');
const home = mkdtempSync(join(tmpdir(), 'upkeep-bench-install-'));
const round = (value: number) => Math.round(value * 10) / 10;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function sessionFor(environment: Record<string, string | undefined>, catalogRoot: string, dryRun: boolean) {
  const paths = resolvePaths(environment);
  const catalog = await loadCatalog({ root: catalogRoot, cacheFile: join(paths.cache, 'catalog-v1.json') });
  const { config } = await loadConfig({ paths, environment, cwd: home });
  return openSession({ catalog, config, paths, environment, home, cwd: home, logger: silentLogger, dryRun, userAgent: 'upkeep/bench' });
}

// --- planning ---------------------------------------------------------------
const planningEnvironment = { ...process.env, UPKEEP_HOME: join(home, 'planning'), HOME: home };
const planningSession = await sessionFor(planningEnvironment, findCatalogRoot(planningEnvironment), true);
const withRecipes = planningSession.catalog.tools.filter((tool) => tool.install);
const planningRuns: number[] = [];
let planned = 0;
let unplannable = 0;
for (let run = 0; run < 15; run++) {
  planned = 0;
  unplannable = 0;
  const started = performance.now();
  for (const tool of withRecipes) {
    try {
      planTool(tool, { action: 'install', reinstall: true }, planningSession.planContext);
      planned++;
    } catch {
      // No method works here (a macOS-only cask, a family this machine is not): still decided, still timed.
      unplannable++;
    }
  }
  planningRuns.push(performance.now() - started);
}
await planningSession.close();
const planningMs = median(planningRuns);

// --- bulk -------------------------------------------------------------------
/** Seconds each stub package manager takes per install. */
const managers: Record<string, { method: string; command: string; seconds: number }> = {
  apt: { method: 'apt', command: 'apt-get', seconds: 0.6 },
  npm: { method: 'npm', command: 'npm', seconds: 0.4 },
  pipx: { method: 'pipx', command: 'pipx', seconds: 0.5 },
  cargo: { method: 'cargo', command: 'cargo', seconds: 0.9 },
};
/** tool -> [manager, requires]. */
const bulkTools: Record<string, [string, string[]]> = {
  'sys-a': ['apt', []],
  'sys-b': ['apt', []],
  'sys-c': ['apt', []],
  'js-a': ['npm', ['sys-a']],
  'js-b': ['npm', []],
  'py-a': ['pipx', []],
  'py-b': ['pipx', ['sys-b']],
  'rs-a': ['cargo', []],
  'rs-b': ['cargo', ['js-b']],
};

const sandbox = join(home, 'bulk');
const bin = join(sandbox, 'bin');
const catalogRoot = join(sandbox, 'catalog');
mkdirSync(bin, { recursive: true });
mkdirSync(join(catalogRoot, 'tools'), { recursive: true });
writeFileSync(join(catalogRoot, 'groups.yaml'), '{}\n');
for (const { command, seconds } of Object.values(managers)) {
  // Installs the last operand as a binary that reports version 1.0.0.
  const script = `#!/bin/sh\n/bin/sleep ${seconds}\nfor last; do :; done\nname=\${last%%@*}\nprintf '#!/bin/sh\\necho %s 1.0.0\\n' "$name" > "${bin}/$name"\n/bin/chmod +x "${bin}/$name"\n`;
  writeFileSync(join(bin, command), script);
  chmodSync(join(bin, command), 0o755);
}
for (const [id, [manager, requires]] of Object.entries(bulkTools)) {
  const method = managers[manager]!.method;
  writeFileSync(
    join(catalogRoot, 'tools', `${id}.yaml`),
    `id: ${id}\nname: ${id}\ndescription: bench tool\nhomepage: https://example.org/\ncategory: system\nupstream: {source: none}\ninstall:\n  ${method}: ${id}\n${requires.length ? `requires: {tools: [${requires.join(', ')}]}\n` : ''}`,
  );
}
const bulkEnvironment = {
  PATH: bin,
  HOME: join(sandbox, 'home'),
  UPKEEP_HOME: join(sandbox, 'upkeep'),
  UPKEEP_SYSTEM_CONFIG: join(sandbox, 'none.yaml'),
  UPKEEP_OS_RELEASE: join(root, 'test', 'fixtures', 'os-release', 'debian-12'),
  UPKEEP_INSTALL_CONCURRENCY: '8',
  UPKEEP_INSTALL_ENVIRONMENT: 'server',
};
const bulkSession = await sessionFor(bulkEnvironment, catalogRoot, false);
const plannedBulk = planInstall(bulkSession, { tools: bulkSession.catalog.tools, reinstall: false });
const started = performance.now();
const executed = await executeInstall(bulkSession, plannedBulk.plans, { failFast: false, atomic: false, autoRemediate: false });
const makespanMs = performance.now() - started;
await bulkSession.close();
const failed = executed.outcomes.filter((outcome) => outcome.status !== 'installed');
if (failed.length > 0) throw new Error(`bulk bench: ${JSON.stringify(failed)}`);

const stepMs = (id: string) => managers[bulkTools[id]![0]]!.seconds * 1000;
const sumMs = Object.keys(bulkTools).reduce((total, id) => total + stepMs(id), 0);
const chain = (id: string): number => stepMs(id) + Math.max(0, ...bulkTools[id]![1].map(chain));
const longestChainMs = Math.max(...Object.keys(bulkTools).map(chain));
const busiestMutexMs = Math.max(
  ...Object.keys(managers).map((manager) => Object.keys(bulkTools).filter((id) => bulkTools[id]![0] === manager).reduce((total, id) => total + stepMs(id), 0)),
);
const criticalPathMs = Math.max(longestChainMs, busiestMutexMs);

const results = {
  createdAt: new Date().toISOString(),
  machine: { cores: availableParallelism(), catalogTools: planningSession.catalog.tools.length, toolsWithRecipes: withRecipes.length },
  planning: { medianMs: round(planningMs), planned, unplannable, perToolMs: Math.round((planningMs / withRecipes.length) * 1000) / 1000, targetMs: 100, pass: planningMs < 100 },
  bulk: {
    tools: Object.keys(bulkTools).length,
    makespanMs: round(makespanMs),
    sumOfStepsMs: sumMs,
    criticalPathMs,
    speedupOverSerial: round(sumMs / makespanMs),
    overCriticalPath: round(makespanMs / criticalPathMs),
  },
};
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', 'install.json'), `${JSON.stringify(results, null, 2)}\n`);
rmSync(home, { recursive: true, force: true });

console.log(`install benchmark: ${results.machine.toolsWithRecipes} tools with recipes, ${results.machine.cores} cores`);
console.table({
  'plan every tool': { ms: results.planning.medianMs, target: '< 100', pass: results.planning.pass },
  'bulk makespan': { ms: results.bulk.makespanMs, target: `critical path ${criticalPathMs}`, pass: makespanMs < sumMs },
  'bulk, one at a time': { ms: sumMs, target: '', pass: '' },
});
console.log(`bulk: ${results.bulk.speedupOverSerial}x faster than one at a time; ${results.bulk.overCriticalPath}x the critical path`);
