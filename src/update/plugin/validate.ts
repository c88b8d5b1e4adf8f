import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { ExitCode, UpkeepError } from '../../core/errors.ts';
import type { Executor } from '../../core/exec.ts';
import type { Environment } from '../../core/paths.ts';
import { executableProblem } from './discover.ts';
import { manifestFromExecutable, parseManifest } from './manifest.ts';
import type { PluginManifest } from './manifest.ts';
import { PLUGIN_COMMANDS, UPKEEP_FAILURE_CODES } from './protocol.ts';
import type { AnswerKind, CommandFacts, PluginAnswer, PluginCommand } from './protocol.ts';
import { invokePlugin } from './run.ts';

/**
 * `upkeep plugins validate PATH`: runs a plugin through every command that
 * changes nothing and checks each answer against the protocol and the
 * manifest. The actions (download, update, self-update, self-upgrade) are
 * never run, because validating must not change the machine; instead an
 * unknown command is sent, which a plugin must refuse with exit 64.
 */

/** The order commands are asked in: version first, so a plugin that cannot even say that is obvious. */
export const VALIDATED_COMMANDS = [
  'version',
  'is-applicable',
  'estimate-update',
  'can-separate-download',
  'does-require-sudo',
  'sudo-programs-paths',
  'estimate-update-mutexes',
  'download-mutexes',
  'update-mutexes',
  'estimate-update-dependency',
  'download-dependency',
  'update-dependency',
  'runs-after',
  'validate',
] as const satisfies readonly PluginCommand[];
export const PROBE_COMMAND = 'upkeep-protocol-probe';

export interface CommandCheck {
  command: string;
  /** The answer follows the protocol (and the command is implemented where it must be). */
  ok: boolean;
  exitCode: number | null;
  answer: AnswerKind;
  problem?: string;
}

export interface ValidationReport {
  path: string;
  /** null when the manifest itself is invalid. */
  manifest: PluginManifest | null;
  ok: boolean;
  commands: CommandCheck[];
  /** What makes `ok` false. */
  problems: string[];
  /** Worth knowing, not wrong: a plugin error such as a network failure, an answer that differs from the manifest where it may. */
  warnings: string[];
}

export interface ValidateOptions {
  executor: Executor;
  environment: Environment;
  /** Where the temporary run folder is made. */
  tempDir: string;
}

export async function validatePlugin(path: string, options: ValidateOptions): Promise<ValidationReport> {
  const report: ValidationReport = { path, manifest: null, ok: false, commands: [], problems: [], warnings: [] };
  const fromManifest = ['.yaml', '.yml'].includes(extname(path));
  let manifest: PluginManifest;
  if (fromManifest) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw new UpkeepError('E_PLUGIN_INVALID', `cannot read ${path}: ${(error as Error).message}`, {
        hint: 'give the path of a plugin manifest (.yaml) or of a plugin executable',
        exitCode: ExitCode.usage,
      });
    }
    try {
      manifest = parseManifest(text, path, 'user');
    } catch (error) {
      if (!(error instanceof UpkeepError)) throw error;
      report.problems.push(error.message);
      return report;
    }
  } else {
    manifest = manifestFromExecutable(path);
  }
  report.manifest = manifest;
  const unusable = await executableProblem(manifest.executable);
  if (unusable) {
    if (!fromManifest) {
      throw new UpkeepError('E_PLUGIN_INVALID', unusable, {
        hint: 'give the path of a plugin manifest (.yaml) or of a plugin executable',
        exitCode: ExitCode.usage,
      });
    }
    report.problems.push(unusable);
    return report;
  }

  const runDir = await mkdtemp(join(options.tempDir, `upkeep-validate-${manifest.name}-`));
  const answers = new Map<string, PluginAnswer>();
  try {
    for (const command of VALIDATED_COMMANDS) {
      const { answer, result } = await invokePlugin(manifest, command, { executor: options.executor, environment: options.environment, runDir });
      answers.set(command, answer);
      report.commands.push(checkAnswer(manifest, command, answer, result.exitCode, report.warnings));
    }
    const { answer, result } = await invokePlugin(manifest, PROBE_COMMAND, { executor: options.executor, environment: options.environment, runDir });
    const probe: CommandCheck = { command: PROBE_COMMAND, ok: answer.kind === 'not-implemented', exitCode: result.exitCode, answer: answer.kind };
    if (!probe.ok) {
      const got = answer.kind === 'failed' ? withoutCommand(PROBE_COMMAND, answer.error.message) : `the answer ${answer.kind}`;
      probe.problem = `an unknown command must be answered with exit code 64 and error code UNKNOWN_COMMAND; got exit code ${result.exitCode}: ${got}`;
    }
    report.commands.push(probe);
  } finally {
    await rm(runDir, { recursive: true, force: true });
  }
  for (const check of report.commands) {
    if (check.problem) report.problems.push(`${check.command}: ${check.problem}`);
  }
  compareWithManifest(manifest, answers, fromManifest, report);
  report.ok = report.problems.length === 0;
  return report;
}

function checkAnswer(manifest: PluginManifest, command: PluginCommand, answer: PluginAnswer, exitCode: number | null, warnings: string[]): CommandCheck {
  const check = { command, exitCode, answer: answer.kind };
  if (answer.kind === 'failed') {
    if (answer.timedOut || (UPKEEP_FAILURE_CODES as readonly string[]).includes(answer.error.code)) return { ...check, ok: false, problem: withoutCommand(command, answer.error.message) };
    // A plugin's own error (the network is down) follows the protocol; it is worth a look, not a failure.
    warnings.push(`${command} answered with error ${answer.error.code}: ${answer.error.message}`);
    return { ...check, ok: true };
  }
  if (answer.kind === 'not-implemented' && mustImplement(manifest, command)) {
    const facts: CommandFacts = PLUGIN_COMMANDS[command];
    const why = facts.condition ? `the manifest sets ${facts.condition}: true` : 'every plugin must implement it';
    return { ...check, ok: false, problem: `not implemented (exit 64), but ${why}` };
  }
  return { ...check, ok: true };
}

/** Protocol failures name their command; the report names it once. */
function withoutCommand(command: string, message: string): string {
  return message.startsWith(`${command}: `) ? message.slice(command.length + 2) : message;
}

function mustImplement(manifest: PluginManifest, command: PluginCommand): boolean {
  const facts: CommandFacts = PLUGIN_COMMANDS[command];
  if (facts.requirement === 'required') return true;
  if (facts.requirement === 'optional' || !facts.condition) return false;
  const conditions: Record<NonNullable<CommandFacts['condition']>, boolean> = {
    can_separate_download: manifest.canSeparateDownload,
    requires_sudo: manifest.requiresSudo,
    supports_dynamic_mutexes: manifest.supportsDynamicMutexes,
  };
  return conditions[facts.condition];
}

/** Where the manifest and the plugin's own answers disagree. */
function compareWithManifest(manifest: PluginManifest, answers: Map<string, PluginAnswer>, fromManifest: boolean, report: ValidationReport): void {
  const separate = answers.get('can-separate-download');
  if (manifest.canSeparateDownload && separate?.kind === 'no') {
    report.problems.push('the manifest sets can_separate_download: true, but can-separate-download answers no');
  }
  if (!manifest.canSeparateDownload && separate?.kind === 'success') {
    report.warnings.push('can-separate-download answers yes, but the manifest sets can_separate_download: false, so upkeep never runs download on its own');
  }
  const sudo = answers.get('does-require-sudo');
  if (sudo && (sudo.kind === 'success' || sudo.kind === 'no') && (sudo.kind === 'success') !== manifest.requiresSudo) {
    report.warnings.push(`does-require-sudo answers ${sudo.kind === 'success' ? 'yes' : 'no'} here, but the manifest sets requires_sudo: ${manifest.requiresSudo}`);
  }
  const paths = answers.get('sudo-programs-paths');
  if (manifest.requiresSudo && paths?.kind === 'success' && (paths.data as { paths: string[] }).paths.length === 0) {
    report.warnings.push('the manifest sets requires_sudo: true, but sudo-programs-paths lists no program');
  }
  const version = answers.get('version');
  if (fromManifest && version?.kind === 'success') {
    const answered = (version.data as { version: string }).version;
    if (answered !== manifest.version) report.warnings.push(`version answers ${answered}, but the manifest says ${manifest.version}`);
  }
  const health = answers.get('validate');
  if (health?.kind === 'no') {
    const problems = (health.data as { problems: string[] }).problems;
    report.warnings.push(`the plugin's self-check reports it unhealthy here${problems.length ? `: ${problems.join('; ')}` : ''}`);
  }
}
