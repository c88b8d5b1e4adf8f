import { homedir } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import { Command, CommanderError, Option } from 'commander';
import { ExitCode, UpkeepError, isUpkeepError } from '../core/errors.ts';
import { createLogger, silentLogger, type Logger } from '../core/log.ts';
import { resolvePaths, type Environment } from '../core/paths.ts';
import { registerAuditCommand } from './commands/audit.ts';
import { registerCatalogCommands } from './commands/catalog.ts';
import { registerConfigCommands } from './commands/config.ts';
import { registerExplainFailureCommand } from './commands/explain-failure.ts';
import { registerInstallCommands } from './commands/install.ts';
import { registerPlatformCommand } from './commands/platform.ts';
import { registerPluginsCommands } from './commands/plugins.ts';
import { registerRemoteCommands } from './commands/remote.ts';
import { registerScheduleCommands } from './commands/schedule.ts';
import { registerSudoSetupCommands } from './commands/sudo-setup.ts';
import { registerUpdateCommands } from './commands/update.ts';
import type { CommandResult, Context } from './context.ts';
import { renderError, renderWarning } from './output/errors.ts';
import { upkeepVersion } from './version.ts';

export interface CliIo {
  environment: Environment;
  cwd: string;
  stdout: Writable;
  stderr: Writable;
  stdoutIsTTY: boolean;
  stderrIsTTY: boolean;
  stdin?: Readable;
  stdinIsTTY?: boolean;
  uid?: number;
  pid?: number;
  /** The argv that runs this upkeep again. */
  selfCommand?: string[];
  /** Subscribes to Ctrl-C and SIGTERM while a long command runs; returns the unsubscribe function. */
  onInterrupt?: (listener: () => void) => () => void;
}

export interface GlobalOptions {
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  logFile?: string;
  color?: boolean;
}

export type Handler<Options> = (options: Options, context: Context, operands: string[]) => Promise<CommandResult>;

/** Builds the context once the global options are known. */
async function createContext(io: CliIo, globals: GlobalOptions): Promise<Context> {
  const json = globals.json ?? false;
  const color =
    globals.color !== false && !io.environment.NO_COLOR && io.environment.TERM !== 'dumb' && (io.stdoutIsTTY || io.environment.FORCE_COLOR !== undefined);
  let logger: Logger = silentLogger;
  if (globals.verbose || globals.logFile) {
    logger = await createLogger({ verbose: globals.verbose ?? false, logFile: globals.logFile, stderr: io.stderr });
  }
  return {
    environment: io.environment,
    cwd: io.cwd,
    home: io.environment.HOME || homedir(),
    stdout: io.stdout,
    stderr: io.stderr,
    stderrIsTTY: io.stderrIsTTY,
    color,
    json,
    quiet: globals.quiet ?? false,
    verbose: globals.verbose ?? false,
    paths: resolvePaths(io.environment),
    logger,
    now: () => new Date(),
    uid: io.uid,
    pid: io.pid ?? 0,
    selfCommand: io.selfCommand ?? null,
    onInterrupt: io.onInterrupt ?? (() => () => undefined),
    confirm: io.stdinIsTTY && io.stderrIsTTY && io.stdin && !isCi(io.environment) ? (question) => ask(io, question) : null,
    readStdin: async () => {
      if (!io.stdin || io.stdinIsTTY) return '';
      const chunks: Buffer[] = [];
      for await (const chunk of io.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}

function isCi(environment: Environment): boolean {
  return Boolean(environment.CI && environment.CI !== 'false' && environment.CI !== '0');
}

/** One line from the terminal: y or yes is yes, anything else no. */
async function ask(io: CliIo, question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises');
  const terminal = createInterface({ input: io.stdin!, output: io.stderr });
  try {
    return /^y(es)?$/i.test((await terminal.question(`${question} [y/N] `)).trim());
  } finally {
    terminal.close();
  }
}

/**
 * Runs one invocation and returns its exit code. Everything it needs comes
 * in `io`, so tests run it in-process; only main.ts binds it to `process`.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  let exitCode: ExitCode = ExitCode.success;
  let globals: GlobalOptions = {};
  let context: Context | undefined;

  const run = <Options>(handler: Handler<Options>) =>
    async (...args: unknown[]): Promise<void> => {
      const command = args.at(-1) as Command;
      globals = command.optsWithGlobals<GlobalOptions>();
      context = await createContext(io, globals);
      const options = command.opts() as Options;
      const result = await handler(options, context, command.args);
      if (!context.quiet) for (const warning of result.warnings ?? []) io.stderr.write(renderWarning(warning, context.color));
      if (context.json) {
        if (!result.streamed) io.stdout.write(`${JSON.stringify(result.data, null, 2)}\n`);
      } else {
        const text = result.human(context.color);
        if (text) io.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
      }
      exitCode = result.exitCode;
    };

  const program = new Command('upkeep')
    .description('Keeps a developer machine\'s tools present, correct and current.')
    // Only -V at the program level: `install --version V` must reach the subcommand.
    // `upkeep --version` (as the first word) is answered before parsing.
    .version(upkeepVersion, '-V', 'print the version of upkeep (also --version)')
    .option('--json', 'print machine-readable JSON on stdout')
    .option('-q, --quiet', 'print only the result, no warnings or progress')
    .option('-v, --verbose', 'print debug lines on stderr, and stacks for internal errors')
    .option('--log-file <path>', 'append JSON-lines logs to this file')
    .addOption(new Option('--no-color', 'never colour the output (NO_COLOR is honoured too)'))
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
      // Usage errors are printed by the catch below, in the house format.
      outputError: () => undefined,
    });

  registerAuditCommand(program, run);
  registerCatalogCommands(program, run);
  registerConfigCommands(program, run);
  registerInstallCommands(program, run);
  registerExplainFailureCommand(program, run);
  registerPlatformCommand(program, run);
  registerUpdateCommands(program, run);
  registerPluginsCommands(program, run);
  registerRemoteCommands(program, run);
  registerScheduleCommands(program, run);
  registerSudoSetupCommands(program, run);

  if (argv[0] === '--version') {
    io.stdout.write(`${upkeepVersion}\n`);
    return ExitCode.success;
  }
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') {
        return ExitCode.success;
      }
      const usage = new UpkeepError('E_USAGE', error.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' '), {
        hint: 'run `upkeep --help` or `upkeep <command> --help` for usage',
        exitCode: ExitCode.usage,
      });
      io.stderr.write(renderError(usage, { json: false, color: false, verbose: false }));
      return ExitCode.usage;
    }
    const json = globals.json ?? argv.includes('--json');
    const rendered = renderError(error, { json, color: context?.color ?? false, verbose: globals.verbose ?? false });
    (json ? io.stdout : io.stderr).write(rendered);
    context?.logger.error('command failed', { error: error instanceof Error ? error.message : String(error) });
    exitCode = isUpkeepError(error) ? error.exitCode : ExitCode.failure;
  } finally {
    context?.logger.flush();
  }
  return exitCode;
}
