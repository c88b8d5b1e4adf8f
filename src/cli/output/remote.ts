import type { HostCatalog, HostSource, RemoteHost } from '../../update/remote/hosts.ts';
import { describeSource } from '../../update/remote/hosts.ts';
import type { HostResult, HostStatus, RemoteEvent, RemoteMode } from '../../update/remote/remote-run.ts';
import { formatDuration } from '../../update/stats/estimate.ts';
import type { Context } from '../context.ts';
import { colors, formatColumns, type Colors } from './colors.ts';
import { liveScreen, progressBar } from './live.ts';
import { formatClock, formatRunEstimate } from './update.ts';

/**
 * What `upkeep remote` shows while hosts update: with --json, one NDJSON
 * object `{host, event}` per event on stdout (the hosts' own update events
 * and upkeep remote's connection events, docs/remote.md); on a terminal, a
 * live view on stderr with one row per host and its plugins' progress;
 * otherwise plain `host: ...` lines on stderr. The per-host summary is the
 * command's result, printed on stdout at the end.
 */
export interface RemoteDisplay {
  event(host: string, event: RemoteEvent): void;
  done(): void;
}

export function createRemoteDisplay(context: Context, hosts: readonly string[], mode: RemoteMode): RemoteDisplay {
  if (context.json) return ndjsonDisplay(context);
  if (context.quiet) return { event() {}, done() {} };
  if (context.stderrIsTTY) return liveDisplay(context, hosts, mode);
  return lineDisplay(context);
}

function ndjsonDisplay(context: Context): RemoteDisplay {
  return {
    event(host, event) {
      // Plugin output is for people and logs; --verbose streams it too (as `update run --json` does).
      if (event.type === 'output' && !context.verbose) return;
      context.stdout.write(`${JSON.stringify({ host, event })}\n`);
    },
    done() {},
  };
}

function lineDisplay(context: Context): RemoteDisplay {
  const c = colors(context.color);
  const write = (host: string, text: string): void => {
    context.stderr.write(`${host}: ${text}\n`);
  };
  // While a host waits for its run to end elsewhere, say so once, not at every look.
  const waiting = new Set<string>();
  return {
    event(host, event) {
      if (event.type === 'waiting' || (event.type === 'command' && event.command === 'resume')) {
        if (waiting.has(host)) return;
        if (event.type === 'waiting') waiting.add(host);
      } else if (event.type !== 'command') {
        waiting.delete(host);
      }
      const text = describeEvent(event, c, context.verbose);
      if (text !== null) write(host, text);
    },
    done() {},
  };
}

/** One line for an event, or null when it is not worth a line. */
function describeEvent(event: RemoteEvent, c: Colors, verbose: boolean): string | null {
  switch (event.type) {
    case 'connection':
      if (event.status === 'connected') return `connected to ${event.address}`;
      if (event.status === 'lost') return c.yellow('connection lost');
      if (event.status === 'retrying') return c.yellow(`${event.message ?? 'retrying'}; trying again in ${event.delaySeconds ?? 0} s`);
      return verbose ? c.dim(`connecting to ${event.address} (attempt ${event.attempt})`) : null;
    case 'host-key-added':
      return c.yellow(`added its ${event.keyType} host key ${event.fingerprint} to ${event.file} (--accept-new)`);
    case 'command':
      if (event.command === 'resume') return 'resuming the interrupted run (update resume)';
      if (event.command === 'stats') return 'the run ended while disconnected; reading its outcome (update stats)';
      return verbose ? c.dim(`running ${event.argv.join(' ')}`) : null;
    case 'waiting':
      return c.dim(event.message);
    case 'log':
      return event.stream === 'stderr' || verbose ? c.dim(`| ${event.line}`) : null;
    case 'result':
      return resultLine(event.result, c);
    case 'phase':
      if (event.phase === 'estimate' && event.status !== 'failed') return null;
      if (event.status === 'running') return `${event.plugin}: ${event.phase} started${event.attempt > 1 ? ` (attempt ${event.attempt})` : ''}`;
      if (event.status === 'failed') return c.red(`${event.plugin}: ${event.phase} failed: ${event.error?.message ?? 'unknown error'}`);
      return `${event.plugin}: ${event.phase} ${event.status}${event.seconds === undefined ? '' : ` in ${formatDuration(event.seconds)}`}${event.note ? ` (${event.note})` : ''}`;
    case 'estimate':
      if (event.applicable) return `${event.plugin}: ${event.updates} update${event.updates === 1 ? '' : 's'} pending`;
      return verbose ? c.dim(`${event.plugin}: does not apply (${event.reason ?? 'no reason given'})`) : null;
    case 'retry':
      return c.yellow(`${event.plugin}: ${event.phase} failed transiently (${event.reason}); retrying in ${event.delaySeconds.toFixed(1)} s`);
    case 'warning':
      return c.yellow(`warning: ${event.message}`);
    case 'output':
      return verbose ? c.dim(`${event.plugin}| ${event.line}`) : null;
    default:
      return null;
  }
}

function resultLine(result: HostResult, c: Colors): string {
  const time = `in ${formatDuration(result.seconds)}`;
  const after = result.unseen ? ' (the run finished while disconnected)' : result.resumed ? ' (resumed after the connection dropped)' : '';
  if (result.status === 'succeeded') return c.green(`done ${time}${after}`);
  if (result.status === 'partial') return c.yellow(`done with failures ${time}${after}`);
  if (result.status === 'interrupted') return c.yellow('interrupted');
  return c.red(`failed: ${result.error?.message ?? 'see above'}`);
}

interface PluginRow {
  status: 'pending' | 'running' | 'done' | 'failed' | 'skipped';
  percent: number | null;
  message: string;
}

interface HostRow {
  status: 'waiting' | 'connecting' | 'running' | 'reconnecting' | HostStatus;
  activity: string;
  plugins: Map<string, PluginRow>;
  message: string;
  startedAt: number | null;
  endedAt: number | null;
}

/** The live view: one row per host, redrawn in place at most ten times a second. */
function liveDisplay(context: Context, hosts: readonly string[], mode: RemoteMode): RemoteDisplay {
  const c = colors(context.color);
  const rows = new Map<string, HostRow>(
    hosts.map((host) => [host, { status: 'waiting', activity: 'waiting', plugins: new Map(), message: '', startedAt: null, endedAt: null }]),
  );
  const render = (): string => {
    const table = [...rows].map(([host, row]) => {
      const plugins = [...row.plugins.values()];
      const finished = plugins.filter((plugin) => plugin.status === 'done' || plugin.status === 'failed' || plugin.status === 'skipped').length;
      const running = [...row.plugins].filter(([, plugin]) => plugin.status === 'running');
      const fraction = plugins.length === 0 ? 0 : (finished + running.reduce((total, [, plugin]) => total + (plugin.percent ?? 0) / 100, 0)) / plugins.length;
      const progress = mode === 'run' && plugins.length > 0 ? `${progressBar(fraction, c, 12)} ${finished}/${plugins.length}` : '';
      const detail = running.map(([name, plugin]) => `${name}${plugin.percent === null ? '' : ` ${plugin.percent}%`}${plugin.message ? ` ${plugin.message}` : ''}`).join(', ') || row.message;
      const elapsed = row.startedAt === null ? '' : formatClock(((row.endedAt ?? Date.now()) - row.startedAt) / 1000);
      return [`${symbol(row.status, c)} ${host}`, activityText(row, c), progress, elapsed, c.dim(detail.slice(0, 60))];
    });
    return formatColumns([[c.dim('host'), c.dim('status'), c.dim(mode === 'run' ? 'plugins' : ''), c.dim('time'), ''], ...table]);
  };
  const screen = liveScreen(context.stderr, render);

  return {
    event(host, event) {
      const row = rows.get(host);
      if (!row) return;
      switch (event.type) {
        case 'connection':
          row.startedAt ??= Date.now();
          if (event.status === 'connecting') {
            row.status = row.status === 'reconnecting' ? 'reconnecting' : 'connecting';
            row.activity = event.attempt > 1 ? `connecting (attempt ${event.attempt})` : 'connecting';
          } else if (event.status === 'connected') {
            row.status = 'running';
            row.activity = 'starting';
            row.message = '';
          } else if (event.status === 'lost') {
            row.status = 'reconnecting';
            row.activity = 'connection lost';
          } else {
            row.status = 'reconnecting';
            row.activity = `retry in ${event.delaySeconds ?? 0} s`;
            row.message = event.message ?? '';
          }
          break;
        case 'command':
          if (event.command === 'resume') row.activity = 'resuming';
          else if (event.command === 'check') row.activity = 'checking';
          break;
        case 'waiting':
          row.message = event.message;
          break;
        case 'run':
          row.activity = event.status === 'estimating' ? 'checking' : event.status;
          break;
        case 'estimate':
          if (event.applicable && event.updates > 0 && !row.plugins.has(event.plugin)) row.plugins.set(event.plugin, { status: 'pending', percent: null, message: '' });
          break;
        case 'phase': {
          if (event.phase === 'estimate') break;
          const plugin = row.plugins.get(event.plugin) ?? { status: 'pending', percent: null, message: '' };
          row.plugins.set(event.plugin, plugin);
          if (event.status === 'running') {
            plugin.status = 'running';
            plugin.percent = null;
          } else if (event.status === 'failed') plugin.status = 'failed';
          else if (event.status === 'skipped') plugin.status = 'skipped';
          else if (event.status === 'completed' && event.phase === 'update') plugin.status = 'done';
          else if (event.status === 'completed') plugin.status = 'pending';
          break;
        }
        case 'progress': {
          const plugin = row.plugins.get(event.plugin);
          if (plugin) {
            plugin.percent = Math.round(event.percent);
            plugin.message = event.message ?? plugin.message;
          }
          break;
        }
        case 'warning':
          screen.note(c.yellow(`${host}: warning: ${event.message}`));
          break;
        case 'retry':
          screen.note(c.yellow(`${host}: ${event.plugin}: ${event.phase} failed transiently; retrying in ${event.delaySeconds.toFixed(1)} s`));
          break;
        case 'log':
          if (event.stream === 'stderr') screen.note(c.dim(`${host}| ${event.line}`));
          break;
        case 'host-key-added':
          screen.note(c.yellow(`${host}: added its ${event.keyType} host key ${event.fingerprint} to ${event.file}`));
          break;
        case 'result':
          row.status = event.result.status;
          row.endedAt = Date.now();
          row.startedAt ??= row.endedAt;
          row.message = event.result.status === 'failed' || event.result.status === 'interrupted' ? (event.result.error?.message ?? '') : '';
          break;
        default:
          return;
      }
      screen.changed();
    },
    done() {
      screen.stop();
    },
  };
}

function activityText(row: HostRow, c: Colors): string {
  switch (row.status) {
    case 'succeeded':
      return c.green('done');
    case 'partial':
      return c.yellow('done, some failed');
    case 'failed':
      return c.red('failed');
    case 'interrupted':
      return c.yellow('interrupted');
    case 'reconnecting':
      return c.yellow(row.activity);
    case 'waiting':
      return c.dim('waiting');
    default:
      return row.activity;
  }
}

function symbol(status: HostRow['status'], c: Colors): string {
  switch (status) {
    case 'succeeded':
      return c.green('✓');
    case 'partial':
      return c.yellow('!');
    case 'failed':
      return c.red('✗');
    case 'interrupted':
      return c.yellow('–');
    case 'reconnecting':
      return c.yellow('↻');
    case 'waiting':
      return c.dim('○');
    default:
      return c.cyan('●');
  }
}

const STATUS_WORD: Record<HostStatus, string> = { succeeded: 'ok', partial: 'partial', failed: 'failed', interrupted: 'interrupted' };

function statusText(status: HostStatus, c: Colors): string {
  const word = STATUS_WORD[status];
  if (status === 'succeeded') return c.green(`✓ ${word}`);
  if (status === 'failed') return c.red(`✗ ${word}`);
  return c.yellow(`! ${word}`);
}

/** The per-host summary at the end. */
export function renderRemoteSummary(results: readonly HostResult[], mode: RemoteMode, color: boolean): string {
  const c = colors(color);
  const lines: string[] = [];
  if (mode === 'check') {
    lines.push(
      formatColumns([
        ['host', 'status', 'updates', 'plugins with updates', 'estimate'].map((title) => c.dim(title)),
        ...results.map((result) => {
          const plugins = result.check?.plugins.filter((plugin) => plugin.applicable && plugin.updates.length > 0) ?? [];
          const updates = plugins.reduce((total, plugin) => total + plugin.updates.length, 0);
          return [
            result.host,
            statusText(result.status, c),
            result.check ? String(updates) : '',
            plugins.map((plugin) => `${plugin.name} ${plugin.updates.length}`).join(', '),
            result.check && updates > 0 ? c.dim(formatRunEstimate(result.check.estimate)) : '',
          ];
        }),
      ]),
    );
  } else {
    lines.push(
      formatColumns([
        ['host', 'status', 'time', 'plugins', 'packages', 'notes'].map((title) => c.dim(title)),
        ...results.map((result) => {
          const summary = result.report?.summary;
          const plugins = summary && summary.pluginsRun === 0 && summary.failed.length === 0
            ? c.dim('nothing to update')
            : summary
            ? `${summary.succeeded.length} ok${summary.failed.length > 0 ? c.red(`, ${summary.failed.length} failed (${summary.failed.join(', ')})`) : ''}${summary.notRun.length > 0 ? c.yellow(`, ${summary.notRun.length} not run`) : ''}`
            : result.unseen
              ? `${result.unseen.plugins.length - result.unseen.failures.length} ok${result.unseen.failures.length > 0 ? c.red(`, failed: ${result.unseen.failures.join(', ')}`) : ''}`
              : '';
          const notes = [
            result.dryRun ? 'dry run' : '',
            result.reconnects > 0 ? `${result.reconnects} reconnect${result.reconnects === 1 ? '' : 's'}${result.resumed ? ', resumed' : ''}` : '',
            result.unseen ? 'finished while disconnected' : '',
            summary?.requiresReboot ? c.yellow('reboot required') : '',
          ].filter(Boolean);
          return [
            result.host,
            statusText(result.status, c),
            formatDuration(result.seconds),
            plugins,
            summary && !result.dryRun ? `${summary.packagesUpdated} updated` : '',
            c.dim(notes.join('; ')),
          ];
        }),
      ]),
    );
  }
  for (const result of results) {
    if (result.error) {
      lines.push('', c.red(`✗ ${result.host}: error[${result.error.code}]: ${result.error.message}`));
      if (result.error.hint) lines.push(`  ${c.cyan('hint')}: ${result.error.hint}`);
    }
    for (const plugin of result.report?.plugins ?? []) {
      for (const phase of ['estimate', 'download', 'update'] as const) {
        const state = plugin.phases[phase];
        if (state?.status === 'failed') lines.push(c.red(`✗ ${result.host}: ${plugin.name} ${phase}: ${state.error?.code ?? ''} ${state.error?.message ?? ''}`));
      }
    }
  }
  const count = (status: HostStatus): number => results.filter((result) => result.status === status).length;
  const parts = [`${count('succeeded')} ok`, count('partial') > 0 ? `${count('partial')} partial` : '', count('failed') > 0 ? `${count('failed')} failed` : '', count('interrupted') > 0 ? `${count('interrupted')} interrupted` : ''];
  lines.push('', `${results.length} host${results.length === 1 ? '' : 's'}: ${parts.filter(Boolean).join(', ')}`);
  return lines.join('\n');
}

export interface HostListing {
  hosts: Array<RemoteHost & { groups: string[] }>;
  groups: Array<{ name: string; members: string[]; sources: HostSource[] }>;
  files: string[];
}

export function hostListing(catalog: HostCatalog, only: ReadonlySet<string> | null): HostListing {
  const hosts = [...catalog.hosts.values()]
    .filter((host) => !only || only.has(host.name))
    .sort((left, right) => left.name.localeCompare(right.name))
    .map((host) => ({
      name: host.name,
      hostname: host.hostname,
      user: host.user,
      port: host.port,
      keyFiles: host.keyFiles,
      upkeepPath: host.upkeepPath,
      sudoPasswordEnv: host.sudoPasswordEnv,
      proxy: host.proxy,
      groups: [...catalog.groups.values()].filter((group) => group.members.includes(host.name)).map((group) => group.name).sort(),
      sources: host.sources,
    }));
  const groups = [...catalog.groups.values()]
    .filter((group) => !only || group.members.some((member) => only.has(member)))
    .sort((left, right) => left.name.localeCompare(right.name))
    .map((group) => ({ name: group.name, members: group.members, sources: group.sources }));
  return { hosts, groups, files: catalog.files };
}

export function renderHostList(listing: HostListing, home: string, color: boolean): string {
  const c = colors(color);
  if (listing.hosts.length === 0) {
    return 'no hosts: add them to ~/.config/upkeep/hosts.yaml, ~/.ssh/config or an Ansible inventory listed in hosts.yaml (docs/remote.md)';
  }
  const lines = [
    formatColumns([
      ['host', 'address', 'upkeep', 'key', 'from'].map((title) => c.dim(title)),
      ...listing.hosts.map((host) => [
        host.name,
        `${host.user}@${host.hostname}${host.port === 22 ? '' : `:${host.port}`}`,
        host.upkeepPath,
        host.keyFiles.length > 0 ? host.keyFiles.map((file) => shorten(file, home)).join(', ') : c.dim('agent, default keys'),
        c.dim(host.sources.map((source) => describeSource(source, home)).join(', ')),
      ]),
    ]),
  ];
  if (listing.groups.length > 0) {
    lines.push('', c.bold('Groups'));
    lines.push(
      formatColumns(
        listing.groups.map((group) => [group.name, group.members.join(', ') || c.dim('(empty)'), c.dim(group.sources.map((source) => describeSource(source, home)).join(', '))]),
        '  ',
      ),
    );
  }
  return lines.join('\n');
}

function shorten(path: string, home: string): string {
  return path.startsWith(`${home}/`) ? `~${path.slice(home.length)}` : path;
}
