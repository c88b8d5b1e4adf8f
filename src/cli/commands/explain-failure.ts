import { Option, type Command } from 'commander';
import { findCatalogRoot } from '../../catalog/loader.ts';
import { loadGroups, loadHandlers } from '../../catalog/handlers.ts';
import { METHODS, type Method } from '../../catalog/schema.ts';
import { ExitCode, UpkeepError } from '../../core/errors.ts';
import { Executor } from '../../core/exec.ts';
import { detectPlatform } from '../../install/platform.ts';
import { matchFailure } from '../../install/remediation/match.ts';
import { renderMatches } from '../output/install.ts';
import type { Handler } from '../run.ts';
import { catalogFor, configFor } from './shared.ts';

/**
 * `upkeep explain-failure`: the failure handlers for an error a user got
 * elsewhere. It prints exactly what `upkeep install` prints after a failed
 * step, assessed for this machine.
 */
export function registerExplainFailureCommand(program: Command, run: <T>(handler: Handler<T>) => (...args: unknown[]) => Promise<void>): void {
  program
    .command('explain-failure')
    .summary("read a failed install's output on stdin and print the matching fixes")
    .addOption(new Option('--method <method>', 'the install method that failed').choices([...METHODS]).makeOptionMandatory())
    .option('--tool <tool>', 'the tool being installed (its own handlers come first)')
    .option('--exit-code <code>', 'the exit code of the failed command')
    .addHelpText('after', '\nExample:\n  apt-get install foo 2>&1 | upkeep explain-failure --method apt --exit-code 100\n')
    .action(run(explainHandler));
}

const explainHandler: Handler<{ method: Method; tool?: string; exitCode?: string }> = async (options, context) => {
  let exitCode: number | null = null;
  if (options.exitCode !== undefined) {
    if (!/^-?\d{1,3}$/.test(options.exitCode)) {
      throw new UpkeepError('E_USAGE', `--exit-code ${options.exitCode} is not a number`, { hint: 'pass the exit code, e.g. --exit-code 100', exitCode: ExitCode.usage });
    }
    exitCode = Number(options.exitCode);
  }
  const output = await context.readStdin();
  if (!output.trim()) {
    throw new UpkeepError('E_USAGE', 'no failure output on stdin', {
      hint: 'pipe the output in, e.g. `apt-get install foo 2>&1 | upkeep explain-failure --method apt`',
      exitCode: ExitCode.usage,
    });
  }
  const root = findCatalogRoot(context.environment);
  const [catalog, loaded, groups, { config }] = await Promise.all([catalogFor(context), loadHandlers(root), loadGroups(root), configFor(context)]);
  if (options.tool && !catalog.byId.has(options.tool)) {
    throw new UpkeepError('E_UNKNOWN_TOOL', `unknown tool: ${options.tool}`, { hint: '`upkeep catalog list` shows every tool', exitCode: ExitCode.usage });
  }
  const platform = await detectPlatform({
    environment: context.environment,
    config: config.install,
    executor: new Executor({ env: context.environment, logger: context.logger }),
    ...(context.uid === undefined ? {} : { uid: context.uid }),
    ...(context.environment.UPKEEP_OS_RELEASE ? { osRelease: context.environment.UPKEEP_OS_RELEASE } : {}),
  });
  const matches = matchFailure(
    loaded.handlers,
    { method: options.method, ...(options.tool ? { tool: options.tool } : {}), exitCode, output },
    { platform, groups: groups.groups, catalogHas: (id) => catalog.byId.has(id) },
  ).map(({ handler: _handler, ...match }) => match);
  return {
    // Nothing recognised is not an error of the command, but scripts may want to know.
    exitCode: matches.length > 0 ? ExitCode.success : ExitCode.failure,
    data: { method: options.method, tool: options.tool ?? null, exitCode, matches },
    warnings: loaded.problems.map((problem) => `catalog ${problem.file}: ${problem.message}`),
    human: (color) => renderMatches(matches, color).join('\n'),
  };
};
