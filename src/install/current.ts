import { join } from 'node:path';
import { runAudit } from '../audit/audit.ts';
import type { Installation, InstallMethod, ToolReport } from '../audit/types.ts';
import type { Method, Tool } from '../catalog/schema.ts';
import { readRecords, type InstallRecord } from './records.ts';
import type { Session } from './session.ts';

/**
 * What is installed now, from the audit (every installation, classified,
 * with its version) and upkeep's own install records.
 */

export async function auditTools(session: Session, tools: Tool[], options: { offline: boolean; refresh?: boolean }): Promise<ToolReport[]> {
  const { resolveLatest } = await import('../audit/latest.ts');
  // Release downloads land in install.binDir, which the audit must search even when configured elsewhere.
  const config = { ...session.config, audit: { ...session.config.audit, extraPaths: [session.binDir, ...session.config.audit.extraPaths] } };
  const outcome = await runAudit({
    tools,
    config,
    paths: session.paths,
    environment: session.environment,
    cwd: session.cwd,
    home: session.home,
    executor: session.executor,
    logger: session.logger,
    offline: options.offline,
    upkeepVersion: session.userAgent,
    resolveLatest: (selected) =>
      resolveLatest({
        tools: selected,
        config: session.config,
        paths: session.paths,
        environment: session.environment,
        logger: session.logger,
        offline: options.offline,
        refresh: options.refresh ?? false,
        baselinePath: join(session.catalog.root, 'latest-versions.json'),
        userAgent: session.userAgent,
      }),
  });
  session.warnings.push(...outcome.warnings);
  return outcome.document.tools;
}

/** The recipe method that acts on an installation the audit classified. */
const FROM_CLASSIFICATION: Partial<Record<InstallMethod, Method>> = {
  apt: 'apt',
  rpm: 'dnf',
  pacman: 'pacman',
  apk: 'apk',
  zypper: 'zypper',
  homebrew: 'brew',
  snap: 'snap',
  flatpak: 'flatpak',
  pipx: 'pipx',
  uv: 'uv',
  'pip-user': 'pip',
  'npm-global': 'npm',
  'npm-user': 'npm',
  cargo: 'cargo',
  go: 'go',
};

export interface ManagedInstallation {
  method: Method;
  package?: string;
  files?: string[];
  /** How the method was known. */
  source: 'record' | 'classification';
}

/**
 * The method to upgrade or remove an installation with. upkeep's record wins
 * when it describes this very file (a release binary looks hand-copied to
 * the audit); otherwise the audit's classification, with dnf standing for
 * the rpm database (yum where only yum exists).
 */
export function managedBy(
  installation: Installation,
  record: InstallRecord | undefined,
  session: Pick<Session, 'platform'>,
  ownerPackage?: string,
): ManagedInstallation | null {
  // The audit cannot tell a release binary or a stub-free npm prefix from a file copied by hand; upkeep's record can.
  const unclassified = installation.method === 'manual' || installation.method === 'unknown';
  const sameFile = record?.files?.some((file) => file.path === installation.path || file.path === installation.realPath) ?? false;
  if (record && (sameFile || FROM_CLASSIFICATION[installation.method] === record.method || (unclassified && !record.files))) {
    return {
      method: record.method,
      ...(record.packages?.[0] ? { package: record.packages[0] } : {}),
      ...(record.files ? { files: record.files.map((file) => file.path) } : {}),
      source: 'record',
    };
  }
  let method = FROM_CLASSIFICATION[installation.method];
  if (!method) return null;
  if (method === 'dnf' && !session.platform.methods.includes('dnf') && session.platform.methods.includes('yum')) method = 'yum';
  if (method === 'dnf' && session.platform.family === 'suse') method = 'zypper';
  return {
    method,
    ...(ownerPackage ? { package: ownerPackage } : {}),
    ...(method === 'go' ? { files: [installation.path] } : {}),
    source: 'classification',
  };
}

/** The package that owns an installation, from its classification reason ("owned by dpkg package ripgrep"). */
export function ownerPackage(installation: Installation): string | undefined {
  return /package (\S+)/.exec(installation.reason)?.[1];
}

export async function installRecords(session: Session): Promise<Map<string, InstallRecord>> {
  const { records, warning } = await readRecords(session.paths.state);
  if (warning) session.warnings.push(warning);
  return records;
}
