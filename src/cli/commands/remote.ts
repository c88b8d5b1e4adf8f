import { join } from 'node:path';
import type { Command } from 'commander';
import { ExitCode, UpkeepError } from '../../core/errors.ts';
import type { KnownHostsPolicy } from '../../update/remote/connection.ts';
import { loadHostCatalog, localUserName, selectHosts, type HostCatalog } from '../../update/remote/hosts.ts';
import { RemoteRun, type HostResult, type RemoteMode } from '../../update/remote/remote-run.ts';
import { knownHostsSettings } from '../../update/remote/ssh-config.ts';
import type { CommandResult, Context } from '../context.ts';
import { createRemoteDisplay, hostListing, renderHostList, renderRemoteSummary } from '../output/remote.ts';
import type { Handler } from '../run.ts';
import { configFor } from './shared.ts';

type Register = <T>(handler: Handler<T>) => (...args: unknown[]) => Promise<void>;

interface RemoteOptions {
  parallel?: string;
  checkOnly?: boolean;
  dryRun?: boolean;
  acceptNew?: boolean;
  list?: boolean;
}

export function registerRemoteCommands(program: Command, run: Register): void {
  program
    .command('remote')
    .summary('update other machines over SSH: runs upkeep update on each host, in parallel, in one live view')
    .description(
      'Connects to each host over SSH (host keys checked against ~/.ssh/known_hosts; ssh-agent and key authentication), runs the upkeep installed there (`update run --json`, or `update check --json` with --check-only) and shows every host\'s plugins as they progress, then a summary per host. Hosts come from ~/.config/upkeep/hosts.yaml, ~/.ssh/config and Ansible inventories listed in hosts.yaml; a group name selects its hosts. One host failing never stops the others. A dropped connection is retried with backoff and the host\'s run resumed, not started again. docs/remote.md has the details.',
    )
    .argument('[hosts...]', 'host or group names (see --list)')
    .option('--parallel <count>', 'hosts updated at once (remote.parallel, default 4)')
    .option('--check-only', 'only check what each host would update (update check); changes nothing')
    .option('-n, --dry-run', 'plan on each host without downloading or updating (update run --dry-run)')
    .option('--accept-new', 'trust the host key of a host never seen before and add it to ~/.ssh/known_hosts (a changed key is still refused)')
    .option('--list', 'list every known host and group and where each comes from')
    .addHelpText(
      'after',
      [
        '',
        'Exit codes: 0 every host succeeded, 3 some failed, 1 all failed, 2 usage error.',
        '',
        'Examples:',
        '  upkeep remote --list',
        '  upkeep remote web1 web2 --check-only',
        '  upkeep remote webservers --parallel 8',
        '  upkeep remote pi --accept-new            # first connection to a new host',
        '  upkeep remote all --json                 # NDJSON: {"host": ..., "event": {...}} per line',
        '',
      ].join('\n'),
    )
    .action(run(remoteHandler));
}

function parallelFlag(value: string | undefined): Record<string, unknown> {
  if (value === undefined) return {};
  const count = Number(value);
  if (!Number.isInteger(count) || count < 1 || count > 64) {
    throw new UpkeepError('E_USAGE', `--parallel must be a whole number from 1 to 64, not ${value}`, { hint: 'for example --parallel 8', exitCode: ExitCode.usage });
  }
  return { 'remote.parallel': count };
}

async function catalogFor(context: Context): Promise<HostCatalog> {
  return loadHostCatalog({
    hostsFile: join(context.paths.config, 'hosts.yaml'),
    sshConfig: { user: join(context.home, '.ssh', 'config'), system: '/etc/ssh/ssh_config' },
    home: context.home,
    environment: context.environment,
  });
}

/** known_hosts as ssh reads it: the user's files (UserKnownHostsFile or ~/.ssh/known_hosts, known_hosts2), then the system's. */
function knownHostsPolicy(context: Context, catalog: HostCatalog, acceptNew: boolean): KnownHostsPolicy {
  const settings = knownHostsSettings(catalog.sshConfig, { localUser: localUserName(context.environment), home: context.home });
  const userFiles = settings.userFiles && settings.userFiles.length > 0 ? settings.userFiles : [join(context.home, '.ssh', 'known_hosts'), join(context.home, '.ssh', 'known_hosts2')];
  return {
    files: [...userFiles, '/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
    userFile: userFiles[0]!,
    hash: settings.hash,
    acceptNew,
  };
}

const remoteHandler: Handler<RemoteOptions> = async (options, context, operands) => {
  const names = operands.flat();
  const catalog = await catalogFor(context);
  if (options.list) return listResult(context, catalog, names);
  if (names.length === 0) {
    throw new UpkeepError('E_USAGE', 'name at least one host or group', {
      hint: '`upkeep remote --list` shows them; e.g. `upkeep remote web1 web2`',
      exitCode: ExitCode.usage,
    });
  }
  const loaded = await configFor(context, parallelFlag(options.parallel));
  const { remote } = loaded.config;
  const hosts = selectHosts(catalog, names);
  const warnings: string[] = [];
  const mode: RemoteMode = options.checkOnly ? 'check' : 'run';
  if (options.checkOnly && options.dryRun) warnings.push('--dry-run adds nothing to --check-only: a check changes nothing anyway');
  const display = createRemoteDisplay(context, hosts.map((host) => host.name), mode);
  const runner = new RemoteRun({
    hosts,
    mode,
    dryRun: mode === 'run' && (options.dryRun ?? false),
    parallel: remote.parallel,
    retries: remote.retries,
    retryDelayMs: 1000,
    connectTimeoutMs: remote.connectTimeout * 1000,
    knownHosts: knownHostsPolicy(context, catalog, options.acceptNew ?? false),
    home: context.home,
    environment: context.environment,
    onEvent: (host, event) => {
      // upkeep remote's own steps go to --verbose and --log-file too (the hosts' events are in their own logs).
      if (event.type === 'connection' || event.type === 'command' || event.type === 'waiting' || event.type === 'host-key-added') {
        const { type, time: _time, ...fields } = event;
        context.logger.debug(`remote ${host}: ${type}`, fields);
      } else if (event.type === 'result') {
        context.logger.info(`remote ${host}: ${event.result.status}`, { seconds: event.result.seconds, reconnects: event.result.reconnects, error: event.result.error?.code });
      }
      display.event(host, event);
    },
    now: context.now,
  });
  const unsubscribe = context.onInterrupt(() => runner.interrupt());
  let results: HostResult[];
  try {
    results = await runner.run();
  } finally {
    unsubscribe();
    display.done();
  }
  for (const result of results) warnings.push(...result.warnings);
  if (context.json) context.stdout.write(`${JSON.stringify({ type: 'summary', hosts: results })}\n`);
  return {
    exitCode: exitCodeOf(results),
    data: { hosts: results },
    warnings,
    streamed: true,
    human: (color) => renderRemoteSummary(results, mode, color),
  };
};

/** 0 when every host succeeded, 1 when none did (all failed or were interrupted), 3 in between. */
export function exitCodeOf(results: readonly HostResult[]): ExitCode {
  if (results.every((result) => result.status === 'succeeded')) return ExitCode.success;
  if (results.every((result) => result.status === 'failed' || result.status === 'interrupted')) return ExitCode.failure;
  return ExitCode.partial;
}

function listResult(context: Context, catalog: HostCatalog, names: string[]): CommandResult {
  const only = names.length > 0 ? new Set(selectHosts(catalog, names).map((host) => host.name)) : null;
  const listing = hostListing(catalog, only);
  return {
    exitCode: ExitCode.success,
    data: listing,
    human: (color) => renderHostList(listing, context.home, color),
  };
}
