#!/usr/bin/env node
// upkeep plugin for the tools of upkeep's own catalog.
//
// upkeep runs itself (the argv in UPKEEP_COMMAND). `audit --json` finds the
// outdated tools; `upgrade --dry-run --offline --json <ids>` then plans their
// upgrades from the versions the audit just cached, which leaves out what
// upkeep cannot upgrade in place (a tool installed by hand, a major bump the
// policy asks a person about) and tells which package managers each upgrade
// runs, hence the mutexes. Update is `upgrade --yes --json <ids>`, with
// upkeep's backup, verification and rollback.
//
// Tools installed by a package manager that has its own plugin (apt, npm,
// pipx, cargo...) are left to that plugin by default: it updates them anyway,
// and the audit's "latest" is upstream's release, which those managers may
// not offer yet.
import { definePlugin, isRoot, loadState, PluginError, progress, run, saveState, setting } from './lib/plugin.mjs';

const NAME = 'upkeep-tools';

/** How the audit says a tool was installed, for the methods another built-in plugin updates. */
const MANAGED_METHODS = new Set(['apt', 'rpm', 'zypper', 'pacman', 'apk', 'homebrew', 'snap', 'flatpak', 'npm-global', 'npm-user', 'pnpm', 'pipx', 'uv', 'cargo', 'rustup', 'go']);
/** The mutexes of a planned step, by the lock upkeep's install steps take (the names the built-in plugins hold). */
const LOCK_MUTEXES = {
  dpkg: ['pkgmgr:apt', 'pkgmgr:dpkg'],
  rpm: ['pkgmgr:rpm'],
  pacman: ['pkgmgr:pacman'],
  apk: ['pkgmgr:apk'],
  brew: ['pkgmgr:brew'],
  snap: ['pkgmgr:snap'],
  flatpak: ['pkgmgr:flatpak'],
  npm: ['pkgmgr:npm'],
  pipx: ['pkgmgr:pipx'],
  uv: ['pkgmgr:uv'],
  cargo: ['pkgmgr:cargo'],
};
/** Methods whose steps take no lock but share a manager with a plugin. */
const METHOD_MUTEXES = { dnf: ['pkgmgr:dnf'], yum: ['pkgmgr:dnf'], zypper: ['pkgmgr:zypper'], go: ['pkgmgr:go'] };
/** When nothing tells (no estimate in this run, a script step): the system's manager, to be safe. */
const CONSERVATIVE = ['pkgmgr:apt', 'pkgmgr:dpkg'];
/** upkeep's error codes for failures that pass (the network, a lock held by another upkeep). */
const TRANSIENT = { E_HTTP_TIMEOUT: 'NETWORK_ERROR', E_HTTP_NETWORK: 'NETWORK_ERROR', E_HTTP_RATE_LIMIT: 'TEMPORARY_FAILURE', E_LOCK_TIMEOUT: 'TEMPORARY_FAILURE' };
/** Outcomes that need a person, not a retry: no way to upgrade in place, or a major bump the policy asks about. */
const NEEDS_A_PERSON = new Set(['E_NO_METHOD', 'E_BREAKING_CHANGE']);

/** UPKEEP_COMMAND: a JSON array, the argv that runs upkeep. */
function upkeepCommand() {
  const raw = process.env.UPKEEP_COMMAND;
  if (!raw) return { reason: 'UPKEEP_COMMAND is not set (upkeep sets it when it runs its plugins)' };
  try {
    const argv = JSON.parse(raw);
    if (Array.isArray(argv) && argv.length > 0 && argv.every((word) => typeof word === 'string' && word !== '')) return { argv };
  } catch {
    // reported below
  }
  return { reason: 'UPKEEP_COMMAND is not a JSON array of strings' };
}

/** upkeep's --json output: the data, or {error: {code, message, hint}} when the command failed as a whole. */
function parseAnswer(argv, result) {
  let answer;
  try {
    answer = JSON.parse(result.stdout);
  } catch {
    const tail = `${result.stderr}\n${result.stdout}`.trim().split('\n').slice(-5).join('\n');
    throw new PluginError('COMMAND_FAILED', `${argv.join(' ')} failed with exit code ${result.code} and no JSON answer`, { details: tail });
  }
  if (answer?.error?.code) {
    const { code, message, hint } = answer.error;
    throw new PluginError(TRANSIENT[code] ?? 'COMMAND_FAILED', `${argv.join(' ')}: ${code}: ${message}`, { ...(hint ? { details: hint } : {}), transient: code in TRANSIENT });
  }
  return answer;
}

/** A plan's mutexes: its method's, and those of the locks its steps take; a script may run anything. */
function mutexesOf(plan) {
  const steps = plan.steps ?? [];
  const names = [
    ...(METHOD_MUTEXES[plan.method] ?? []),
    ...steps.flatMap((step) => LOCK_MUTEXES[step.lock] ?? []),
    ...(plan.method === 'script' ? CONSERVATIVE : []),
  ];
  return [...new Set(names)].sort();
}

async function outdated() {
  const upkeep = upkeepCommand().argv;
  const auditArgv = [...upkeep, 'audit', '--json', ...(setting(NAME, 'offline', false) ? ['--offline'] : [])];
  const audit = parseAnswer(auditArgv, await run(auditArgv, { timeout: setting(NAME, 'query_timeout', 540) }));
  const includeManaged = setting(NAME, 'include_managed', false);
  const candidates = (audit.tools ?? []).filter(
    (report) => report.status === 'outdated' && report.installed && report.latest?.version && (includeManaged || !MANAGED_METHODS.has(report.installed.method)),
  );
  if (candidates.length === 0) return [];
  progress(60, 'upkeep upgrade --dry-run');
  const planArgv = [...upkeep, 'upgrade', '--dry-run', '--offline', '--json', ...candidates.map((report) => report.id)];
  const planned = parseAnswer(planArgv, await run(planArgv, { timeout: 120 }));
  for (const outcome of planned.outcomes ?? []) {
    if (outcome.error) process.stderr.write(`${outcome.tool} left as it is: ${outcome.error.message}\n`);
  }
  const plans = new Map((planned.plans ?? []).map((plan) => [plan.tool, plan]));
  return candidates
    .filter((report) => plans.has(report.id))
    .map((report) => {
      const plan = plans.get(report.id);
      return {
        name: report.id,
        current_version: report.installed.version ?? null,
        new_version: report.latest.version,
        mutexes: mutexesOf(plan),
        root: (plan.steps ?? []).some((step) => step.root),
      };
    });
}

async function estimate() {
  progress(0, 'upkeep audit');
  const tools = await outdated();
  saveState('estimate', { tools });
  progress(100, `${tools.length} tools to upgrade`);
  return { packages_to_update: tools.map(({ name, current_version, new_version }) => ({ name, current_version, new_version })) };
}

function updateMutexes() {
  const tools = loadState('estimate')?.tools;
  if (!tools) return CONSERVATIVE;
  return [...new Set(tools.flatMap((tool) => tool.mutexes))].sort();
}

async function update() {
  const tools = loadState('estimate')?.tools ?? (await outdated());
  if (tools.length === 0) return { packages_updated: [], package_count: 0, message: 'no catalog tool that upkeep upgrades is outdated' };
  const argv = [...upkeepCommand().argv, 'upgrade', '--yes', '--json', ...tools.map((tool) => tool.name)];
  progress(0, `upkeep upgrade: ${tools.length} tools`, { current: 0, total: tools.length });
  const result = await run(argv);
  // stdout is upkeep's JSON answer; its warnings and log lines are for upkeep's log.
  if (result.stderr) process.stderr.write(result.stderr);
  const outcomes = parseAnswer(argv, result).outcomes ?? [];
  const updated = outcomes
    .filter((outcome) => outcome.status === 'upgraded' && outcome.version !== outcome.previousVersion)
    .map((outcome) => ({ name: outcome.tool, ...(outcome.previousVersion ? { from: outcome.previousVersion } : {}), ...(outcome.version ? { to: outcome.version } : {}) }));
  const unsuccessful = outcomes.filter((outcome) => outcome.status === 'failed' || outcome.status === 'rolled-back');
  const skipped = unsuccessful.filter((outcome) => NEEDS_A_PERSON.has(outcome.error?.code));
  const failed = unsuccessful.filter((outcome) => !NEEDS_A_PERSON.has(outcome.error?.code));
  for (const outcome of skipped) process.stderr.write(`${outcome.tool} left as it is: ${outcome.error.message}\n`);
  progress(100, `${updated.length} tools upgraded`, { current: tools.length, total: tools.length });
  if (failed.length > 0) {
    const transient = failed.every((outcome) => outcome.error?.code in TRANSIENT);
    const details = failed.map((outcome) => `${outcome.tool}: ${outcome.status}${outcome.error ? ` (${outcome.error.code}: ${outcome.error.message})` : ''}`);
    if (updated.length > 0) details.push(`upgraded anyway: ${updated.map((entry) => entry.name).join(', ')}`);
    throw new PluginError(transient ? TRANSIENT[failed[0].error.code] : 'COMMAND_FAILED', `${failed.length} of ${tools.length} tools failed to upgrade`, {
      details: details.join('\n'),
      transient,
    });
  }
  return {
    packages_updated: updated,
    package_count: updated.length,
    ...(skipped.length > 0 ? { message: `left for a person to decide: ${skipped.map((outcome) => outcome.tool).join(', ')}` } : {}),
  };
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  isApplicable: () => {
    const { argv, reason } = upkeepCommand();
    return argv ? { applicable: true } : { applicable: false, reason };
  },
  estimate,
  update,
  canSeparateDownload: false,
  // upkeep runs the steps that need root through `sudo -n` itself; this only says whether some will.
  requiresSudo: () => !isRoot() && (loadState('estimate')?.tools ?? []).some((tool) => tool.root),
  mutexes: { estimate: [], download: [], update: updateMutexes },
});
