import type { Command } from 'commander';
import { ExitCode } from '../../core/errors.ts';
import { Executor } from '../../core/exec.ts';
import { detectPlatform } from '../../install/platform.ts';
import type { Platform, Privilege } from '../../install/types.ts';
import { colors, formatColumns } from '../output/colors.ts';
import type { Handler } from '../run.ts';
import { configFor } from './shared.ts';

export function registerPlatformCommand(program: Command, run: <T>(handler: Handler<T>) => (...args: unknown[]) => Promise<void>): void {
  program
    .command('platform')
    .summary('show what upkeep detects about this machine: OS, distribution, architecture, package managers, privilege, environment')
    .action(run(platformHandler));
}

export const platformHandler: Handler<Record<string, never>> = async (_options, context) => {
  const loaded = await configFor(context);
  const executor = new Executor({ env: context.environment, logger: context.logger });
  const platform = await detectPlatform({
    environment: context.environment,
    config: loaded.config.install,
    executor,
    ...(context.uid === undefined ? {} : { uid: context.uid }),
    ...(context.environment.UPKEEP_OS_RELEASE ? { osRelease: context.environment.UPKEEP_OS_RELEASE } : {}),
  });
  const warnings: string[] = [];
  if (platform.os === null) warnings.push(`upkeep installs nothing on ${platform.rawOs}: only Linux and macOS are supported`);
  else if (platform.os === 'linux' && platform.family === null) {
    warnings.push(
      `no package family is known for ${platform.distribution?.id ?? 'this distribution'}; system package managers are not used, other methods still are`,
    );
  }
  if (platform.arch === null) warnings.push(`architecture ${platform.rawArch} is neither x86_64 nor aarch64; binary downloads are not available`);
  return { exitCode: ExitCode.success, data: platform, warnings, human: (color) => renderPlatform(platform, color) };
};

const PRIVILEGE_TEXT: Record<Privilege, string> = {
  root: 'root',
  'sudo-passwordless': 'sudo without a password',
  'sudo-password': 'sudo, asks for a password',
  none: 'none (no root, no sudo)',
};

export function renderPlatform(platform: Platform, color: boolean): string {
  const c = colors(color);
  const unknown = (raw: string): string => `${raw} ${c.yellow('(unsupported)')}`;
  const distribution = platform.distribution
    ? `${platform.distribution.name} ${c.dim(`(${[platform.distribution.id, platform.distribution.version].filter(Boolean).join(' ')})`)}`
    : c.dim('unknown');
  const environment = platform.environment;
  const rows = [
    ['os', platform.os ?? unknown(platform.rawOs)],
    ['distribution', distribution],
    ['family', platform.family ?? c.yellow('unknown')],
    ['architecture', platform.arch ?? unknown(platform.rawArch)],
    ['privilege', PRIVILEGE_TEXT[platform.privilege]],
    [
      'environment',
      `${environment.mode} ${c.dim(`(${environment.overridden ? 'set in config' : `confidence ${environment.confidence.toFixed(2)}`}: ${environment.indicators.join(', ')})`)}`,
    ],
  ].map(([label, value]) => [c.bold(label!), value!]);

  const methods = platform.methods.map((method) => [method, platform.managerPaths[method] ?? c.dim(method === 'binary' ? '(downloads, always available)' : '')]);
  return `${formatColumns(rows)}\n\n${c.bold('methods')}\n${formatColumns(methods, '  ')}`;
}
