import type { ToolReport } from '../audit/types.ts';
import type { Tool } from '../catalog/schema.ts';
import { ExitCode, UpkeepError, describeError } from '../core/errors.ts';
import { compareVersions, versionDelta } from '../core/version.ts';
import { applyPlan, sameVersion, verifyInstalled } from './apply.ts';
import { createBackup, listBackups, restoreBackup, type Backup } from './backup.ts';
import { installRecords, managedBy, ownerPackage, type ManagedInstallation } from './current.ts';
import { errorSummary, verifyContext, type ToolOutcome } from './install.ts';
import { METHOD_TRAITS } from './managers.ts';
import { planTool, type ToolPlan } from './plan.ts';
import { updateRecord } from './records.ts';
import { remediate } from './remediate.ts';
import { expandHome, type Session } from './session.ts';

/**
 * `upkeep upgrade`: the target comes from the audit (or `--to`); a major
 * bump follows the breaking-change policy; the binary and the tool's config
 * files are backed up with their digests before anything changes; any
 * failure rolls back automatically, and the rollback is verified.
 */

export interface UpgradeTarget {
  tool: Tool;
  report: ToolReport;
  managed: ManagedInstallation;
  current: string | null;
  target: string | null;
  plan: ToolPlan;
  breaking: boolean;
}

export interface UpgradeOptions {
  to?: string | null;
  force: boolean;
  /** Asks the user about a major bump when the policy is `warn`; null where nobody can answer. */
  confirm: ((question: string) => Promise<boolean>) | null;
}

/** Decides what to do for each tool; tools needing nothing come back as outcomes. */
export async function planUpgrades(
  session: Session,
  reports: ToolReport[],
  options: UpgradeOptions,
): Promise<{ targets: UpgradeTarget[]; outcomes: ToolOutcome[] }> {
  const records = await installRecords(session);
  const targets: UpgradeTarget[] = [];
  const outcomes: ToolOutcome[] = [];
  for (const report of reports) {
    const tool = session.catalog.byId.get(report.id)!;
    try {
      const active = report.installations.find((installation) => installation.onPath) ?? report.installations[0];
      if (!report.installed || !active) {
        throw new UpkeepError('E_NOT_INSTALLED', `${tool.id} is not installed`, { hint: `install it with \`upkeep install ${tool.id}\`` });
      }
      const managed = managedBy(active, records.get(tool.id), session, ownerPackage(active));
      if (!managed) {
        throw new UpkeepError('E_NO_METHOD', `${tool.id} at ${active.path} was installed ${active.method === 'manual' ? 'by hand' : `with ${active.method}`}, which upkeep cannot upgrade in place`, {
          hint: `upgrade it the way it was installed, or \`upkeep install ${tool.id} --reinstall --method <method>\``,
        });
      }
      const current = active.version;
      const target = options.to ?? report.latest?.version ?? null;
      if (!options.to && target && current && compareVersions(current, target) >= 0) {
        outcomes.push({ tool: tool.id, status: 'up-to-date', method: managed.method, version: current, path: active.path });
        continue;
      }
      const breaking = Boolean(current && target && compareVersions(target, current) > 0 && versionDelta(current, target) === 'major');
      if (breaking && !options.force) await checkBreakingPolicy(session, tool, current!, target!, options.confirm);
      const pinTarget = options.to ?? (managed.method === 'binary' ? target : null);
      const plan = planTool(
        tool,
        { action: 'upgrade', version: pinTarget, installed: { method: managed.method, ...(managed.package ? { package: managed.package } : {}) } },
        session.planContext,
      );
      targets.push({ tool, report, managed, current, target, plan, breaking });
    } catch (error) {
      outcomes.push({ tool: tool.id, status: 'failed', error: errorSummary(error) });
    }
  }
  return { targets, outcomes };
}

async function checkBreakingPolicy(
  session: Session,
  tool: Tool,
  current: string,
  target: string,
  confirm: UpgradeOptions['confirm'],
): Promise<void> {
  const policy = session.config.install.tools[tool.id]?.breakingChanges ?? session.config.install.breakingChanges;
  const what = `${tool.id} ${current} -> ${target} is a major version upgrade`;
  if (policy === 'accept') return;
  if (policy === 'reject') {
    throw new UpkeepError('E_BREAKING_CHANGE', `${what}, and the breaking-change policy rejects it`, {
      hint: `pass --force, or set install.tools.${tool.id}.breakingChanges: accept`,
    });
  }
  if (confirm && session.platform.environment.mode !== 'ci' && (await confirm(`${what} and may break things. Upgrade?`))) return;
  throw new UpkeepError('E_BREAKING_CHANGE', `${what}; the policy is to ask, and ${confirm && session.platform.environment.mode !== 'ci' ? 'the answer was no' : 'nobody can answer here (CI or no terminal)'}`, {
    hint: `pass --force, or set install.breakingChanges (or install.tools.${tool.id}.breakingChanges) to accept`,
    exitCode: ExitCode.failure,
  });
}

export async function upgradeOne(session: Session, target: UpgradeTarget, autoRemediate: boolean): Promise<ToolOutcome> {
  const { tool, report, managed, current } = target;
  const active = report.installations.find((installation) => installation.onPath) ?? report.installations[0]!;
  const backup = session.executor.dryRun
    ? null
    : await createBackup({
        dataFolder: session.paths.data,
        tool: tool.id,
        version: current,
        method: managed.method,
        ...(managed.package ? { package: managed.package } : {}),
        files: [active.realPath, ...(tool.configFiles ?? []).map((file) => expandHome(file, session.home))],
        now: new Date(),
        keep: session.config.install.keepBackups,
      });
  const expected = target.plan.version && METHOD_TRAITS[target.plan.method].pinsVersions ? target.plan.version : expectedLatest(target);
  const attempt = async (plan: ToolPlan): Promise<ToolOutcome> => {
    const steps = await applyPlan(plan, session.applyContext);
    session.refresh();
    const verification = await verifyInstalled(tool, expected, verifyContext(session));
    if (!session.executor.dryRun) {
      await updateRecord(session.paths.state, tool.id, {
        method: plan.method,
        version: verification.version,
        installedAt: new Date().toISOString(),
        ...(plan.packages.length > 0 ? { packages: plan.packages } : {}),
        ...(steps.some((step) => step.files) ? { files: steps.flatMap((step) => step.files ?? []).map((file) => ({ path: file.path, sha256: file.sha256 })) } : {}),
      });
    }
    return {
      tool: tool.id,
      status: 'upgraded',
      method: plan.method,
      previousVersion: current,
      version: verification.version,
      path: verification.path,
      steps,
      ...(verification.warning ? { warning: verification.warning } : {}),
    };
  };
  try {
    return await attempt(target.plan);
  } catch (error) {
    const failure = await remediate(session, tool, target.plan, error, autoRemediate ? attempt : null);
    if (failure.retried?.outcome) return { ...failure.retried.outcome, failure };
    const finalError = failure.retried?.error ?? error;
    if (!backup) return { tool: tool.id, status: 'failed', method: managed.method, error: errorSummary(finalError), failure };
    try {
      const restored = await rollbackTo(session, tool, backup);
      return {
        tool: tool.id,
        status: 'rolled-back',
        method: managed.method,
        version: restored.version,
        previousVersion: current,
        path: restored.path,
        reason: `the upgrade failed and ${tool.id} was rolled back to ${restored.version ?? 'its previous version'} (verified)`,
        error: errorSummary(finalError),
        failure,
      };
    } catch (rollbackError) {
      return {
        tool: tool.id,
        status: 'failed',
        method: managed.method,
        error: {
          code: 'E_ROLLBACK_FAILED',
          message: `the upgrade of ${tool.id} failed (${describeError(finalError)}) and so did the rollback: ${describeError(rollbackError)}`,
          hint: `the backup is in ${backup.folder}; copy its files back by hand (manifest.json lists where each goes)`,
        },
        failure,
      };
    }
  }
}

/** For methods that install "the latest" by name (npm @latest, pipx upgrade): the audit's latest, when the registry is the upstream. */
function expectedLatest(target: UpgradeTarget): string | null {
  const upstream = target.tool.upstream.source;
  const method = target.plan.method;
  const registryIsUpstream = (method === 'npm' && upstream === 'npm') || ((method === 'pipx' || method === 'uv') && upstream === 'pypi') || (method === 'cargo' && upstream === 'crates');
  return registryIsUpstream ? target.target : null;
}

/**
 * Puts the backed-up version back: first with the method itself where it
 * can install a chosen version (a package is more than its binary), then
 * the backed-up files; verified by the probe reporting the old version.
 */
export async function rollbackTo(session: Session, tool: Tool, backup: Backup): Promise<{ version: string | null; path: string }> {
  const { manifest } = backup;
  const method = manifest.method as ToolPlan['method'];
  const problems: string[] = [];
  if (manifest.version && METHOD_TRAITS[method]?.pinsVersions && method !== 'binary' && method !== 'go') {
    try {
      const plan = planTool(tool, { action: 'install', method, version: manifest.version, reinstall: true, installed: { method, ...(manifest.package ? { package: manifest.package } : {}) } }, session.planContext);
      await applyPlan(plan, session.applyContext);
    } catch (error) {
      problems.push(`reinstalling ${manifest.version} with ${method} failed: ${describeError(error)}`);
    }
  }
  try {
    await restoreBackup(backup);
  } catch (error) {
    problems.push(describeError(error));
  }
  session.refresh();
  try {
    const verification = await verifyInstalled(tool, manifest.version, verifyContext(session));
    if (manifest.version && verification.version && !sameVersion(verification.version, manifest.version)) throw new Error(`reports ${verification.version}`);
    await updateRecord(session.paths.state, tool.id, { method, version: verification.version, installedAt: new Date().toISOString(), ...(manifest.package ? { packages: [manifest.package] } : {}) });
    return { version: verification.version, path: verification.path };
  } catch (error) {
    throw new UpkeepError('E_ROLLBACK_FAILED', `${tool.id} could not be restored to ${manifest.version ?? 'its backed-up version'}: ${[...problems, describeError(error)].join('; ')}`, {
      hint: `the backup is in ${backup.folder}; manifest.json lists each file and where it goes`,
    });
  }
}

/** `upkeep rollback TOOL`: the newest backup, restored and verified. */
export async function rollbackTool(session: Session, tool: Tool): Promise<ToolOutcome & { backup: string }> {
  const [latest] = await listBackups(session.paths.data, tool.id);
  if (!latest) {
    throw new UpkeepError('E_BACKUP_MISSING', `there is no backup of ${tool.id}`, {
      hint: 'backups are made by `upkeep upgrade` before it changes anything',
    });
  }
  const restored = await rollbackTo(session, tool, latest);
  return { tool: tool.id, status: 'rolled-back', method: latest.manifest.method as ToolPlan['method'], version: restored.version, path: restored.path, backup: latest.folder };
}
