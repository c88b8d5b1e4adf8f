import { Option, type Command } from 'commander';
import type { Catalog } from '../../catalog/loader.ts';
import { METHODS, type Method, type Tool } from '../../catalog/schema.ts';
import { ExitCode, UpkeepError } from '../../core/errors.ts';
import { auditTools } from '../../install/current.ts';
import { executeInstall, planInstall, refreshDownloadVersions, type ToolOutcome } from '../../install/install.ts';
import { checkVersion, type ToolPlan } from '../../install/plan.ts';
import { reconcileTool, type ReconcileMode } from '../../install/reconcile.ts';
import { openSession, type Session } from '../../install/session.ts';
import { planUninstall, uninstallOne } from '../../install/uninstall.ts';
import { planUpgrades, rollbackTool, upgradeOne } from '../../install/upgrade.ts';
import type { CommandResult, Context } from '../context.ts';
import { colors, formatColumns } from '../output/colors.ts';
import { platformLine, renderOutcomes, renderPlans } from '../output/install.ts';
import { createProgress } from '../output/progress.ts';
import type { Handler } from '../run.ts';
import { upkeepVersion } from '../version.ts';
import { catalogFor, catalogWarnings, configFor } from './shared.ts';
import { selectTools, splitList } from './select.ts';

type Register = <T>(handler: Handler<T>) => (...args: unknown[]) => Promise<void>;

export function registerInstallCommands(program: Command, run: Register): void {
  const methodOption = () => new Option('--method <method>', 'install with this method only').choices([...METHODS]);
  program
    .command('install')
    .summary('install tools from their recipes (plan first, then run, verify)')
    .description(
      'Plans how to install each tool here (method and why, the exact commands, which need root,\n' +
        'what is downloaded), asks on a terminal, then runs the plan: tools that require others come\n' +
        'later, tools of different package managers run in parallel, each is verified afterwards.\n' +
        'A failure is matched against the failure handlers, which say how to fix it.',
    )
    .argument('[tool...]', 'tools to install (ids, binary names or aliases)')
    .option('--preset <name>', 'install the tools of a preset')
    .option('--missing', 'only the tools that are not installed (of the selection, the preset, or the whole catalog)')
    .addOption(methodOption())
    .option('--version <version>', 'install this version (methods that can pin one)')
    .option('--reinstall', 'install again even when already installed')
    .option('-n, --dry-run', 'print the plan and run nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--fail-fast', 'start no further tool after a failure')
    .option('--atomic', 'if any tool fails, remove the ones this run installed')
    .option('--auto-remediate', 'on failure, apply the recommended fix once and retry')
    .addHelpText('after', '\nExamples:\n  upkeep install ripgrep fd --dry-run\n  upkeep install --preset python-dev --missing --yes\n  upkeep install jq --method binary --version 1.7.1\n')
    .action(run(installHandler));
  program
    .command('upgrade')
    .summary('upgrade tools to the latest (or a given) version, with backup and automatic rollback')
    .argument('[tool...]', 'tools to upgrade')
    .option('--all', 'every installed catalog tool that is outdated')
    .option('--to <version>', 'upgrade (or move) to this version')
    .option('--force', 'allow a major version bump whatever the breaking-change policy says')
    .option('--offline', 'use cached latest versions only')
    .option('-n, --dry-run', 'print the plan and run nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .option('--auto-remediate', 'on failure, apply the recommended fix once and retry before rolling back')
    .action(run(upgradeHandler));
  program
    .command('uninstall')
    .summary('remove tools with the method that installed them')
    .argument('<tool...>', 'tools to remove')
    .option('--force', 'remove even when other system packages go with it')
    .option('-n, --dry-run', 'print the plan and run nothing')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(run(uninstallHandler));
  program
    .command('reconcile')
    .summary('list duplicate installations and keep the preferred one')
    .argument('[tool...]', 'tools to reconcile (default: every tool installed more than once)')
    .addOption(new Option('--mode <mode>', 'parallel keeps every installation; aggressive removes the others').choices(['parallel', 'aggressive']))
    .option('--apply', 'carry out the removals (default: only show them)')
    .option('--force', 'remove even when other system packages go with it')
    .action(run(reconcileHandler));
  program
    .command('rollback')
    .summary("restore a tool's last backup (made by upgrade) and verify it")
    .argument('<tool>', 'tool to roll back')
    .action(run(rollbackHandler));
}

/** Names are checked before anything is looked up or built into a command. */
const PLAIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._+@-]*$/;

function checkNames(names: readonly string[]): void {
  for (const name of names) {
    if (!PLAIN_NAME.test(name) || name.length > 100) {
      throw new UpkeepError('E_INVALID_NAME', `${JSON.stringify(name)} is not a tool name`, {
        hint: 'pass plain names such as ripgrep or jq; `upkeep catalog list` shows them',
        exitCode: ExitCode.usage,
      });
    }
  }
}

async function session(context: Context, catalog: Catalog, dryRun: boolean, flags: Record<string, unknown> = {}): Promise<Session> {
  const { config } = await configFor(context, flags);
  return openSession({
    catalog,
    config,
    paths: context.paths,
    environment: context.environment,
    home: context.home,
    cwd: context.cwd,
    logger: context.logger,
    dryRun,
    ...(context.uid === undefined ? {} : { uid: context.uid }),
    userAgent: `upkeep/${upkeepVersion}`,
  });
}

function exitCodeOf(outcomes: ToolOutcome[]): ExitCode {
  const failed = outcomes.filter((outcome) => outcome.status === 'failed' || outcome.status === 'rolled-back').length;
  if (failed === 0) return ExitCode.success;
  const succeeded = outcomes.filter((outcome) => ['installed', 'upgraded', 'uninstalled'].includes(outcome.status)).length;
  return succeeded > 0 ? ExitCode.partial : ExitCode.failure;
}

async function confirmPlan(context: Context, text: string, yes: boolean | undefined, dryRun: boolean | undefined): Promise<void> {
  if (dryRun || yes || !context.confirm || context.json) return;
  context.stderr.write(`${text}\n`);
  if (!(await context.confirm('Proceed?'))) {
    throw new UpkeepError('E_DECLINED', 'nothing was changed: the plan was not confirmed', { hint: 'run again and answer y, or pass --yes' });
  }
}

interface InstallOptions {
  preset?: string;
  missing?: boolean;
  method?: Method;
  version?: string;
  reinstall?: boolean;
  dryRun?: boolean;
  yes?: boolean;
  failFast?: boolean;
  atomic?: boolean;
  autoRemediate?: boolean;
}

const installHandler: Handler<InstallOptions> = async (options, context, operands) => {
  checkNames([...operands, ...(options.preset ? [options.preset] : [])]);
  const version = options.version === undefined ? null : checkVersion(options.version, '--version');
  const catalog = await catalogFor(context);
  const names = splitList(operands);
  if (names.length === 0 && !options.preset && !options.missing) {
    throw new UpkeepError('E_USAGE', 'name the tools to install, or pass --preset NAME or --missing', {
      hint: 'e.g. `upkeep install ripgrep jq`, `upkeep install --preset agent-essentials`',
      exitCode: ExitCode.usage,
    });
  }
  let { tools } = selectTools(catalog, names, options.preset);
  const current = await session(context, catalog, options.dryRun ?? false);
  try {
    if (options.missing) tools = tools.filter((tool) => current.installationsOf(tool).length === 0);
    const request = { tools, ...(options.method ? { method: options.method } : {}), version, reinstall: options.reinstall ?? false };
    const planned = planInstall(current, request);
    await refreshDownloadVersions(current, planned, request);
    const warnings = [...catalogWarnings(catalog), ...current.warnings];
    if (planned.added.length > 0) warnings.push(`also installing what they require: ${planned.added.join(', ')}`);
    const planText = (color: boolean) => renderPlans(planned.plans, current.platform, color);

    if (options.dryRun || planned.plans.length === 0) {
      return {
        exitCode: planned.skipped.some((outcome) => outcome.status === 'failed') ? (planned.plans.length > 0 ? ExitCode.partial : ExitCode.failure) : ExitCode.success,
        data: { dryRun: options.dryRun ?? false, platform: current.platform, plans: planned.plans, skipped: planned.skipped, added: planned.added },
        warnings,
        human: (color) => [planned.plans.length > 0 ? planText(color) : 'Nothing to install.', renderOutcomes(planned.skipped, color)].filter(Boolean).join('\n'),
      };
    }
    await confirmPlan(context, planText(context.color), options.yes, options.dryRun);
    if (!context.json && !context.quiet) context.stderr.write(`${planText(context.color)}\n`);
    const progress = createProgress(context);
    let done = 0;
    const executed = await executeInstall(current, planned.plans, {
      failFast: options.failFast ?? false,
      atomic: options.atomic ?? false,
      autoRemediate: options.autoRemediate ?? false,
      onStart: (plan) => progress.update(`installing ${plan.tool}`, done, planned.plans.length),
      onEnd: () => progress.update('installed', ++done, planned.plans.length),
    });
    progress.done();
    const outcomes = [...executed.outcomes, ...planned.skipped];
    return {
      exitCode: exitCodeOf(outcomes),
      data: { platform: current.platform, plans: planned.plans, outcomes, rollbackScript: executed.rollbackScript },
      warnings,
      human: (color) =>
        [renderOutcomes(outcomes, color), executed.rollbackScript ? `rollback script: ${executed.rollbackScript}` : ''].filter(Boolean).join('\n'),
    };
  } finally {
    await current.close();
  }
};

interface UpgradeCommandOptions {
  all?: boolean;
  to?: string;
  force?: boolean;
  offline?: boolean;
  dryRun?: boolean;
  yes?: boolean;
  autoRemediate?: boolean;
}

const upgradeHandler: Handler<UpgradeCommandOptions> = async (options, context, operands) => {
  checkNames(operands);
  const to = options.to === undefined ? null : checkVersion(options.to, '--to');
  if (operands.length === 0 && !options.all) {
    throw new UpkeepError('E_USAGE', 'name the tools to upgrade, or pass --all', { hint: 'e.g. `upkeep upgrade ripgrep`, `upkeep upgrade --all`', exitCode: ExitCode.usage });
  }
  if (to && operands.length !== 1) {
    throw new UpkeepError('E_USAGE', '--to needs exactly one tool', { hint: 'e.g. `upkeep upgrade jq --to 1.7.1`', exitCode: ExitCode.usage });
  }
  const catalog = await catalogFor(context);
  const { tools } = selectTools(catalog, splitList(operands), undefined);
  const current = await session(context, catalog, options.dryRun ?? false);
  try {
    const progress = createProgress(context);
    progress.update('checking versions', 0, tools.length);
    let reports = await auditTools(current, tools, { offline: options.offline ?? false });
    progress.done();
    if (options.all && operands.length === 0) reports = reports.filter((report) => report.status === 'outdated');
    const { targets, outcomes: decided } = await planUpgrades(current, reports, { to, force: options.force ?? false, confirm: context.json ? null : context.confirm });
    const plans = targets.map((target) => target.plan);
    const planText = (color: boolean) => renderPlans(plans, current.platform, color, 'upgrade');
    if (options.dryRun || targets.length === 0) {
      return {
        exitCode: exitCodeOf(decided),
        data: { dryRun: options.dryRun ?? false, plans, outcomes: decided },
        warnings: current.warnings,
        human: (color) => [targets.length > 0 ? planText(color) : 'Nothing to upgrade.', renderOutcomes(decided, color)].filter(Boolean).join('\n'),
      };
    }
    await confirmPlan(context, planText(context.color), options.yes, options.dryRun);
    const outcomes: ToolOutcome[] = [];
    // One tool at a time: each has a backup and a rollback that must not interleave with another's.
    for (const [index, target] of targets.entries()) {
      progress.update(`upgrading ${target.tool.id}`, index, targets.length);
      outcomes.push(await upgradeOne(current, target, options.autoRemediate ?? false));
    }
    progress.done();
    const all = [...outcomes, ...decided];
    return { exitCode: exitCodeOf(all), data: { plans, outcomes: all }, warnings: current.warnings, human: (color) => renderOutcomes(all, color) };
  } finally {
    await current.close();
  }
};

const uninstallHandler: Handler<{ force?: boolean; dryRun?: boolean; yes?: boolean }> = async (options, context, operands) => {
  checkNames(operands);
  const catalog = await catalogFor(context);
  const { tools } = selectTools(catalog, splitList(operands), undefined);
  const current = await session(context, catalog, options.dryRun ?? false);
  try {
    const reports = await auditTools(current, tools, { offline: true });
    const outcomes: ToolOutcome[] = [];
    const planned: Awaited<ReturnType<typeof planUninstall>>[] = [];
    for (const report of reports) {
      try {
        planned.push(await planUninstall(current, report));
      } catch (error) {
        if (tools.length === 1) throw error;
        outcomes.push({ tool: report.id, status: 'failed', error: { code: (error as UpkeepError).code ?? 'E_INTERNAL', message: (error as Error).message } });
      }
    }
    const plans: ToolPlan[] = planned.map((entry) => entry.plan);
    const planText = (color: boolean) =>
      [renderPlans(plans, current.platform, color, 'uninstall'), ...planned.filter((entry) => entry.alsoRemoved.length > 0).map((entry) => `${entry.tool.id}: apt would also remove ${entry.alsoRemoved.join(', ')}`)].join('\n');
    if (options.dryRun) {
      return { exitCode: ExitCode.success, data: { dryRun: true, plans, alsoRemoved: Object.fromEntries(planned.map((entry) => [entry.tool.id, entry.alsoRemoved])) }, human: planText };
    }
    await confirmPlan(context, planText(context.color), options.yes, options.dryRun);
    for (const entry of planned) {
      try {
        outcomes.push(await uninstallOne(current, entry, options.force ?? false));
      } catch (error) {
        if (planned.length === 1 && outcomes.length === 0) throw error;
        outcomes.push({ tool: entry.tool.id, status: 'failed', error: { code: (error as UpkeepError).code ?? 'E_INTERNAL', message: (error as Error).message, ...((error as UpkeepError).hint ? { hint: (error as UpkeepError).hint! } : {}) } });
      }
    }
    return { exitCode: exitCodeOf(outcomes), data: { plans, outcomes }, warnings: current.warnings, human: (color) => renderOutcomes(outcomes, color) };
  } finally {
    await current.close();
  }
};

const reconcileHandler: Handler<{ mode?: ReconcileMode; apply?: boolean; force?: boolean }> = async (options, context, operands) => {
  checkNames(operands);
  const catalog = await catalogFor(context);
  const { tools, explicit } = selectTools(catalog, splitList(operands), undefined);
  const current = await session(context, catalog, false, options.mode ? { 'install.reconcile': options.mode } : {});
  try {
    const mode = current.config.install.reconcile;
    const reports = (await auditTools(current, tools, { offline: true })).filter((report) => report.installations.filter((entry) => !entry.differentTool).length > (explicit ? 0 : 1));
    const results: Awaited<ReturnType<typeof reconcileTool>>[] = [];
    for (const report of reports) results.push(await reconcileTool(current, report, { mode, apply: options.apply ?? false, force: options.force ?? false }));
    const failed = results.some((result) => result.installations.some((entry) => entry.action === 'failed'));
    return {
      exitCode: failed ? ExitCode.partial : ExitCode.success,
      data: { mode, applied: options.apply ?? false, tools: results },
      warnings: current.warnings,
      human: (color) => renderReconcile(results, mode, options.apply ?? false, color),
    };
  } finally {
    await current.close();
  }
};

function renderReconcile(results: Awaited<ReturnType<typeof reconcileTool>>[], mode: ReconcileMode, applied: boolean, color: boolean): string {
  const c = colors(color);
  if (results.length === 0) return 'No tool is installed more than once.';
  const lines = [`Reconcile (${mode}${applied ? '' : ', dry run: pass --apply to act'})`];
  for (const result of results) {
    lines.push(`${c.bold(result.tool)}: keep ${result.preferred} — ${result.reason}`);
    lines.push(
      formatColumns(
        result.installations.map((entry) => [
          entry.action === 'keep' ? c.green(entry.action) : entry.action === 'failed' ? c.red(entry.action) : c.yellow(entry.action),
          entry.path + (entry.active ? ' *' : ''),
          entry.version ?? '?',
          entry.method,
          entry.reason,
        ]),
        '  ',
      ),
    );
  }
  return lines.join('\n');
}

const rollbackHandler: Handler<Record<string, never>> = async (_options, context, operands) => {
  checkNames(operands);
  const catalog = await catalogFor(context);
  const { tools } = selectTools(catalog, operands, undefined);
  const tool: Tool = tools[0]!;
  const current = await session(context, catalog, false);
  try {
    const outcome = await rollbackTool(current, tool);
    const result: CommandResult = {
      exitCode: ExitCode.success,
      data: outcome,
      human: (color) => `${renderOutcomes([outcome], color)}\n  from ${outcome.backup}\n  on ${platformLine(current.platform)}`,
    };
    return result;
  } finally {
    await current.close();
  }
};
