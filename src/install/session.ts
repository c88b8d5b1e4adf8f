import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { findCandidates, indexFolders, searchFolders, type Candidate } from '../audit/discover.ts';
import type { Catalog } from '../catalog/loader.ts';
import { loadGroups } from '../catalog/handlers.ts';
import type { Groups, Tool } from '../catalog/schema.ts';
import type { Config } from '../core/config.ts';
import { Executor } from '../core/exec.ts';
import { createHttpClient, type HttpClient } from '../core/http.ts';
import type { Logger } from '../core/log.ts';
import type { Environment, Paths } from '../core/paths.ts';
import { Mutexes, type ApplyContext } from './apply.ts';
import type { PlanContext } from './plan.ts';
import { detectPlatform } from './platform.ts';
import type { Platform } from './types.ts';

/**
 * Everything one install, upgrade, uninstall or reconcile run shares: the
 * platform, the catalog and its package groups, one executor, one set of
 * package-manager mutexes and one HTTP client made on first use.
 */

export interface SessionOptions {
  catalog: Catalog;
  config: Config;
  paths: Paths;
  environment: Environment;
  home: string;
  cwd: string;
  logger: Logger;
  dryRun: boolean;
  uid?: number;
  userAgent: string;
}

export interface Session extends SessionOptions {
  platform: Platform;
  groups: Groups;
  executor: Executor;
  binDir: string;
  planContext: PlanContext;
  applyContext: ApplyContext;
  /** Installations of a tool found now (PATH, install.binDir, audit.extraPaths), active first. */
  installationsOf(tool: Tool): Candidate[];
  /** Forget what was found on disk: after a step changed it. */
  refresh(): void;
  warnings: string[];
  close(): Promise<void>;
}

export function expandHome(path: string, home: string): string {
  return path === '~' ? home : path.startsWith('~/') ? join(home, path.slice(2)) : path;
}

export async function openSession(options: SessionOptions): Promise<Session> {
  const executor = new Executor({ dryRun: options.dryRun, env: options.environment, logger: options.logger });
  const [platform, groupsRead] = await Promise.all([
    detectPlatform({
      environment: options.environment,
      config: options.config.install,
      executor,
      ...(options.environment.UPKEEP_OS_RELEASE ? { osRelease: options.environment.UPKEEP_OS_RELEASE } : {}),
      ...(options.uid === undefined ? {} : { uid: options.uid }),
    }),
    loadGroups(options.catalog.root),
  ]);
  const warnings = groupsRead.problems.map((problem) => `catalog ${problem.file}: ${problem.message}`);
  const binDir = expandHome(options.config.install.binDir, options.home);

  let index: ReturnType<typeof indexFolders> | null = null;
  const folders = () => searchFolders(options.environment.PATH, [binDir, ...options.config.audit.extraPaths], options.home, options.cwd);
  const installationsOf = (tool: Tool): Candidate[] => {
    index ??= indexFolders(folders());
    const candidates = findCandidates(index, tool.binaries);
    return [...candidates.filter((candidate) => candidate.onPath), ...candidates.filter((candidate) => !candidate.onPath)];
  };
  const pathFolders = (options.environment.PATH ?? '').split(delimiter).filter(Boolean);
  const commandCache = new Map<string, boolean>();
  const hasCommand = (name: string): boolean => {
    let found = commandCache.get(name);
    if (found === undefined) {
      found = pathFolders.some((folder) => {
        try {
          accessSync(join(folder, name), constants.X_OK);
          return true;
        } catch {
          return false;
        }
      });
      commandCache.set(name, found);
    }
    return found;
  };
  const binaryOwners = new Map<string, string>();
  for (const tool of options.catalog.tools) for (const binary of tool.binaries) if (!binaryOwners.has(binary)) binaryOwners.set(binary, tool.id);
  const known = knownLatestVersions(options.catalog.root, options.paths.cache);

  let http: HttpClient | null = null;
  const planContext: PlanContext = {
    platform,
    config: options.config,
    groups: groupsRead.groups,
    binDir,
    hasCommand,
    toolForBinary: (name) => binaryOwners.get(name) ?? null,
    knownLatest: (id) => known.get(id) ?? null,
  };
  const applyContext: ApplyContext = {
    executor,
    mutexes: new Mutexes(),
    config: options.config,
    platform,
    environment: options.environment,
    http: async () => (http ??= createHttpClient({ config: options.config, environment: options.environment, logger: options.logger, userAgent: options.userAgent })),
    stagingRoot: join(options.paths.cache, 'staging'),
    logger: options.logger,
  };
  return {
    ...options,
    platform,
    groups: groupsRead.groups,
    executor,
    binDir,
    planContext,
    applyContext,
    installationsOf,
    refresh: () => {
      index = null;
      commandCache.clear();
    },
    warnings,
    close: async () => {
      await http?.close();
    },
  };
}

/**
 * Latest versions known without the network: the audit's cache, then the
 * catalog's committed baseline. Planning a release download shows its URL
 * from these; the install itself asks upstream again.
 */
function knownLatestVersions(catalogRoot: string, cacheFolder: string): Map<string, string> {
  const versions = new Map<string, string>();
  const read = (file: string, pick: (raw: unknown) => Record<string, unknown> | undefined, field: string): void => {
    try {
      const tools = pick(JSON.parse(readFileSync(file, 'utf8')));
      for (const [id, entry] of Object.entries(tools ?? {})) {
        const version = (entry as Record<string, unknown> | null)?.[field];
        if (typeof version === 'string' && !versions.has(id)) versions.set(id, version);
      }
    } catch {
      // Missing or unreadable: the other source, or no known version.
    }
  };
  read(join(cacheFolder, 'latest-v1.json'), (raw) => (raw as { tools?: Record<string, unknown> }).tools, 'version');
  read(join(catalogRoot, 'latest-versions.json'), (raw) => (raw as { tools?: Record<string, unknown> }).tools, 'version');
  return versions;
}
