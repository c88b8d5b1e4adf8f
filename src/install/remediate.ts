import type { Tool } from '../catalog/schema.ts';
import { loadHandlers, type LoadedHandler } from '../catalog/handlers.ts';
import { describeError, isUpkeepError } from '../core/errors.ts';
import type { ToolOutcome } from './install.ts';
import { planTool, type PlannedStep, type ToolPlan } from './plan.ts';
import { matchFailure, type HandlerMatch, type OptionAssessment } from './remediation/match.ts';
import type { Session } from './session.ts';

/**
 * What happens after a step fails: its output is matched against the
 * failure handlers (tool, then method family, then infrastructure), and with
 * `--auto-remediate` the first matched handler's recommended option is
 * applied once, if it is ready here, and the install retried.
 */

export type ReportedMatch = Omit<HandlerMatch, 'handler'>;

export interface FailureReport {
  matches: ReportedMatch[];
  applied?: { handler: string; option: string; strategy: string; steps: string[][] };
  retried?: { outcome?: ToolOutcome; error?: unknown };
}

const handlerCache = new Map<string, Promise<LoadedHandler[]>>();

export function handlersFor(session: Pick<Session, 'catalog'>): Promise<LoadedHandler[]> {
  let loaded = handlerCache.get(session.catalog.root);
  if (!loaded) {
    loaded = loadHandlers(session.catalog.root).then((result) => result.handlers);
    handlerCache.set(session.catalog.root, loaded);
  }
  return loaded;
}

export function assessContextFor(session: Session, method: ToolPlan['method']) {
  return { platform: session.platform, groups: session.groups, catalogHas: (id: string) => session.catalog.byId.has(id), method };
}


export async function remediate(
  session: Session,
  tool: Tool,
  plan: ToolPlan,
  error: unknown,
  retry: ((plan: ToolPlan) => Promise<ToolOutcome>) | null,
): Promise<FailureReport> {
  const details = isUpkeepError(error) ? error.details : undefined;
  const output = typeof details?.output === 'string' ? details.output : describeError(error);
  const exitCode = typeof details?.exitCode === 'number' ? details.exitCode : null;
  const handlers = await handlersFor(session);
  const matches = matchFailure(handlers, { method: plan.method, tool: tool.id, exitCode, output }, assessContextFor(session, plan.method));
  const report: FailureReport = { matches: matches.map(({ handler: _handler, ...rest }) => rest) };
  if (!retry) return report;

  // The first handler (most specific layer) that recommends a ready option decides.
  for (const match of matches) {
    const option = match.options.find((candidate) => candidate.recommended && candidate.status === 'ready' && candidate.strategy !== 'manual');
    if (!option) continue;
    const raw = match.handler.options.find((entry) => entry.id === option.id)!;
    report.applied = { handler: match.id, option: option.id, strategy: option.strategy, steps: option.steps ?? [] };
    try {
      const next = await prepare(session, tool, plan, option, raw);
      report.retried = { outcome: await retry(next) };
    } catch (retryError) {
      report.retried = { error: retryError };
    }
    return report;
  }
  return report;
}

/** Applies an option's own steps and returns the plan to retry with. */
async function prepare(
  session: Session,
  tool: Tool,
  plan: ToolPlan,
  option: OptionAssessment,
  raw: LoadedHandler['options'][number],
): Promise<ToolPlan> {
  const run = async (argv: string[]): Promise<void> => {
    const result = await session.executor.run(argv, { timeout: session.config.install.stepTimeout * 1000, env: { ...session.environment } });
    if (result.exitCode !== 0) throw new Error(`\`${argv.join(' ')}\` exited with code ${result.exitCode}: ${result.stderr.trim().split('\n').at(-1) ?? ''}`);
  };
  switch (raw.strategy) {
    case 'install-packages':
    case 'cleanup-retry':
      for (const argv of option.steps ?? []) await session.applyContext.mutexes.run(lockOf(argv), () => run(argv));
      return plan;
    case 'install-dependency': {
      const dependency = session.catalog.byId.get(raw.dependency!)!;
      const { installOne } = await import('./install.ts');
      const dependencyPlan = planTool(dependency, { action: 'install' }, session.planContext);
      const outcome = await installOne(session, dependencyPlan, false);
      if (outcome.status !== 'installed') throw new Error(`installing ${dependency.id} failed: ${outcome.error?.message ?? outcome.status}`);
      session.refresh();
      return plan;
    }
    case 'switch-method':
      return planTool(tool, { action: plan.action, method: raw.method!, version: plan.version && plan.method !== 'binary' ? plan.version : null }, session.planContext);
    case 'retry-with-modifier': {
      if (raw.modifier?.wait) await new Promise((resolve) => setTimeout(resolve, raw.modifier!.wait! * 1000));
      return withMainStep(plan, (step) =>
        step.kind === 'command'
          ? { ...step, argv: [...step.argv, ...(raw.modifier?.args ?? [])], env: { ...step.env, ...raw.modifier?.env } }
          : step,
      );
    }
    case 'fix-environment':
      return withMainStep(plan, (step) => (step.kind === 'command' || step.kind === 'script' ? { ...step, env: { ...step.env, ...raw.env } } : step));
    default:
      return plan;
  }
}

function withMainStep(plan: ToolPlan, change: (step: PlannedStep) => PlannedStep): ToolPlan {
  const steps = [...plan.steps];
  const index = steps.findLastIndex((step) => step.method === plan.method);
  if (index >= 0) steps[index] = change(steps[index]!);
  return { ...plan, steps };
}

/** Remedy commands take the same package-manager mutex as installs. */
function lockOf(argv: readonly string[]): string | null {
  const program = argv[0] === 'sudo' ? argv.find((argument, index) => index > 0 && !argument.startsWith('-')) : argv[0];
  switch (program) {
    case 'apt-get':
    case 'apt':
    case 'dpkg':
      return 'dpkg';
    case 'dnf':
    case 'yum':
    case 'zypper':
    case 'rpm':
      return 'rpm';
    default:
      return program ?? null;
  }
}
