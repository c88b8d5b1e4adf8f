import type { Installation, ToolReport } from '../audit/types.ts';
import type { Method } from '../catalog/schema.ts';
import { describeError } from '../core/errors.ts';
import { installRecords, managedBy, ownerPackage } from './current.ts';
import type { InstallRecord } from './records.ts';
import { recipeMethods } from './managers.ts';
import { selectMethod } from './select.ts';
import type { Session } from './session.ts';
import { SYSTEM_SAFELIST, planUninstall, uninstallOne } from './uninstall.ts';

/**
 * `upkeep reconcile` (seed 000, reconciliation): for a tool installed more
 * than once, chooses the installation to keep by policy, and in aggressive
 * mode removes the others, never a safelisted system tool. A dry run unless
 * `--apply`.
 */

export type ReconcileMode = 'parallel' | 'aggressive';

export interface ReconcileEntry {
  path: string;
  version: string | null;
  method: string;
  active: boolean;
  action: 'keep' | 'remove' | 'kept-safelisted' | 'kept-unmanaged' | 'removed' | 'failed';
  reason: string;
}

export interface ReconcileResult {
  tool: string;
  preferred: string;
  reason: string;
  installations: ReconcileEntry[];
}

export async function reconcileTool(
  session: Session,
  report: ToolReport,
  options: { mode: ReconcileMode; apply: boolean; force: boolean },
): Promise<ReconcileResult> {
  const tool = session.catalog.byId.get(report.id)!;
  const installations = report.installations.filter((installation) => !installation.differentTool);
  const records = await installRecords(session);
  const active = installations.find((installation) => installation.onPath) ?? installations[0]!;
  const { preferred, reason } = choosePreferred(session, report, installations, active, records.get(tool.id));
  const safelisted = SYSTEM_SAFELIST.has(tool.id) || session.config.install.safelist.includes(tool.id) || tool.binaries.some((binary) => SYSTEM_SAFELIST.has(binary));

  const entries: ReconcileEntry[] = [];
  for (const installation of installations) {
    const base = { path: installation.path, version: installation.version, method: installation.method, active: installation === active };
    if (installation === preferred) {
      entries.push({ ...base, action: 'keep', reason });
      continue;
    }
    if (options.mode === 'parallel') {
      entries.push({ ...base, action: 'keep', reason: 'parallel mode keeps every installation' });
      continue;
    }
    if (safelisted) {
      entries.push({ ...base, action: 'kept-safelisted', reason: `${tool.id} is a protected system tool; it is never removed` });
      continue;
    }
    const managed = managedBy(installation, records.get(tool.id), session, ownerPackage(installation));
    if (!managed) {
      entries.push({ ...base, action: 'kept-unmanaged', reason: `installed ${installation.method === 'manual' ? 'by hand' : `with ${installation.method}`}; upkeep cannot remove it safely` });
      continue;
    }
    if (!options.apply) {
      entries.push({ ...base, action: 'remove', reason: `would be removed with ${managed.method} (pass --apply)` });
      continue;
    }
    try {
      const planned = await planUninstall(session, report, installation);
      await uninstallOne(session, planned, options.force);
      entries.push({ ...base, action: 'removed', reason: `removed with ${managed.method}` });
    } catch (error) {
      entries.push({ ...base, action: 'failed', reason: describeError(error) });
    }
  }
  return { tool: tool.id, preferred: preferred.path, reason, installations: entries };
}

/** The installation whose method ranks first by the same policy `upkeep install` uses; the active one otherwise. */
function choosePreferred(
  session: Session,
  report: ToolReport,
  installations: Installation[],
  active: Installation,
  record: InstallRecord | undefined,
): { preferred: Installation; reason: string } {
  const tool = session.catalog.byId.get(report.id)!;
  if (recipeMethods(tool).length > 0) {
    try {
      const selection = selectMethod(tool, { platform: session.platform, config: session.config.install });
      for (const choice of [selection.chosen, ...selection.alternatives]) {
        // The record counts: a release binary or a package upkeep installed looks hand-copied to the audit.
        const match = installations.find((installation) => managedBy(installation, record, session)?.method === (choice.method as Method));
        if (match) return { preferred: match, reason: `installed with ${choice.method}, the preferred method here (${choice.reason})` };
      }
    } catch {
      // No usable method here: fall back to what runs now.
    }
  }
  return { preferred: active, reason: 'the one that runs now (first on PATH)' };
}
