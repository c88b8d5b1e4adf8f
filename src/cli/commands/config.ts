import type { Command } from 'commander';
import { configFilePaths, configKeys, describeOrigin, environmentVariableFor, loadConfig, valueAt } from '../../core/config.ts';
import { ExitCode, isUpkeepError } from '../../core/errors.ts';
import { colors, formatColumns } from '../output/colors.ts';
import type { Handler } from '../run.ts';
import { configFor } from './shared.ts';

export function registerConfigCommands(program: Command, run: <T>(handler: Handler<T>) => (...args: unknown[]) => Promise<void>): void {
  const config = program.command('config').summary('show and check the layered configuration');
  config
    .command('show')
    .summary('print the merged configuration')
    .option('--origin', 'say where each value comes from (default, file, environment, flag)')
    .action(run(showHandler));
  config
    .command('validate')
    .summary('check every configuration file and UPKEEP_* variable; exits 2 on the first error')
    .action(run(validateHandler));
  config.command('paths').summary('print the folders and files upkeep uses').action(run(pathsHandler));
}

const showHandler: Handler<{ origin?: boolean }> = async (options, context) => {
  const loaded = await configFor(context);
  const entries = configKeys().map(({ key }) => {
    const origin = loaded.origins.get(key) ?? { kind: 'default' as const };
    return { key, value: valueAt(loaded.config, key), origin: describeOrigin(origin), environmentVariable: environmentVariableFor(key) };
  });
  return {
    exitCode: ExitCode.success,
    data: options.origin ? { config: loaded.config, origins: entries, files: loaded.files } : loaded.config,
    human: (color) => {
      const c = colors(color);
      const rows = entries.map((entry) => {
        const row = [entry.key, entry.value === undefined ? c.dim('(automatic)') : JSON.stringify(entry.value)];
        if (options.origin) row.push(c.dim(entry.origin));
        return row;
      });
      return formatColumns(rows);
    },
  };
};

const validateHandler: Handler<Record<string, never>> = async (_options, context) => {
  try {
    const loaded = await loadConfig({ paths: context.paths, environment: context.environment, cwd: context.cwd });
    return {
      exitCode: ExitCode.success,
      data: { valid: true, files: loaded.files },
      human: (color) =>
        `${colors(color).green('ok')}: ${loaded.files.length === 0 ? 'no configuration files; defaults apply' : loaded.files.map((file) => `${file.layer} ${file.path}`).join(', ')}`,
    };
  } catch (error) {
    if (!isUpkeepError(error)) throw error;
    return {
      exitCode: ExitCode.usage,
      data: { valid: false, error: error.toJSON() },
      human: (color) => `${colors(color).red('invalid')}: ${error.message}${error.hint ? `\nhint: ${error.hint}` : ''}`,
    };
  }
};

const pathsHandler: Handler<Record<string, never>> = async (_options, context) => {
  const files = configFilePaths({ paths: context.paths, environment: context.environment, cwd: context.cwd });
  const data = { ...context.paths, configFiles: files.map((file) => file.path), projectFile: '.upkeep.yaml (nearest from the working folder up)' };
  return {
    exitCode: ExitCode.success,
    data,
    human: () => formatColumns(Object.entries(data).map(([key, value]) => [key, Array.isArray(value) ? value.join(', ') : value])),
  };
};
