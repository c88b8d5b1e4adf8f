import type { Installation, ToolReport } from '../audit/types.ts';
import type { Tool } from '../catalog/schema.ts';
import { UpkeepError } from '../core/errors.ts';
import { applyPlan } from './apply.ts';
import { installRecords, managedBy, ownerPackage, type ManagedInstallation } from './current.ts';
import type { ToolOutcome } from './install.ts';
import { planTool, type ToolPlan } from './plan.ts';
import { updateRecord } from './records.ts';
import type { Session } from './session.ts';

/**
 * `upkeep uninstall`: removes an installation with the method that
 * installed it. A system package is removed only when nothing else goes with
 * it, unless `--force` accepts the list that is shown.
 */

/** Tools reconcile and uninstall never remove: the system's own interpreters and package managers. */
export const SYSTEM_SAFELIST: ReadonlySet<string> = new Set([
  'python', 'python3', 'pip', 'pip3', 'node', 'npm', 'git', 'cargo', 'rustc', 'rustup', 'go', 'perl', 'ruby', 'gem',
  'bash', 'sh', 'zsh', 'coreutils', 'sudo', 'openssh', 'ssh', 'tar', 'gzip', 'curl', 'grep', 'sed', 'findutils', 'diffutils',
  'apt', 'apt-get', 'dpkg', 'dnf', 'yum', 'rpm', 'pacman', 'apk', 'zypper', 'brew', 'snap', 'flatpak', 'pipx', 'uv',
]);

export interface UninstallPlan {
  tool: Tool;
  installation: Installation;
  managed: ManagedInstallation;
  plan: ToolPlan;
  /** Other system packages the package manager would remove with it. */
  alsoRemoved: string[];
}

export async function planUninstall(session: Session, report: ToolReport, installation?: Installation): Promise<UninstallPlan> {
  const tool = session.catalog.byId.get(report.id)!;
  const target = installation ?? report.installations.find((entry) => entry.onPath) ?? report.installations[0];
  if (!target) throw new UpkeepError('E_NOT_INSTALLED', `${tool.id} is not installed`, { hint: '`upkeep audit --all` lists what is installed' });
  const records = await installRecords(session);
  const managed = managedBy(target, records.get(tool.id), session, ownerPackage(target));
  if (!managed) {
    throw new UpkeepError('E_NO_METHOD', `${tool.id} at ${target.path} was installed ${target.method === 'manual' ? 'by hand' : `with ${target.method}`}; upkeep does not know how to remove it`, {
      hint: `remove ${target.path} yourself if you are sure nothing needs it`,
    });
  }
  const plan = planTool(
    tool,
    { action: 'uninstall', installed: { method: managed.method, ...(managed.package ? { package: managed.package } : {}), files: managed.files ?? [target.path] } },
    session.planContext,
  );
  const alsoRemoved = managed.method === 'apt' ? await aptAlsoRemoved(session, plan.packages) : [];
  return { tool, installation: target, managed, plan, alsoRemoved };
}

/** `apt-get -s remove`: what apt would take away with the package (its reverse dependencies). */
async function aptAlsoRemoved(session: Session, packages: string[]): Promise<string[]> {
  if (packages.length === 0) return [];
  const result = await session.executor.run(['apt-get', '-s', 'remove', ...packages], { timeout: 60_000, mode: 'always', env: { ...session.environment, LC_ALL: 'C' } });
  const removed = [...result.stdout.matchAll(/^Remv (\S+)/gm)].map((match) => match[1]!.replace(/:\w+$/, ''));
  return removed.filter((name) => !packages.includes(name));
}

export async function uninstallOne(session: Session, planned: UninstallPlan, force: boolean): Promise<ToolOutcome> {
  const { tool, plan, alsoRemoved } = planned;
  if (alsoRemoved.length > 0 && !force) {
    throw new UpkeepError('E_UNINSTALL_REFUSED', `removing ${plan.packages.join(', ')} would also remove ${alsoRemoved.join(', ')}, which depend on it`, {
      hint: 'pass --force if that is what you want',
      details: { alsoRemoved },
    });
  }
  // Other system package managers have no cheap simulation; protect the tools the system itself runs on.
  if (!force && SYSTEM_SAFELIST.has(tool.id) && ['dnf', 'yum', 'pacman', 'apk', 'zypper'].includes(plan.method)) {
    throw new UpkeepError('E_UNINSTALL_REFUSED', `${tool.id} is a system tool other packages usually depend on`, { hint: 'pass --force to remove it anyway' });
  }
  const steps = await applyPlan(plan, session.applyContext);
  // A record that describes another installation of the tool (the one reconcile keeps) stays.
  if (!session.executor.dryRun && planned.managed.source === 'record') await updateRecord(session.paths.state, tool.id, null);
  session.refresh();
  return { tool: tool.id, status: 'uninstalled', method: plan.method, path: planned.installation.path, steps, ...(alsoRemoved.length > 0 ? { reason: `also removed: ${alsoRemoved.join(', ')}` } : {}) };
}
