/**
 * Speed of `upkeep audit` on this machine, for the whole catalog:
 *   cold offline audit (empty probe cache) against its floor,
 *   warm re-audit, render from snapshot,
 *   online audit against the fake upstream with 100 ms latency per request.
 * Prints a table and writes bench/results/audit.json. Run: npm run bench:audit
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { readdirSync } from 'node:fs';
import type { AuditDocument } from '../src/audit/types.ts';
import type { Baseline, ToolInput } from '../src/catalog/schema.ts';
import { startFakeUpstream, type FakeTool } from '../test/helpers/fake-upstream.ts';

const root = resolve(import.meta.dirname, '..');
const cli = join(root, 'bin', 'upkeep.js');
const cores = availableParallelism();
const home = mkdtempSync(join(tmpdir(), 'upkeep-bench-'));
const baseEnvironment = { ...process.env, UPKEEP_HOME: home, NO_COLOR: '1' };

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function runCli(args: string[], environment: NodeJS.ProcessEnv = baseEnvironment): { wallMs: number; stdout: string; status: number | null } {
  const started = performance.now();
  const result = spawnSync(process.execPath, [cli, ...args], { env: environment, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const wallMs = performance.now() - started;
  if (result.status !== 0 && result.status !== 3) throw new Error(`upkeep ${args.join(' ')} failed (${result.status}): ${result.stderr}`);
  return { wallMs, stdout: result.stdout, status: result.status };
}

/** CPU time (ms) of children this process has waited for, from /proc. */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 of /proc/<pid>/stat (cutime, cstime) in clock ticks of 10 ms.
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

const probeCache = join(home, 'cache', 'probes-v1.json');
const latestCache = join(home, 'cache', 'latest-v1.json');

// Prime the compiled catalog so that every measurement below starts equal.
runCli(['audit', '--offline', '--json', '--quiet']);

// 1. Cold offline audit: empty probe cache.
const coldRuns: number[] = [];
let document: AuditDocument | undefined;
for (let repeat = 0; repeat < 3; repeat++) {
  rmSync(probeCache, { force: true });
  const run = runCli(['audit', '--offline', '--json', '--quiet']);
  coldRuns.push(run.wallMs);
  document = JSON.parse(run.stdout) as AuditDocument;
}

// The floor: each probe run alone, one after the other.
const catalogDir = join(root, 'catalog', 'tools');
const argsById = new Map<string, string[]>();
for (const file of readdirSync(catalogDir)) {
  const tool = parse(readFileSync(join(catalogDir, file), 'utf8')) as ToolInput;
  argsById.set(tool.id, tool.probe?.args ?? ['--version']);
}
const probes = new Map<string, string[]>();
for (const report of document!.tools) {
  for (const installation of report.installations) {
    if (installation.differentTool && !installation.version) continue;
    const program = installation.shimTarget ?? installation.path;
    const argv = [program, ...(argsById.get(report.id) ?? ['--version'])];
    probes.set(argv.join('\u0000'), argv);
  }
}
let slowest = { argv: '', wallMs: 0 };
const cpuBefore = childrenCpuMs();
for (const argv of probes.values()) {
  const started = performance.now();
  spawnSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000, env: { ...process.env, LC_ALL: 'C' } });
  const wallMs = performance.now() - started;
  if (wallMs > slowest.wallMs) slowest = { argv: argv.join(' '), wallMs };
}
const probeCpuMs = childrenCpuMs() - cpuBefore;
const floorMs = Math.max(slowest.wallMs, probeCpuMs / cores);
const coldMs = median(coldRuns);

// 2. Warm re-audit: nothing changed.
runCli(['audit', '--offline', '--json', '--quiet']);
const warmMs = median(Array.from({ length: 7 }, () => runCli(['audit', '--offline', '--json', '--quiet']).wallMs));

// 3. Render from snapshot.
const snapshotMs = median(Array.from({ length: 7 }, () => runCli(['audit', '--from-snapshot', '--json', '--quiet']).wallMs));

// 4. Online audit against the fake upstream, 100 ms per request, warm probes, empty latest cache.
const baseline = JSON.parse(readFileSync(join(root, 'catalog', 'latest-versions.json'), 'utf8')) as Baseline;
const fakeTools: Record<string, FakeTool> = {};
for (const file of readdirSync(catalogDir)) {
  const tool = parse(readFileSync(join(catalogDir, file), 'utf8')) as ToolInput;
  const version = baseline.tools[tool.id]?.version ?? '1.0.0';
  const upstream = tool.upstream;
  switch (upstream.source) {
    case 'github':
      fakeTools[tool.id] = { source: 'github', repo: upstream.repo, tagPrefix: upstream.tagPrefix, releases: [{ tag: `${upstream.tagPrefix ?? 'v'}${version}` }] } as FakeTool;
      break;
    case 'gitlab':
      fakeTools[tool.id] = { source: 'gitlab', project: upstream.project, releases: [{ tag: `v${version}` }] };
      break;
    case 'pypi':
      fakeTools[tool.id] = { source: 'pypi', package: upstream.package, version };
      break;
    case 'crates':
      fakeTools[tool.id] = { source: 'crates', crate: upstream.crate, maxStable: version, max: version };
      break;
    case 'npm':
      fakeTools[tool.id] = { source: 'npm', package: upstream.package, distTags: { latest: version } };
      break;
    case 'gnu':
      fakeTools[tool.id] = { source: 'gnu', project: upstream.project, versions: [version] };
      break;
    case 'debian':
      fakeTools[tool.id] = { source: 'debian', package: upstream.package, versions: [`${version}-1`] };
      break;
    default:
      break;
  }
}
const fake = await startFakeUpstream({ tools: fakeTools, latencyMs: 100 });
const endpoints = fake.endpoints();
const onlineEnvironment: NodeJS.ProcessEnv = { ...baseEnvironment };
for (const [key, url] of Object.entries(endpoints)) {
  onlineEnvironment[`UPKEEP_ENDPOINTS_${key.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`] = url;
}
const onlineRuns: number[] = [];
let unknownOnline = 0;
for (let repeat = 0; repeat < 3; repeat++) {
  rmSync(latestCache, { force: true });
  fake.clearRequests();
  // spawnSync would block the fake server in this process; run asynchronously.
  const started = performance.now();
  const { spawn } = await import('node:child_process');
  const stdout = await new Promise<string>((done, fail) => {
    const child = spawn(process.execPath, [cli, 'audit', '--refresh', '--json', '--quiet'], { env: onlineEnvironment });
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
    child.on('error', fail);
    child.on('close', () => done(text));
  });
  onlineRuns.push(performance.now() - started);
  const online = JSON.parse(stdout) as AuditDocument;
  unknownOnline = online.tools.filter((tool) => tool.latest === null || tool.latest.stale).length;
}
const upstreamTools = Object.keys(fakeTools).length;
const requests = fake.requests.length;
await fake.close();
const onlineMs = median(onlineRuns);

const results = {
  machine: { cores, node: process.version, tools: document!.tools.length, installedTools: document!.tools.filter((tool) => tool.installed).length, probes: probes.size },
  coldOffline: { medianMs: round(coldMs), runsMs: coldRuns.map(round), floorMs: round(floorMs), slowestProbe: { argv: slowest.argv, wallMs: round(slowest.wallMs) }, probeCpuMs: round(probeCpuMs), ratioToFloor: round2(coldMs / floorMs), target: 'within 15% of the floor', pass: coldMs <= floorMs * 1.15 },
  warmReaudit: { medianMs: round(warmMs), target: 'under 150 ms', pass: warmMs < 150 },
  renderFromSnapshot: { medianMs: round(snapshotMs), target: 'under 150 ms', pass: snapshotMs < 150 },
  online: { medianMs: round(onlineMs), runsMs: onlineRuns.map(round), upstreamTools, requestsLastRun: requests, latencyPerRequestMs: 100, staleOrUnknown: unknownOnline, target: `${upstreamTools} tools at 100 ms latency under 1.5 s`, pass: onlineMs < 1500 },
};
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
writeFileSync(join(root, 'bench', 'results', 'audit.json'), `${JSON.stringify({ createdAt: new Date().toISOString(), ...results }, null, 2)}\n`);
rmSync(home, { recursive: true, force: true });

console.log(`audit benchmark: ${results.machine.tools} catalog tools, ${results.machine.installedTools} installed, ${results.machine.probes} probes, ${cores} cores`);
console.table({
  'cold offline': { 'median ms': results.coldOffline.medianMs, target: `≤ ${round(floorMs * 1.15)} (floor ${round(floorMs)})`, pass: results.coldOffline.pass },
  'warm re-audit': { 'median ms': results.warmReaudit.medianMs, target: '< 150', pass: results.warmReaudit.pass },
  'from snapshot': { 'median ms': results.renderFromSnapshot.medianMs, target: '< 150', pass: results.renderFromSnapshot.pass },
  'online (100 ms latency)': { 'median ms': results.online.medianMs, target: '< 1500', pass: results.online.pass },
});
console.log(`floor: slowest probe ${round(slowest.wallMs)} ms (${slowest.argv}); probe CPU ${round(probeCpuMs)} ms / ${cores} cores = ${round(probeCpuMs / cores)} ms`);

function round(value: number): number {
  return Math.round(value);
}
function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
