import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { runAudit, type LatestResolver } from '../../audit/audit.ts';
import { defaultSnapshotPath, readSnapshot, writeSnapshot } from '../../audit/snapshot.ts';
import type { AuditDocument, ToolReport } from '../../audit/types.ts';
import { ExitCode } from '../../core/errors.ts';
import { Executor } from '../../core/exec.ts';
import type { Context, CommandResult } from '../context.ts';
import { renderAudit, sortReports, type SortKey } from '../output/audit.ts';
import { createProgress } from '../output/progress.ts';
import type { Handler } from '../run.ts';
import { upkeepVersion } from '../version.ts';
import { findCatalogRoot } from '../../catalog/loader.ts';
import { catalogFor, catalogWarnings, configFor } from './shared.ts';
import { selectTools, splitList } from './select.ts';

export interface AuditOptions {
  only?: string[];
  preset?: string;
  offline?: boolean;
  refresh?: boolean;
  collectOnly?: boolean;
  fromSnapshot?: boolean;
  snapshot?: string;
  sort: SortKey;
  failOn?: 'outdated' | 'missing' | 'any';
  all?: boolean;
  prereleases?: boolean;
}

export function registerAuditCommand(program: Command, run: <T>(handler: Handler<T>) => (...args: unknown[]) => Promise<void>): void {
  program
    .command('audit')
    .summary('show which tools are installed, how, and which are out of date')
    .description(
      'Finds every installation of every catalog tool on PATH and the usual places, reads its version\n' +
        '(cached by binary identity, so an unchanged machine spawns nothing), classifies how it was\n' +
        'installed, and compares it with the latest upstream release.',
    )
    .argument('[tool...]', 'tools to audit (ids, binary names or aliases); default: the whole catalog')
    .option('--only <tools...>', 'audit only these tools (comma or space separated)')
    .option('--preset <name>', 'audit the tools of a preset (see `upkeep catalog presets`)')
    .option('--offline', 'never use the network: cached or committed latest versions only')
    .option('--refresh', 'ask every upstream again, ignoring the cache time to live')
    .option('--collect-only', 'audit and write the snapshot, print no table')
    .option('--from-snapshot', 'render the last snapshot without running or fetching anything')
    .option('--snapshot <path>', 'snapshot file to write or read (default: in the state folder)')
    .addOption(new Option('--sort <key>', 'order of the rows').choices(['category', 'name', 'status']).default('category'))
    .addOption(new Option('--fail-on <kind>', 'exit 1 when a tool is outdated, missing, or either').choices(['outdated', 'missing', 'any']))
    .option('--all', 'list tools that are not installed too (default: only with a selection)')
    .option('--prereleases', 'count pre-releases as the latest version')
    .addHelpText(
      'after',
      '\nExamples:\n  upkeep audit                      the whole catalog\n  upkeep audit rg jq --json         two tools, as JSON\n  upkeep audit --preset python-dev  one preset\n  upkeep audit --offline --fail-on outdated\n',
    )
    .action(run(auditHandler));
}

export const auditHandler: Handler<AuditOptions> = async (options, context, operands) => {
  const catalog = await catalogFor(context);
  const warnings = catalogWarnings(catalog);
  const { tools, explicit } = selectTools(catalog, [...operands, ...splitList(options.only)], options.preset);
  context.logger.debug('audit', { catalog: catalog.root, tools: tools.length, fromSnapshot: options.fromSnapshot ?? false });
  const snapshotPath = options.snapshot ?? defaultSnapshotPath(context.paths.state);

  let document: AuditDocument;
  if (options.fromSnapshot) {
    document = await readSnapshot(snapshotPath);
    if (explicit) {
      const wanted = new Set(tools.map((tool) => tool.id));
      document = { ...document, tools: document.tools.filter((report) => wanted.has(report.id)) };
    }
  } else {
    const flags: Record<string, unknown> = {};
    if (options.offline) flags['audit.offline'] = true;
    if (options.prereleases) flags['audit.includePrereleases'] = true;
    const { config } = await configFor(context, flags);
    const offline = config.audit.offline;
    const executor = new Executor({ env: context.environment, logger: context.logger });
    const progress = createProgress(context);
    const resolveLatest = await latestResolver(context, config, offline, options.refresh ?? false, (done, total) =>
      progress.update('upstream', done, total),
    );
    try {
      const outcome = await runAudit({
        tools,
        config,
        paths: context.paths,
        environment: context.environment,
        cwd: context.cwd,
        home: context.home,
        executor,
        logger: context.logger,
        offline,
        resolveLatest,
        now: context.now,
        upkeepVersion,
        onProgress: ({ phase, done, total }) => progress.update(phase, done, total),
      });
      document = outcome.document;
      warnings.push(...outcome.warnings);
      context.logger.debug('audit done', { installed: document.tools.filter((report) => report.installed).length, warnings: outcome.warnings.length });
    } finally {
      progress.done();
    }
    // A partial audit would overwrite the whole-catalog snapshot; write it only for the whole catalog.
    if (!explicit || options.collectOnly) await writeSnapshot(snapshotPath, document);
  }

  const sorted: AuditDocument = { ...document, tools: sortReports(document.tools, options.sort) };
  const exitCode = failOnMatches(sorted.tools, options.failOn) ? ExitCode.failure : ExitCode.success;
  if (options.collectOnly) {
    return collectOnlyResult(sorted, snapshotPath, exitCode, warnings);
  }
  return {
    exitCode,
    data: sorted,
    warnings,
    human: (color) => renderAudit(sorted, { color, showMissing: options.all ?? explicit, failOn: options.failOn }),
  };
};

function collectOnlyResult(document: AuditDocument, snapshotPath: string, exitCode: ExitCode, warnings: string[]): CommandResult {
  return {
    exitCode,
    data: { snapshot: snapshotPath, tools: document.tools.length, createdAt: document.meta.createdAt },
    warnings,
    human: () => `snapshot of ${document.tools.length} tools written to ${snapshotPath}`,
  };
}

export function failOnMatches(reports: ToolReport[], failOn: AuditOptions['failOn']): boolean {
  if (!failOn) return false;
  return reports.some((report) =>
    failOn === 'outdated'
      ? report.status === 'outdated'
      : failOn === 'missing'
        ? report.status === 'not-installed'
        : report.status === 'outdated' || report.status === 'not-installed' || report.status === 'different-tool',
  );
}

/** Loads the upstream module (and with it the HTTP stack) only when it is used. */
async function latestResolver(
  context: Context,
  config: Awaited<ReturnType<typeof configFor>>['config'],
  offline: boolean,
  refresh: boolean,
  onProgress: (done: number, total: number) => void,
): Promise<LatestResolver> {
  const { resolveLatest } = await import('../../audit/latest.ts');
  return async (tools) =>
    resolveLatest({
      tools,
      config,
      paths: context.paths,
      environment: context.environment,
      logger: context.logger,
      offline,
      refresh,
      baselinePath: join(findCatalogRoot(context.environment), 'latest-versions.json'),
      now: context.now,
      userAgent: `upkeep/${upkeepVersion}`,
      onProgress,
    });
}
