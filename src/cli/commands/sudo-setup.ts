import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { ExitCode, UpkeepError } from '../../core/errors.ts';
import { Executor } from '../../core/exec.ts';
import { discoverPlugins, pluginDirectories } from '../../update/plugin/discover.ts';
import { PLUGIN_NAME_PATTERN, type PluginManifest } from '../../update/plugin/manifest.ts';
import {
  APT_KEPT_ENVIRONMENT,
  checkSudoersText,
  findVisudo,
  installSudoersFiles,
  isAptLike,
  programPathProblem,
  querySudoPrograms,
  removeSudoersFiles,
  renderSudoersFile,
  sudoersDirectory,
  sudoersFileName,
  targetUser,
  unsafePathsError,
  userExists,
  userNameProblem,
  visudoMissing,
  type SudoQuery,
} from '../../update/sudo.ts';
import type { CommandResult, Context } from '../context.ts';
import { colors, formatColumns } from '../output/colors.ts';
import type { Handler } from '../run.ts';
import { configFor } from './shared.ts';
import { selectPlugins } from './update.ts';

type Register = <T>(handler: Handler<T>) => (...args: unknown[]) => Promise<void>;

interface SudoSetupOptions {
  plugin?: string;
  print?: boolean;
  remove?: boolean;
  user?: string;
}

export function registerSudoSetupCommands(program: Command, run: Register): void {
  program
    .command('sudo-setup')
    .summary('let the update plugins that need root run their programs through sudo without a password')
    .description(
      [
        'For each enabled update plugin that needs root (apt, dnf, pacman, ...), writes /etc/sudoers.d/upkeep-<plugin>:',
        'the target user may run exactly the programs the plugin lists (sudo-programs-paths) as root, without a password,',
        'so that `upkeep update run` works unattended (on a timer, over ssh). A program is refused unless it is an',
        'absolute path to an executable that only root can change (the file and every folder above it). Every file is',
        'checked with visudo before it is installed, with mode 0440. Installing and removing need root; --print does not.',
        'docs/sudo.md has the details.',
      ].join(' '),
    )
    .option('--plugin <name>', 'only this plugin (named, it is set up even when it answers that it needs no root as the user running this)')
    .addOption(new Option('--print', 'print the sudoers entries and install nothing (needs no root)').conflicts('remove'))
    .option('--remove', "delete upkeep's sudoers files (all, or --plugin's); files without upkeep's header are left alone")
    .option('--user <name>', 'the user the rules are for (default: SUDO_USER, the user who ran sudo, else the user running upkeep)')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  upkeep sudo-setup --print                 # see what would be installed',
        '  sudo upkeep sudo-setup                    # install the rules for you (SUDO_USER)',
        '  sudo upkeep sudo-setup --plugin apt --user deploy',
        '  sudo upkeep sudo-setup --remove           # undo',
        '',
        'UPKEEP_SUDOERS_DIR replaces /etc/sudoers.d (for tests, and for packagers building an image).',
        '',
      ].join('\n'),
    )
    .action(run(sudoSetupHandler));
}

const sudoSetupHandler: Handler<SudoSetupOptions> = async (options, context) => {
  if (options.plugin !== undefined && !PLUGIN_NAME_PATTERN.test(options.plugin)) {
    throw new UpkeepError('E_INVALID_NAME', `${JSON.stringify(options.plugin)} is not a plugin name`, {
      hint: 'plugin names are lower-case letters, digits and "-"; `upkeep plugins list` shows them',
      exitCode: ExitCode.usage,
    });
  }
  // Checked before anything runs: a setup that fails at the end, after asking every plugin, wastes the user's time.
  if (!options.print && context.uid !== 0) throw needsRoot(options);
  const directory = sudoersDirectory(context.environment);
  if (options.remove) return removeHandler(directory, options.plugin);
  return setup(options, context, directory);
};

function needsRoot(options: SudoSetupOptions): UpkeepError {
  const flags = [
    ...(options.plugin ? ['--plugin', options.plugin] : []),
    ...(options.user ? ['--user', options.user] : []),
    ...(options.remove ? ['--remove'] : []),
  ];
  const what = options.remove ? 'removing sudoers files' : 'installing sudoers files';
  return new UpkeepError('E_NEEDS_ROOT', `${what} needs root: only root may write to the sudoers folder`, {
    hint: `run it with sudo: \`sudo upkeep sudo-setup${flags.map((flag) => ` ${flag}`).join('')}\`${options.remove ? '' : '; `upkeep sudo-setup --print` shows the entries without root'}`,
  });
}

// ---- --remove -------------------------------------------------------------------------------

async function removeHandler(directory: string, plugin: string | undefined): Promise<CommandResult> {
  const outcome = await removeSudoersFiles(directory, plugin);
  const warnings = outcome.kept.map((path) => `left ${path} alone: upkeep did not write it (it lacks upkeep's header)`);
  return {
    exitCode: ExitCode.success,
    data: { action: 'remove', directory, ...outcome },
    warnings,
    human: (color) => {
      const c = colors(color);
      if (outcome.removed.length === 0) return `no sudoers file of upkeep${plugin ? ` for ${plugin}` : ''} in ${directory}`;
      return outcome.removed.map((path) => `${c.green('removed')}  ${path}`).join('\n');
    },
  };
}

// ---- setup and --print ----------------------------------------------------------------------

type RowStatus = 'installed' | 'unchanged' | 'printed' | 'not-needed' | 'no-programs' | 'foreign' | 'failed';

interface Row {
  plugin: string;
  status: RowStatus;
  paths: string[];
  /** Where the file is, or would be. */
  file: string;
  /** The file's text (installed, unchanged, printed). */
  entry?: string;
  reason?: string;
  error?: Record<string, unknown>;
}

const DONE: readonly RowStatus[] = ['installed', 'unchanged', 'printed'];

async function setup(options: SudoSetupOptions, context: Context, directory: string): Promise<CommandResult> {
  const warnings: string[] = [];
  const print = options.print ?? false;
  const user = await chooseUser(options, context, print, warnings);
  const visudo = await findVisudo(context.environment);
  if (!visudo) {
    if (!print) throw visudoMissing();
    warnings.push('visudo is not installed: these entries were not checked (install sudo to check them)');
  }

  const { config } = await configFor(context);
  const discovery = await discoverPlugins({ directories: pluginDirectories(context.paths, context.environment), disabled: config.update.disabled });
  warnings.push(...discovery.warnings);
  const manifests = selectPlugins(discovery, options.plugin ? [options.plugin] : undefined, warnings);

  const executor = new Executor({ env: context.environment, logger: context.logger });
  const runRoot = await mkdtemp(join(tmpdir(), 'upkeep-sudo-setup-'));
  let queries: { manifest: PluginManifest; query: SudoQuery }[];
  try {
    // Plugins answer these queries in a blink; asking them all at once keeps the command quick.
    queries = await Promise.all(
      manifests.map(async (manifest) => ({
        manifest,
        query: await querySudoPrograms(manifest, {
          executor,
          environment: context.environment,
          runDir: join(runRoot, manifest.name),
          named: options.plugin !== undefined,
        }),
      })),
    );
  } finally {
    await rm(runRoot, { recursive: true, force: true });
  }

  const rows: Row[] = [];
  const unsafe: { plugin: string; path: string; problem: string }[] = [];
  const files: { plugin: string; text: string }[] = [];
  for (const { manifest, query } of queries) {
    const file = join(directory, sudoersFileName(manifest.name));
    const row: Row = { plugin: manifest.name, status: 'not-needed', paths: [], file };
    rows.push(row);
    switch (query.status) {
      case 'not-needed':
        row.reason = 'needs no root here';
        break;
      case 'failed':
        row.status = 'failed';
        row.reason = query.error.message;
        row.error = query.error.toJSON();
        warnings.push(`${query.error.message}; no sudoers entry for ${manifest.name}`);
        break;
      case 'unsafe':
        unsafe.push(...query.paths.map((entry) => ({ plugin: manifest.name, ...entry })));
        break;
      case 'needed': {
        row.paths = query.paths;
        if (!query.requiresSudo) {
          warnings.push(
            `${manifest.name} answers that it needs no root when ${context.uid === 0 ? 'root' : 'this user'} asks; set up because --plugin names it (npm and gem decide by whether the user can write their folders)`,
          );
        }
        if (query.paths.length === 0) {
          row.status = 'no-programs';
          row.reason = 'lists no program (its package manager is probably not installed here)';
          break;
        }
        for (const path of query.paths) {
          const problem = await programPathProblem(path);
          if (problem) unsafe.push({ plugin: manifest.name, path, problem });
        }
        row.entry = renderSudoersFile({
          plugin: manifest.name,
          user,
          paths: query.paths,
          keepEnvironment: isAptLike(manifest, query.paths) ? [...APT_KEPT_ENVIRONMENT] : [],
        });
        files.push({ plugin: manifest.name, text: row.entry });
        break;
      }
    }
  }
  // One unsafe program refuses the whole setup: it needs a person's attention before anything is granted.
  if (unsafe.length > 0) throw unsafePathsError(unsafe);

  if (print) {
    if (visudo) for (const { plugin, text } of files) await checkSudoersText(text, plugin, { executor, visudo });
    for (const row of rows) if (row.entry) row.status = 'printed';
  } else if (files.length > 0) {
    const outcomes = await installSudoersFiles(directory, files, { executor, visudo: visudo! });
    for (const outcome of outcomes) {
      const row = rows.find((candidate) => candidate.plugin === outcome.plugin)!;
      row.status = outcome.status;
      if (outcome.status === 'foreign') {
        row.reason = `${outcome.file} exists and upkeep did not write it`;
        delete row.entry;
        warnings.push(`left ${outcome.file} alone: it exists without upkeep's header; move it away and run again to let upkeep manage it`);
      }
    }
  }

  const done = rows.filter((row) => DONE.includes(row.status));
  const problems = rows.filter((row) => row.status === 'failed' || row.status === 'foreign');
  const exitCode = problems.length === 0 ? ExitCode.success : done.length > 0 ? ExitCode.partial : ExitCode.failure;
  return {
    exitCode,
    data: { action: print ? 'print' : 'install', user, directory, visudo, plugins: rows },
    warnings,
    human: (color) => (print ? renderPrint(rows) : renderInstall(rows, user, color)),
  };
}

/** --user, SUDO_USER, USER or LOGNAME: a plain name, not root, known to this machine. */
async function chooseUser(options: SudoSetupOptions, context: Context, print: boolean, warnings: string[]): Promise<string> {
  const user = targetUser(options.user, context.environment);
  if (!user) {
    throw new UpkeepError('E_USAGE', 'cannot tell which user the rules are for: SUDO_USER, USER and LOGNAME are all unset', {
      hint: 'pass --user NAME',
      exitCode: ExitCode.usage,
    });
  }
  const problem = userNameProblem(user);
  if (problem) {
    throw new UpkeepError('E_INVALID_NAME', `the user name ${JSON.stringify(user)} ${problem}`, {
      hint: 'pass the plain login name with --user; for other names write the sudoers rule by hand (docs/sudo.md)',
      exitCode: ExitCode.usage,
    });
  }
  if (user === 'root') {
    throw new UpkeepError('E_USAGE', 'the rules would be for root, which runs every program without sudo', {
      hint: 'name the user who runs `upkeep update` with --user NAME, or run `sudo upkeep sudo-setup` from that user\'s account',
      exitCode: ExitCode.usage,
    });
  }
  const exists = await userExists(user, { executor: new Executor({ env: context.environment, logger: context.logger }), environment: context.environment });
  if (exists === null) warnings.push(`getent is not installed: could not check that the user ${user} exists`);
  if (exists === false) {
    if (print) warnings.push(`there is no user ${user} on this machine; the rules would apply once one exists`);
    else {
      throw new UpkeepError('E_USAGE', `there is no user ${user} on this machine`, {
        hint: 'check the name (`getent passwd NAME`) and pass it with --user',
        exitCode: ExitCode.usage,
      });
    }
  }
  return user;
}

/** The files' text, each under a comment naming where it goes: the output can be reviewed, or pasted into visudo. */
function renderPrint(rows: Row[]): string {
  const entries = rows.filter((row) => row.entry);
  if (entries.length === 0) return '# no enabled update plugin needs root: nothing to set up';
  return entries.map((row) => `# ---- ${row.file}\n${row.entry!.trimEnd()}`).join('\n\n');
}

function renderInstall(rows: Row[], user: string, color: boolean): string {
  const c = colors(color);
  // System managers of other distributions (dnf on Debian) list no program: one line for all of them.
  const absent = rows.filter((row) => row.status === 'no-programs').map((row) => row.plugin);
  const shown = rows.filter((row) => row.status !== 'not-needed' && row.status !== 'no-programs');
  const footnote = absent.length > 0 ? c.dim(`${absent.join(', ')}: need root, but list no program here (not installed)`) : '';
  if (shown.length === 0) return [footnote, 'no enabled update plugin needs root here: nothing to set up'].filter(Boolean).join('\n');
  const mark: Record<RowStatus, string> = {
    installed: c.green('installed'),
    unchanged: c.dim('unchanged'),
    printed: 'printed',
    'not-needed': c.dim('not needed'),
    'no-programs': c.dim('nothing'),
    foreign: c.yellow('left alone'),
    failed: c.red('failed'),
  };
  const table = formatColumns(
    shown.map((row) => [row.plugin, mark[row.status], DONE.includes(row.status) ? `${row.file}  ${c.dim(row.paths.join(', '))}` : c.dim(row.reason ?? '')]),
  );
  const granted = shown.filter((row) => row.status === 'installed' || row.status === 'unchanged');
  const closing = granted.length > 0 ? `${user} may now run these programs as root without a password. Undo: sudo upkeep sudo-setup --remove` : '';
  return [table, footnote, closing].filter(Boolean).join('\n');
}
