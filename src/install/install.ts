import { join } from 'node:path';
import type { Method, Tool } from '../catalog/schema.ts';
import { UpkeepError, describeError, isUpkeepError } from '../core/errors.ts';
import { writeFileAtomic } from '../core/fs.ts';
import { applyPlan, verifyInstalled, type AppliedStep, type Verification } from './apply.ts';
import { runBulk, type BulkOutcome } from './bulk.ts';
import { METHOD_TRAITS } from './managers.ts';
import { planTool, type PlanRequest, type ToolPlan } from './plan.ts';
import { updateRecord } from './records.ts';
import { remediate, type FailureReport } from './remediate.ts';
import type { Session } from './session.ts';

/**
 * `upkeep install`: plan every tool (pulling in what they require), then run
 * the plans in dependency levels, verify each tool and record how it was
 * installed. A failed tool is matched against the failure handlers; with
 * auto-remediation the recommended ready option is applied once and the
 * install retried.
 */

export interface InstallRequest {
  tools: Tool[];
  method?: Method;
  version?: string | null;
  reinstall: boolean;
}

export interface PlannedInstall {
  plans: ToolPlan[];
  /** Tools not planned: already installed, or planning failed. */
  skipped: ToolOutcome[];
  /** Requirements added to the run because they are missing. */
  added: string[];
}

export type ToolStatus = 'installed' | 'already-installed' | 'failed' | 'skipped' | 'rolled-back' | 'upgraded' | 'up-to-date' | 'uninstalled';

export interface ToolOutcome {
  tool: string;
  status: ToolStatus;
  method?: Method;
  version?: string | null;
  previousVersion?: string | null;
  path?: string;
  reason?: string;
  warning?: string;
  error?: { code: string; message: string; hint?: string };
  failure?: FailureReport;
  steps?: AppliedStep[];
}

export function errorSummary(error: unknown): { code: string; message: string; hint?: string } {
  if (isUpkeepError(error)) return { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) };
  return { code: 'E_INTERNAL', message: describeError(error) };
}

export function planInstall(session: Session, request: InstallRequest): PlannedInstall {
  const plans: ToolPlan[] = [];
  const skipped: ToolOutcome[] = [];
  const added: string[] = [];
  const planned = new Set<string>();
  const queue = [...request.tools];
  const requested = new Set(request.tools.map((tool) => tool.id));
  while (queue.length > 0) {
    const tool = queue.shift()!;
    if (planned.has(tool.id)) continue;
    planned.add(tool.id);
    const isRequested = requested.has(tool.id);
    const existing = session.installationsOf(tool)[0];
    if (existing && !(isRequested && (request.reinstall || request.version))) {
      skipped.push({ tool: tool.id, status: 'already-installed', path: existing.path, reason: `already installed at ${existing.path}${isRequested ? '; pass --reinstall to install it again' : ''}` });
      continue;
    }
    try {
      const planRequest: PlanRequest = isRequested
        ? { action: 'install', ...(request.method ? { method: request.method } : {}), version: request.version ?? null, reinstall: request.reinstall }
        : { action: 'install' };
      const plan = planTool(tool, planRequest, session.planContext);
      if (plan.missingBinaries.length > 0) {
        throw new UpkeepError('E_NO_METHOD', `${tool.id} needs ${plan.missingBinaries.join(', ')} on PATH, and no catalog tool provides it`, {
          hint: `install ${plan.missingBinaries.join(', ')} first`,
        });
      }
      plans.push(plan);
      for (const id of plan.requires) {
        const requirement = session.catalog.byId.get(id);
        if (requirement && !planned.has(id) && !requested.has(id) && session.installationsOf(requirement).length === 0) {
          added.push(id);
          queue.push(requirement);
        }
      }
    } catch (error) {
      if (!isRequested || request.tools.length > 1) skipped.push({ tool: tool.id, status: 'failed', error: errorSummary(error) });
      else throw error;
    }
  }
  // Requirements already installed, or not in this run, are not waited for.
  const inRun = new Set(plans.map((plan) => plan.tool));
  for (const plan of plans) plan.requires = plan.requires.filter((id) => inRun.has(id));
  return { plans, skipped, added };
}

/**
 * Release downloads were planned with the latest version known offline (the
 * audit's cache or the committed baseline). Before they run, the upstream is
 * asked (within the audit cache's time to live) so that "latest" means now;
 * plans whose version moved are made again.
 */
export async function refreshDownloadVersions(session: Session, planned: PlannedInstall, request: InstallRequest): Promise<void> {
  if (request.version) return;
  const downloads = planned.plans.filter((plan) => plan.method === 'binary');
  if (downloads.length === 0) return;
  const tools = downloads.map((plan) => session.catalog.byId.get(plan.tool)!);
  const { resolveLatest } = await import('../audit/latest.ts');
  const resolved = await resolveLatest({
    tools,
    config: session.config,
    paths: session.paths,
    environment: session.environment,
    logger: session.logger,
    offline: false,
    refresh: false,
    baselinePath: join(session.catalog.root, 'latest-versions.json'),
    userAgent: session.userAgent,
  });
  session.warnings.push(...resolved.warnings);
  planned.plans = planned.plans.map((plan) => {
    const latest = resolved.results.get(plan.tool)?.latest?.version;
    if (plan.method !== 'binary' || !latest || latest === plan.version) return plan;
    const tool = session.catalog.byId.get(plan.tool)!;
    const again = planTool(tool, { action: 'install', method: 'binary', version: latest, reinstall: request.reinstall }, session.planContext);
    return { ...again, reason: plan.reason, alternatives: plan.alternatives, rejected: plan.rejected, requires: plan.requires };
  });
}

export interface ExecuteOptions {
  failFast: boolean;
  atomic: boolean;
  autoRemediate: boolean;
  onStart?: (plan: ToolPlan) => void;
  onEnd?: (outcome: ToolOutcome) => void;
}

export interface ExecutedInstall {
  outcomes: ToolOutcome[];
  rollbackScript: string | null;
}

export async function executeInstall(session: Session, plans: ToolPlan[], options: ExecuteOptions): Promise<ExecutedInstall> {
  const byTool = new Map(plans.map((plan) => [plan.tool, plan]));
  const results = await runBulk<ToolPlan & { id: string }, ToolOutcome>({
    items: plans.map((plan) => ({ ...plan, id: plan.tool })),
    concurrency: session.config.install.concurrency,
    failFast: options.failFast,
    atomic: options.atomic,
    run: async (plan) => {
      const outcome = await installOne(session, plan, options.autoRemediate);
      // A failure that was matched and reported is an outcome, not an exception, but bulk must see it as failed.
      if (outcome.status === 'failed') throw Object.assign(new Error(outcome.error?.message ?? 'failed'), { outcome });
      return outcome;
    },
    undo: async (plan, outcome) => {
      await uninstallPlanned(session, plan, outcome);
    },
    onStart: (plan) => options.onStart?.(byTool.get(plan.tool)!),
    onEnd: (outcome) => options.onEnd?.(fromBulk(outcome)),
  });
  const outcomes = results.map(fromBulk);
  const rollbackScript = await writeRollbackScript(session, plans, outcomes);
  return { outcomes, rollbackScript };
}

function fromBulk(outcome: BulkOutcome<ToolOutcome>): ToolOutcome {
  switch (outcome.status) {
    case 'done':
      return outcome.result;
    case 'failed': {
      const attached = (outcome.error as { outcome?: ToolOutcome }).outcome;
      return attached ?? { tool: outcome.id, status: 'failed', error: errorSummary(outcome.error) };
    }
    case 'skipped':
      return { tool: outcome.id, status: 'skipped', reason: outcome.reason };
    case 'rolled-back':
      return {
        ...outcome.result,
        status: 'rolled-back',
        reason: outcome.error ? `rolling it back failed: ${describeError(outcome.error)}` : 'removed again because another tool failed (--atomic)',
      };
  }
}

/** Installs one planned tool; failures come back as a `failed` outcome with the matched handlers. */
export async function installOne(session: Session, plan: ToolPlan, autoRemediate: boolean): Promise<ToolOutcome> {
  const tool = session.catalog.byId.get(plan.tool)!;
  const attempt = async (current: ToolPlan): Promise<ToolOutcome> => {
    const steps = await applyPlan(current, session.applyContext);
    session.refresh();
    const verification = await verifyInstalled(tool, current.version && METHOD_TRAITS[current.method].pinsVersions ? current.version : null, verifyContext(session));
    await record(session, current, steps, verification);
    return {
      tool: current.tool,
      status: 'installed',
      method: current.method,
      version: verification.version,
      path: verification.path,
      steps,
      ...(verification.warning ? { warning: verification.warning } : {}),
    };
  };
  try {
    return await attempt(plan);
  } catch (error) {
    const failure = await remediate(session, tool, plan, error, autoRemediate ? attempt : null);
    if (failure.retried?.outcome) return { ...failure.retried.outcome, failure };
    return { tool: plan.tool, status: 'failed', method: plan.method, error: errorSummary(failure.retried?.error ?? error), failure };
  }
}

export function verifyContext(session: Session): Parameters<typeof verifyInstalled>[2] {
  return { executor: session.executor, environment: session.environment, config: session.config, home: session.home, cwd: session.cwd, binDir: session.binDir };
}

async function record(session: Session, plan: ToolPlan, steps: AppliedStep[], verification: Verification): Promise<void> {
  if (session.executor.dryRun) return;
  const files = steps.flatMap((step) => step.files ?? []).map((file) => ({ path: file.path, sha256: file.sha256 }));
  const packages = plan.packages;
  await updateRecord(session.paths.state, plan.tool, {
    method: plan.method,
    version: verification.version,
    installedAt: new Date().toISOString(),
    ...(packages.length > 0 ? { packages } : {}),
    ...(files.length > 0 ? { files } : plan.method === 'go' ? { files: [{ path: verification.path, sha256: '' }] } : {}),
  });
}

async function uninstallPlanned(session: Session, plan: ToolPlan, outcome: ToolOutcome): Promise<void> {
  const tool = session.catalog.byId.get(plan.tool)!;
  const files = outcome.steps?.flatMap((step) => step.files ?? []).map((file) => file.path) ?? (outcome.path ? [outcome.path] : []);
  const uninstall = planTool(tool, { action: 'uninstall', installed: { method: plan.method, files } }, session.planContext);
  await applyPlan(uninstall, session.applyContext);
  await updateRecord(session.paths.state, plan.tool, null);
  session.refresh();
}

/** A shell script that removes what this run installed, newest first (DESIGN: every bulk run leaves one). */
async function writeRollbackScript(session: Session, plans: ToolPlan[], outcomes: ToolOutcome[]): Promise<string | null> {
  const installed = outcomes.filter((outcome) => outcome.status === 'installed');
  if (installed.length === 0 || session.executor.dryRun) return null;
  const lines = ['#!/bin/sh', `# Written by upkeep on ${new Date().toISOString()}: removes what that install run added.`, 'set -u', ''];
  for (const outcome of [...installed].reverse()) {
    const plan = plans.find((entry) => entry.tool === outcome.tool)!;
    const tool = session.catalog.byId.get(outcome.tool)!;
    const files = outcome.steps?.flatMap((step) => step.files ?? []).map((file) => file.path) ?? (outcome.path ? [outcome.path] : []);
    try {
      const uninstall = planTool(tool, { action: 'uninstall', installed: { method: plan.method, files } }, session.planContext);
      lines.push(`# ${outcome.tool} (${plan.method})`);
      for (const step of uninstall.steps) {
        if (step.kind === 'command') lines.push(step.argv.map(shellQuote).join(' '));
        if (step.kind === 'remove-files') lines.push(['rm', '-f', '--', ...step.files].map(shellQuote).join(' '));
      }
    } catch (error) {
      lines.push(`# ${outcome.tool}: no automatic removal (${describeError(error)})`);
    }
  }
  const file = join(session.paths.state, 'rollback', `install-${new Date().toISOString().replace(/[:.]/g, '-')}.sh`);
  await writeFileAtomic(file, `${lines.join('\n')}\n`);
  return file;
}

export function shellQuote(argument: string): string {
  return /^[\w@%+=:,./-]+$/.test(argument) ? argument : `'${argument.replace(/'/g, `'\\''`)}'`;
}
