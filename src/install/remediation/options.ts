import { resolvePackages } from '../../catalog/handlers.ts';
import type { Groups, Method, RemedyOption, Strategy } from '../../catalog/schema.ts';
import type { Platform } from '../types.ts';
import { familyManager, systemPackageInstall } from '../managers.ts';

/**
 * Whether a handler's option can be applied on this machine, and what it
 * would run. Assessment never runs anything: it turns an option into argv,
 * or says what is missing (sudo, a package manager) or why it cannot work.
 */

export type OptionStatus = 'ready' | 'needs' | 'impossible';

export interface OptionAssessment {
  id: string;
  label: string;
  strategy: Strategy;
  /** The option `--auto-remediate` applies, when it is also ready. */
  recommended: boolean;
  status: OptionStatus;
  /** What is missing for a `needs` option, e.g. ["sudo"] or ["pipx"]. */
  needs?: string[];
  /** Why an `impossible` option cannot work here. */
  reason?: string;
  /** The commands it runs, in order; `sudo` first where root is needed and upkeep is not root. */
  steps?: string[][];
  /** install-packages: the names for this platform's family. */
  packages?: string[];
  /** install-dependency: the catalog tool installed first. */
  dependency?: string;
  /** switch-method: the method tried instead. */
  method?: Method;
  /** retry-with-modifier: arguments added to the failed command. */
  args?: string[];
  /** retry-with-modifier, fix-environment: variables set for the retry. */
  env?: Record<string, string>;
  /** retry-with-modifier: seconds to wait before the retry. */
  wait?: number;
  instructions?: string;
}

export interface AssessmentContext {
  platform: Platform;
  groups: Groups;
  /** Whether the catalog has a tool with this id. */
  catalogHas(id: string): boolean;
  /** The method whose step failed. */
  method: Method;
}

export function assessOption(option: RemedyOption, context: AssessmentContext): OptionAssessment {
  const base: OptionAssessment = {
    id: option.id,
    label: option.label,
    strategy: option.strategy,
    recommended: option.recommended === true,
    status: 'ready',
    ...(option.instructions ? { instructions: option.instructions } : {}),
  };
  const { platform } = context;
  switch (option.strategy) {
    case 'install-packages':
      return assessPackages(base, option, context);
    case 'install-dependency': {
      const dependency = option.dependency ?? '';
      if (!context.catalogHas(dependency)) return { ...base, dependency, status: 'impossible', reason: `the catalog has no tool "${dependency}"` };
      return { ...base, dependency };
    }
    case 'switch-method': {
      const method = option.method;
      if (!method) return { ...base, status: 'impossible', reason: 'the option names no method' };
      if (method === context.method) return { ...base, method, status: 'impossible', reason: `${method} is the method that failed` };
      if (!platform.methods.includes(method)) return { ...base, method, status: 'needs', needs: [method] };
      return { ...base, method };
    }
    case 'cleanup-retry': {
      const cleanup = option.cleanup ?? [];
      if (!option.cleanupNeedsRoot) return { ...base, steps: cleanup.map((argv) => [...argv]) };
      const root = rootAccess(platform);
      const steps = cleanup.map((argv) => [...root.prefix, ...argv]);
      return root.needs ? { ...base, status: 'needs', needs: ['sudo'], steps } : { ...base, steps };
    }
    case 'retry-with-modifier': {
      const modifier = option.modifier ?? {};
      return {
        ...base,
        ...(modifier.args?.length ? { args: [...modifier.args] } : {}),
        ...(modifier.env ? { env: { ...modifier.env } } : {}),
        ...(modifier.wait !== undefined ? { wait: modifier.wait } : {}),
      };
    }
    case 'fix-environment':
      return { ...base, env: { ...option.env } };
    case 'retry':
      return base;
    case 'manual':
      // Ready means "can be shown": a manual option is never applied automatically.
      return base;
  }
}

function assessPackages(base: OptionAssessment, option: RemedyOption, context: AssessmentContext): OptionAssessment {
  const { platform } = context;
  const family = platform.family;
  if (!family) return { ...base, status: 'impossible', reason: `upkeep knows no package family for ${platform.distribution?.name ?? platform.rawOs}` };
  const packages = option.packages === undefined ? null : resolvePackages(option.packages, family, context.groups);
  if (!packages) {
    const what = typeof option.packages === 'string' ? `the group "${option.packages}" has` : 'the option names';
    return { ...base, status: 'impossible', reason: `${what} no packages for the ${family} family` };
  }
  const manager = familyManager(family, platform.methods);
  const needs: string[] = [];
  if (!platform.methods.includes(manager)) needs.push(manager);
  const argv = systemPackageInstall(manager, packages).argv;
  // Homebrew refuses to run as root, so it never gets sudo, and a root upkeep cannot use it.
  if (family === 'macos') {
    if (platform.privilege === 'root') return { ...base, packages, status: 'impossible', reason: 'Homebrew refuses to run as root' };
    return finish({ ...base, packages, steps: [argv] }, needs);
  }
  const root = rootAccess(platform);
  if (root.needs) needs.push('sudo');
  return finish({ ...base, packages, steps: [[...root.prefix, ...argv]] }, needs);
}

function finish(assessment: OptionAssessment, needs: string[]): OptionAssessment {
  return needs.length > 0 ? { ...assessment, status: 'needs', needs } : assessment;
}

/** How a command that needs root is run here: as is, through sudo, or not at all until sudo exists. */
function rootAccess(platform: Platform): { prefix: string[]; needs: boolean } {
  switch (platform.privilege) {
    case 'root':
      return { prefix: [], needs: false };
    case 'sudo-passwordless':
    case 'sudo-password':
      return { prefix: ['sudo'], needs: false };
    case 'none':
      return { prefix: ['sudo'], needs: true };
  }
}

/** The option `--auto-remediate` applies: the recommended one, only when it is ready and not manual. */
export function recommendedOption(match: { options: readonly OptionAssessment[] }): OptionAssessment | null {
  const option = match.options.find((candidate) => candidate.recommended);
  return option && option.status === 'ready' && option.strategy !== 'manual' ? option : null;
}
