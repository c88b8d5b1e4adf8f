import type { ToolOutcome } from '../../install/install.ts';
import type { PlannedStep, ToolPlan } from '../../install/plan.ts';
import type { ReportedMatch } from '../../install/remediate.ts';
import type { Platform } from '../../install/types.ts';
import { colors } from './colors.ts';

/** How plans, outcomes and matched failure handlers look to people. */

export function describeStep(step: PlannedStep): string {
  switch (step.kind) {
    case 'command':
      return `$ ${step.argv.map(quoteForDisplay).join(' ')}`;
    case 'binary': {
      const checksum = step.download.checksum;
      const verified =
        checksum === null ? 'no published checksum' : checksum.kind === 'file' ? `${checksum.algorithm} from ${checksum.url}` : `pinned sha256 ${checksum.digest.slice(0, 12)}…`;
      return `download ${step.download.url} (${verified}) -> ${step.download.files.map((file) => `${step.binDir}/${file.name}`).join(', ')}`;
    }
    case 'script':
      return `download ${step.url} and run: ${step.shell} <script> ${step.args.join(' ')}`.trimEnd();
    case 'remove-files':
      return `remove ${step.files.join(', ')}`;
  }
}

function quoteForDisplay(argument: string): string {
  return /^[\w@%+=:,./-]+$/.test(argument) ? argument : `'${argument.replace(/'/g, `'\\''`)}'`;
}

export function platformLine(platform: Platform): string {
  const where = platform.distribution?.name ?? platform.rawOs;
  return `${where} (${platform.family ?? 'unknown family'}, ${platform.arch ?? platform.rawArch}, ${platform.environment.mode}, ${platform.privilege})`;
}

export function renderPlans(plans: ToolPlan[], platform: Platform, color: boolean, verb = 'install'): string {
  const c = colors(color);
  const lines: string[] = [`Plan: ${verb} ${plans.length} ${plans.length === 1 ? 'tool' : 'tools'} on ${platformLine(platform)}`];
  for (const plan of plans) {
    const version = plan.version ? ` ${plan.version}` : '';
    lines.push(`  ${c.bold(plan.tool)}${version} with ${c.cyan(plan.method)} — ${plan.reason}`);
    if (plan.requires.length > 0) lines.push(`    after: ${plan.requires.join(', ')}`);
    for (const step of plan.steps) {
      const root = step.root ? c.yellow(`  [root: ${step.root}${platform.privilege === 'root' ? '' : ', via sudo'}]`) : '';
      lines.push(`    ${describeStep(step)}${root}`);
    }
  }
  const rootSteps = plans.flatMap((plan) => plan.steps).filter((step) => step.root);
  if (rootSteps.length > 0) {
    lines.push(
      platform.privilege === 'root'
        ? `${rootSteps.length} ${rootSteps.length === 1 ? 'step needs' : 'steps need'} root; upkeep runs as root`
        : `${rootSteps.length} ${rootSteps.length === 1 ? 'step needs' : 'steps need'} root and ${rootSteps.length === 1 ? 'runs' : 'run'} with sudo`,
    );
  }
  return lines.join('\n');
}

const STATUS_LABEL: Record<ToolOutcome['status'], string> = {
  installed: 'installed',
  'already-installed': 'already installed',
  failed: 'FAILED',
  skipped: 'skipped',
  'rolled-back': 'rolled back',
  upgraded: 'upgraded',
  'up-to-date': 'up to date',
  uninstalled: 'uninstalled',
};

export function renderOutcomes(outcomes: ToolOutcome[], color: boolean): string {
  const c = colors(color);
  const lines: string[] = [];
  for (const outcome of outcomes) {
    const paint = outcome.status === 'failed' ? c.red : outcome.status === 'rolled-back' || outcome.status === 'skipped' ? c.yellow : c.green;
    const version =
      outcome.previousVersion !== undefined && outcome.version !== undefined
        ? ` ${outcome.previousVersion ?? '?'} -> ${outcome.version ?? '?'}`
        : outcome.version
          ? ` ${outcome.version}`
          : '';
    const how = outcome.method ? ` (${outcome.method})` : '';
    const where = outcome.path ? ` at ${outcome.path}` : '';
    lines.push(`${paint(STATUS_LABEL[outcome.status])} ${c.bold(outcome.tool)}${version}${how}${where}`);
    if (outcome.reason) lines.push(`  ${outcome.reason}`);
    if (outcome.warning) lines.push(`  ${c.yellow('warning:')} ${outcome.warning}`);
    if (outcome.error) {
      lines.push(`  ${c.red(`error[${outcome.error.code}]:`)} ${outcome.error.message}`);
      if (outcome.error.hint) lines.push(`  hint: ${outcome.error.hint}`);
    }
    if (outcome.failure) {
      if (outcome.failure.applied) {
        const applied = outcome.failure.applied;
        lines.push(`  remediation applied: ${applied.handler} / ${applied.option} (${applied.strategy})${outcome.failure.retried?.outcome ? ', then the retry succeeded' : ', but the retry failed too'}`);
      }
      lines.push(...renderMatches(outcome.failure.matches, color, '  '));
    }
  }
  return lines.join('\n');
}

export function renderMatches(matches: ReportedMatch[], color: boolean, indent = ''): string[] {
  const c = colors(color);
  if (matches.length === 0) return [`${indent}no failure handler recognises this output; the output above is all there is`];
  const lines: string[] = [];
  for (const match of matches) {
    lines.push(`${indent}${c.bold(match.label)} ${c.dim(`[${match.id}, ${match.layer}, ${match.category}]`)}`);
    match.options.forEach((option, index) => {
      const status = option.status === 'ready' ? c.green('ready') : option.status === 'needs' ? c.yellow(`needs ${option.needs?.join(', ') ?? 'something'}`) : c.red(`impossible: ${option.reason ?? ''}`);
      lines.push(`${indent}  ${index + 1}. ${option.label}${option.recommended ? c.bold(' (recommended)') : ''} — ${status}`);
      for (const argv of option.steps ?? []) lines.push(`${indent}     $ ${argv.map(quoteForDisplay).join(' ')}`);
      if (option.instructions) lines.push(`${indent}     ${option.instructions}`);
    });
  }
  return lines;
}
