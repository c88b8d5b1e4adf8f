import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as z from '../core/zod.ts';
import type { CatalogProblem } from './loader.ts';
import {
  GroupsSchema,
  HandlerFileSchema,
  HandlerSchema,
  type Family,
  type Groups,
  type Handler,
  type HandlerFile,
  type Method,
  type Packages,
  type RemedyOption,
  type Strategy,
} from './schema.ts';

/**
 * Failure handlers (seed 001): catalog/handlers/*.yaml, one file per layer
 * unit. Beyond the schema, the loader checks what only the whole catalog can
 * tell: ids unique across files, groups and tools that exist, and that every
 * pattern still matches the real output it was written for.
 */

export type HandlerLayer = HandlerFile['layer'];

export type LoadedHandler = Handler & {
  layer: HandlerLayer;
  /** Tool layer: the catalog tool the handler belongs to. */
  tool?: string;
  /** Method layer: the methods whose failures it reads. */
  methods?: Method[];
  /** Relative to the catalog root, e.g. handlers/apt.yaml. */
  file: string;
  /** The pattern compiled case-insensitive and multi-line (`^` and `$` are line ends). */
  regex: RegExp;
};

export interface LoadedHandlers {
  handlers: LoadedHandler[];
  problems: CatalogProblem[];
}

export interface LoadHandlersOptions {
  /** Groups already loaded; read from groups.yaml when absent. */
  groups?: Groups;
}

/** The flags every handler pattern is compiled with; docs/remediation.md promises these. */
export const HANDLER_PATTERN_FLAGS = 'im';

/** The field each strategy reads; an option without it cannot be applied. */
const REQUIRED_FIELD: Record<Strategy, keyof RemedyOption | null> = {
  'install-packages': 'packages',
  'install-dependency': 'dependency',
  'switch-method': 'method',
  'retry-with-modifier': 'modifier',
  'cleanup-retry': 'cleanup',
  'fix-environment': 'env',
  retry: null,
  manual: 'instructions',
};

/** Fields that only one strategy reads; on another they would be silently ignored. */
const OWNED_FIELD: Partial<Record<keyof RemedyOption, Strategy>> = {
  packages: 'install-packages',
  dependency: 'install-dependency',
  method: 'switch-method',
  modifier: 'retry-with-modifier',
  cleanup: 'cleanup-retry',
  cleanupNeedsRoot: 'cleanup-retry',
  env: 'fix-environment',
};

export async function loadGroups(root: string): Promise<{ groups: Groups; problems: CatalogProblem[] }> {
  const { parse } = await import('../core/yaml.ts');
  const file = 'groups.yaml';
  let text: string;
  try {
    text = await readFile(join(root, file), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { groups: {}, problems: [] };
    return { groups: {}, problems: [{ file, field: '', message: `cannot be read: ${(error as Error).message}` }] };
  }
  let raw: unknown;
  try {
    raw = parse(text) ?? {};
  } catch (error) {
    return { groups: {}, problems: [{ file, field: '', message: `not valid YAML: ${firstLine(error)}` }] };
  }
  const result = GroupsSchema.safeParse(raw);
  if (!result.success) return { groups: {}, problems: zodProblems(file, result.error) };
  return { groups: result.data, problems: [] };
}

export async function loadHandlers(root: string, options: LoadHandlersOptions = {}): Promise<LoadedHandlers> {
  const { parse } = await import('../core/yaml.ts');
  const problems: CatalogProblem[] = [];
  // groups.yaml's own problems are loadGroups' to report; while it is broken,
  // every group name would look unknown, so group names go unchecked.
  let groups: Groups | null = options.groups ?? null;
  if (!groups) {
    const loaded = await loadGroups(root);
    groups = loaded.problems.length > 0 ? null : loaded.groups;
  }
  const tools = await toolIds(root);

  let names: string[];
  try {
    names = (await readdir(join(root, 'handlers'))).filter((name) => /\.ya?ml$/.test(name)).sort();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { handlers: [], problems };
    return { handlers: [], problems: [...problems, { file: 'handlers', field: '', message: `cannot be read: ${(error as Error).message}` }] };
  }

  const texts = await Promise.all(names.map((name) => readFile(join(root, 'handlers', name), 'utf8')));
  const handlers: LoadedHandler[] = [];
  const seen = new Map<string, string>();
  names.forEach((name, index) => {
    const file = join('handlers', name);
    let raw: unknown;
    try {
      raw = parse(texts[index]!);
    } catch (error) {
      problems.push({ file, field: '', message: `not valid YAML: ${firstLine(error)}` });
      return;
    }
    const parsed = parseHandlerFile(file, raw, problems);
    if (!parsed) return;
    if (parsed.layer === 'tool' && !tools.has(parsed.tool)) {
      problems.push({ file, field: 'tool', message: `names unknown tool "${parsed.tool}" (no tools/${parsed.tool}.yaml)` });
    }
    parsed.handlers.forEach((handler, position) => {
      const field = `handlers.${position}`;
      const earlier = seen.get(handler.id);
      if (earlier) {
        problems.push({ file, field: `${field}.id`, message: `"${handler.id}" is also defined in ${earlier}` });
        return;
      }
      seen.set(handler.id, file);
      problems.push(...checkHandler(file, field, handler, groups, tools));
      handlers.push({
        ...handler,
        layer: parsed.layer,
        ...(parsed.layer === 'tool' ? { tool: parsed.tool } : {}),
        ...(parsed.layer === 'method' ? { methods: parsed.methods } : {}),
        file,
        regex: new RegExp(handler.pattern, HANDLER_PATTERN_FLAGS),
      });
    });
  });
  return { handlers, problems };
}

/**
 * Validates one file handler by handler, so that a mistake in one handler is
 * reported precisely and does not take the file's other handlers with it.
 */
function parseHandlerFile(file: string, raw: unknown, problems: CatalogProblem[]): HandlerFile | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    problems.push({ file, field: '', message: 'must be a mapping with layer and handlers' });
    return null;
  }
  const record = raw as Record<string, unknown>;
  const member = fileSchemaFor(record.layer);
  if (!member) {
    problems.push({ file, field: 'layer', message: 'must be one of tool, method, infrastructure' });
    return null;
  }
  let candidate: Record<string, unknown> = record;
  if (Array.isArray(record.handlers)) {
    const kept = (record.handlers as unknown[]).filter((handler, position) => {
      const result = HandlerSchema.safeParse(handler);
      if (!result.success) problems.push(...zodProblems(file, result.error, ['handlers', position]));
      return result.success;
    });
    if (kept.length === 0 && record.handlers.length > 0) return null;
    candidate = { ...record, handlers: kept };
  }
  const result = member.safeParse(candidate);
  if (!result.success) {
    problems.push(...zodProblems(file, result.error));
    return null;
  }
  return result.data as HandlerFile;
}

function fileSchemaFor(layer: unknown): z.ZodMiniType | undefined {
  const members = HandlerFileSchema.def.options as readonly z.ZodMiniObject[];
  return members.find((member) => {
    const literal = member.def.shape.layer as z.ZodMiniLiteral | undefined;
    return literal?.def.values.includes(layer as never);
  });
}

function checkHandler(file: string, field: string, handler: Handler, groups: Groups | null, tools: ReadonlySet<string>): CatalogProblem[] {
  const problems: CatalogProblem[] = [];
  const problem = (at: string, message: string) => problems.push({ file, field: at ? `${field}.${at}` : field, message });
  const regex = new RegExp(handler.pattern, HANDLER_PATTERN_FLAGS);

  // Only an exit code may stand in for a pattern (137: killed); otherwise it would match every failure.
  if (handler.exitCode === undefined && regex.test('')) problem('pattern', 'matches an empty output; make it specific to the failure');
  if (!regex.test(handler.example)) problem('pattern', 'does not match the handler\'s own example');
  if (handler.exitCode !== undefined && handler.exampleExitCode !== handler.exitCode) {
    problem('exampleExitCode', `must be ${handler.exitCode}, the exit code the handler requires`);
  }

  const recommended = handler.options.filter((option) => option.recommended);
  if (recommended.length > 1) {
    problem('options', `recommends ${recommended.length} options (${recommended.map((option) => option.id).join(', ')}); at most one may be`);
  }
  const optionIds = new Set<string>();
  handler.options.forEach((option, position) => {
    const at = `options.${position}`;
    if (optionIds.has(option.id)) problem(`${at}.id`, `"${option.id}" is used twice in this handler`);
    optionIds.add(option.id);
    if (option.recommended && option.strategy === 'manual') problem(`${at}.recommended`, 'a manual option cannot be applied automatically, so it cannot be recommended');

    const required = REQUIRED_FIELD[option.strategy];
    if (required && option[required] === undefined) problem(at, `strategy ${option.strategy} needs "${required}"`);
    for (const [name, owner] of Object.entries(OWNED_FIELD)) {
      if (owner !== option.strategy && option[name as keyof RemedyOption] !== undefined) {
        problem(`${at}.${name}`, `is only read by strategy ${owner}, not ${option.strategy}`);
      }
    }
    if (option.modifier && !option.modifier.args?.length && !option.modifier.env && option.modifier.wait === undefined) {
      problem(`${at}.modifier`, 'changes nothing: give args, env or wait');
    }
    if (groups && typeof option.packages === 'string' && !groups[option.packages]) {
      problem(`${at}.packages`, `names unknown group "${option.packages}" (not in groups.yaml)`);
    }
    if (option.packages !== undefined && typeof option.packages !== 'string' && Object.keys(option.packages).length === 0) {
      problem(`${at}.packages`, 'names no family');
    }
    if (option.dependency !== undefined && !tools.has(option.dependency)) {
      problem(`${at}.dependency`, `names unknown tool "${option.dependency}" (no tools/${option.dependency}.yaml)`);
    }
  });
  return problems;
}

/**
 * The package names `packages` gives for one family: a group is looked up in
 * groups.yaml. null when the family has none or the group is unknown.
 */
export function resolvePackages(packages: Packages, family: Family, groups: Groups): string[] | null {
  const names = typeof packages === 'string' ? groups[packages]?.[family] : packages[family];
  return names && names.length > 0 ? [...names] : null;
}

async function toolIds(root: string): Promise<Set<string>> {
  try {
    const names = await readdir(join(root, 'tools'));
    return new Set(names.filter((name) => /\.ya?ml$/.test(name)).map((name) => name.replace(/\.ya?ml$/, '')));
  } catch {
    return new Set();
  }
}

function zodProblems(file: string, error: z.core.$ZodError, prefix: PropertyKey[] = []): CatalogProblem[] {
  return error.issues.map((issue) => ({ file, field: [...prefix, ...issue.path].map(String).join('.'), message: issue.message }));
}

function firstLine(error: unknown): string {
  return (error as Error).message.split('\n')[0] ?? '';
}
