import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ExitCode, UpkeepError } from '../../core/errors.ts';
import { Executor } from '../../core/exec.ts';
import { withLock, writeFileAtomic } from '../../core/fs.ts';
import { discoverPlugins, pluginDirectories, type DiscoveredPlugin } from '../../update/plugin/discover.ts';
import { PHASES } from '../../update/plugin/manifest.ts';
import { validatePlugin } from '../../update/plugin/validate.ts';
import type { Context } from '../context.ts';
import { colors, formatColumns } from '../output/colors.ts';
import type { Handler } from '../run.ts';
import { configFor } from './shared.ts';

type Register = <T>(handler: Handler<T>) => (...args: unknown[]) => Promise<void>;

export function registerPluginsCommands(program: Command, run: Register): void {
  const plugins = program
    .command('plugins')
    .summary('list, inspect, enable, disable and validate update plugins')
    .description(
      'Update plugins are executables that speak upkeep\'s plugin protocol (docs/plugin-protocol.md). They are found in the built-in plugins folder, then /etc/upkeep/plugins.d, then ~/.config/upkeep/plugins.d (a later manifest of the same name overrides an earlier one).',
    );
  plugins.command('list').summary('every plugin found, where from, and whether it is enabled').action(run(listHandler));
  plugins.command('info').summary("one plugin's manifest: mutexes, runs-after, timeouts, settings").argument('<name>', 'plugin name').action(run(infoHandler));
  plugins.command('enable').summary('enable a plugin (removes it from update.disabled in your config)').argument('<name>', 'plugin name').action(run(toggleHandler(true)));
  plugins.command('disable').summary('disable a plugin (adds it to update.disabled in your config)').argument('<name>', 'plugin name').action(run(toggleHandler(false)));
  plugins
    .command('validate')
    .summary('run a plugin through every protocol command and check each answer against the schemas')
    .argument('<path>', 'a plugin manifest (.yaml) or executable')
    .addHelpText('after', '\nIt never runs download, update, self-update or self-upgrade: validating changes nothing.\n')
    .action(run(validateHandler));
}

async function discoverAll(context: Context): Promise<{ plugins: DiscoveredPlugin[]; warnings: string[] }> {
  const { config } = await configFor(context);
  return discoverPlugins({ directories: pluginDirectories(context.paths, context.environment), disabled: config.update.disabled });
}

function findPlugin(plugins: DiscoveredPlugin[], name: string): DiscoveredPlugin {
  const found = plugins.find((plugin) => plugin.manifest.name === name);
  if (!found) {
    throw new UpkeepError('E_PLUGIN_UNKNOWN', `no update plugin is called ${name}`, {
      hint: `known plugins: ${plugins.map((plugin) => plugin.manifest.name).join(', ') || 'none'}`,
      exitCode: ExitCode.usage,
    });
  }
  return found;
}

const listHandler: Handler<Record<string, never>> = async (_options, context) => {
  const { plugins, warnings } = await discoverAll(context);
  const data = plugins.map((plugin) => ({
    name: plugin.manifest.name,
    version: plugin.manifest.version,
    description: plugin.manifest.description,
    enabled: plugin.enabled,
    layer: plugin.manifest.source.layer,
    manifest: plugin.manifest.source.path,
    overridden: plugin.overridden,
  }));
  return {
    exitCode: ExitCode.success,
    data: { plugins: data },
    warnings,
    human: (color) => {
      const c = colors(color);
      if (data.length === 0) return 'no update plugins found';
      return formatColumns([
        ['plugin', 'version', 'state', 'from', 'description'].map((title) => c.dim(title)),
        ...data.map((plugin) => [
          plugin.name,
          plugin.version,
          plugin.enabled ? c.green('enabled') : c.yellow('disabled'),
          plugin.layer + (plugin.overridden.length > 0 ? c.dim(' (overrides)') : ''),
          c.dim(plugin.description),
        ]),
      ]);
    },
  };
};

const infoHandler: Handler<Record<string, never>> = async (_options, context, operands) => {
  const { plugins, warnings } = await discoverAll(context);
  const plugin = findPlugin(plugins, operands[0]!);
  const manifest = plugin.manifest;
  return {
    exitCode: ExitCode.success,
    data: { ...manifest, enabled: plugin.enabled, overridden: plugin.overridden },
    warnings,
    human: (color) => {
      const c = colors(color);
      const list = (values: string[]): string => (values.length > 0 ? values.join(', ') : c.dim('none'));
      const rows = [
        ['name', `${manifest.name} ${manifest.version} ${plugin.enabled ? c.green('enabled') : c.yellow('disabled')}`],
        ['description', manifest.description],
        ['executable', manifest.executable],
        ['manifest', `${manifest.source.path} (${manifest.source.layer})`],
        ...plugin.overridden.map((path) => ['overrides', path]),
        ['requires sudo', manifest.requiresSudo ? 'yes' : 'no'],
        ['separate download', manifest.canSeparateDownload ? 'yes' : 'no'],
        ['dynamic mutexes', manifest.supportsDynamicMutexes ? 'yes (asked after estimate-update)' : 'no'],
        ...PHASES.flatMap((phase) => [
          [`${phase} holds`, list(manifest.mutexes[phase])],
          [`${phase} needs free`, list(manifest.dependencies[phase])],
        ]),
        ['runs after', list(manifest.runsAfter)],
        [
          'timeouts',
          `is-applicable ${manifest.timeouts.isApplicable} s, estimate ${manifest.timeouts.estimateUpdate} s, download ${manifest.timeouts.download} s, update ${manifest.timeouts.update} s`,
        ],
        ['settings', Object.entries(manifest.settings).map(([key, value]) => `${key}=${String(value)}`).join(', ') || c.dim('none')],
      ];
      return formatColumns(rows.map(([key, value]) => [c.dim(key!), value!]));
    },
  };
};

/** Edits update.disabled in the user's config file, keeping its comments and layout. */
function toggleHandler(enable: boolean): Handler<Record<string, never>> {
  return async (_options, context, operands) => {
    const name = operands[0]!;
    const { plugins } = await discoverAll(context);
    findPlugin(plugins, name);
    const path = join(context.paths.config, 'config.yaml');
    const changed = await withLock(path, async () => {
      const { parseDocument } = await import('../../core/yaml.ts');
      const text = await readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return '';
        throw error;
      });
      const document = parseDocument(text);
      if (document.errors.length > 0) {
        throw new UpkeepError('E_CONFIG_PARSE', `${path} is not valid YAML: ${document.errors[0]!.message}`, {
          hint: 'fix the file first; `upkeep config validate` checks it',
          exitCode: ExitCode.usage,
        });
      }
      const current = document.getIn(['update', 'disabled']) as { toJSON(): unknown } | undefined;
      const list = (current?.toJSON() as string[] | undefined) ?? [];
      const next = enable ? list.filter((entry) => entry !== name) : [...new Set([...list, name])];
      if (next.length === list.length && next.every((entry, index) => entry === list[index])) return false;
      document.setIn(['update', 'disabled'], next);
      await writeFileAtomic(path, String(document));
      return true;
    });
    // A disable in the system config or the environment is beyond this file.
    const { config } = await configFor(context);
    const stillDisabled = config.update.disabled.includes(name);
    const warnings = enable && stillDisabled ? [`${name} is still disabled by another layer; \`upkeep config show --origin\` shows which`] : [];
    return {
      exitCode: ExitCode.success,
      data: { plugin: name, enabled: !stillDisabled, changed, config: path },
      warnings,
      human: () => `${name} ${enable ? 'enabled' : 'disabled'}${changed ? ` (${path})` : ' (no change)'}`,
    };
  };
}

const validateHandler: Handler<Record<string, never>> = async (_options, context, operands) => {
  const path = resolve(context.cwd, operands[0]!);
  const tempDir = await mkdtemp(join(tmpdir(), 'upkeep-validate-'));
  try {
    const report = await validatePlugin(path, { executor: new Executor({ env: context.environment, logger: context.logger }), environment: context.environment, tempDir });
    return {
      exitCode: report.ok ? ExitCode.success : ExitCode.failure,
      data: report,
      warnings: report.warnings,
      human: (color) => {
        const c = colors(color);
        const lines = [
          formatColumns(
            report.commands.map((check) => [
              check.ok ? c.green('✓') : c.red('✗'),
              check.command,
              c.dim(`exit ${check.exitCode ?? '-'}, ${check.answer}`),
              check.problem ? c.red(check.problem) : '',
            ]),
          ),
        ];
        for (const problem of report.problems) lines.push(c.red(`problem: ${problem}`));
        lines.push(report.ok ? c.green(`${path} follows the plugin protocol`) : c.red(`${path} does not follow the plugin protocol`));
        return lines.join('\n');
      },
    };
  } finally {
    await rm(tempDir, { recursive: true, force: true });
  }
};
