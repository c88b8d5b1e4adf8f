import { CATEGORIES } from '../../catalog/schema.ts';
import type { AuditDocument, ToolReport, ToolStatus } from '../../audit/types.ts';
import { colors, formatColumns, type Colors } from './colors.ts';

export type SortKey = 'category' | 'name' | 'status';

const STATUS_ORDER: Record<ToolStatus, number> = {
  'different-tool': 0,
  outdated: 1,
  unknown: 2,
  ahead: 3,
  'up-to-date': 4,
  'not-installed': 5,
};
const DELTA_ORDER = { major: 0, minor: 1, patch: 2 } as const;

export function sortReports(reports: ToolReport[], key: SortKey): ToolReport[] {
  // Ids are lower-case ASCII: a plain comparison orders them as localeCompare would, much faster.
  const byName = (a: ToolReport, b: ToolReport): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const sorted = [...reports];
  if (key === 'name') return sorted.sort(byName);
  if (key === 'status') {
    return sorted.sort(
      (a, b) =>
        STATUS_ORDER[a.status] - STATUS_ORDER[b.status] ||
        (a.delta ? DELTA_ORDER[a.delta] : 3) - (b.delta ? DELTA_ORDER[b.delta] : 3) ||
        byName(a, b),
    );
  }
  return sorted.sort((a, b) => CATEGORIES.indexOf(a.category) - CATEGORIES.indexOf(b.category) || byName(a, b));
}

export function statusLabel(report: ToolReport, c: Colors): string {
  switch (report.status) {
    case 'up-to-date':
      return c.green('up to date');
    case 'outdated':
      return report.delta === 'major' ? c.red(`outdated (${report.delta})`) : c.yellow(`outdated (${report.delta})`);
    case 'ahead':
      return c.cyan('ahead');
    case 'not-installed':
      return c.dim('not installed');
    case 'different-tool':
      return c.magenta('different tool');
    case 'unknown':
      return c.dim('unknown');
  }
}

export interface RenderAuditOptions {
  color: boolean;
  /** List not-installed tools as rows (otherwise one summary line). */
  showMissing: boolean;
  failOn?: string | undefined;
}

export function renderAudit(document: AuditDocument, options: RenderAuditOptions): string {
  const c = colors(options.color);
  const reports = document.tools;
  const shown = options.showMissing ? reports : reports.filter((report) => report.status !== 'not-installed');
  const lines: string[] = [];
  const header = [c.bold('TOOL'), c.bold('INSTALLED'), c.bold('LATEST'), c.bold('STATUS'), c.bold('VIA')];
  const rowFor = (report: ToolReport): string[] => [
    report.id,
    report.installed?.version ?? (report.installed ? '?' : '-'),
    report.latest ? `${report.latest.version}${report.latest.stale ? c.dim('*') : ''}` : '-',
    statusLabel(report, c),
    report.installed ? report.installed.method : '',
  ];

  // Rows are grouped under a category heading when sorted by category.
  const grouped = isGroupedByCategory(shown);
  const rows: string[][] = [header];
  const headings = new Map<number, string>();
  let previous: string | undefined;
  for (const report of shown) {
    if (grouped && report.category !== previous) {
      headings.set(rows.length, report.category);
      previous = report.category;
    }
    rows.push(rowFor(report));
  }
  const table = formatColumns(rows, '  ').split('\n');
  table.forEach((line, index) => {
    const heading = headings.get(index);
    if (heading) lines.push(c.bold(c.underline(heading)));
    lines.push(line);
  });
  if (shown.length === 0) lines.push('  (no installed tools among those audited)');

  const notes = reports.filter((report) => report.status === 'different-tool' || report.status === 'unknown');
  if (notes.length > 0) {
    lines.push('', c.bold('Notes'));
    for (const report of notes) lines.push(`  ${report.id}: ${report.reason ?? 'unknown'}`);
  }
  const upgrades = reports.filter((report) => report.status === 'outdated');
  if (upgrades.length > 0) {
    lines.push('', c.bold('Upgrades') + c.dim(' (the command behind each one; `upkeep upgrade TOOL` runs it for you)'));
    lines.push(
      formatColumns(
        upgrades.map((report) => [
          report.id,
          `${report.installed?.version ?? '?'} → ${report.latest?.version ?? '?'}`,
          report.upgrade ?? c.dim(`no command for ${report.installed?.method ?? 'this'} installs; see ${report.latest?.url ?? 'upstream'}`),
        ]),
        '  ',
      ),
    );
  }
  if (reports.some((report) => report.latest?.stale)) {
    lines.push('', c.dim('* latest version from a cache older than its time to live, or a fallback after a failed look-up'));
  }
  const missing = reports.filter((report) => report.status === 'not-installed');
  if (!options.showMissing && missing.length > 0) {
    lines.push('', c.dim(`not installed (${missing.length}): ${missing.map((report) => report.id).join(', ')}`));
  }
  lines.push('', summaryLine(reports, c, document.meta.offline));
  return lines.join('\n');
}

function isGroupedByCategory(reports: ToolReport[]): boolean {
  for (let index = 1; index < reports.length; index++) {
    if (CATEGORIES.indexOf(reports[index]!.category) < CATEGORIES.indexOf(reports[index - 1]!.category)) return false;
  }
  return true;
}

export function summaryLine(reports: ToolReport[], c: Colors, offline: boolean): string {
  const count = (status: ToolStatus): number => reports.filter((report) => report.status === status).length;
  const installed = reports.filter((report) => report.installed).length;
  const outdated = count('outdated');
  const major = reports.filter((report) => report.delta === 'major').length;
  const parts = [
    `${installed} installed`,
    c.green(`${count('up-to-date')} up to date`),
    outdated > 0 ? c.yellow(`${outdated} outdated${major > 0 ? ` (${major} major)` : ''}`) : `0 outdated`,
  ];
  if (count('ahead') > 0) parts.push(`${count('ahead')} ahead`);
  if (count('unknown') > 0) parts.push(`${count('unknown')} unknown`);
  if (count('different-tool') > 0) parts.push(c.magenta(`${count('different-tool')} different tool`));
  parts.push(`${count('not-installed')} not installed`);
  return `${reports.length} tools: ${parts.join(', ')}${offline ? c.dim(' (offline)') : ''}`;
}
