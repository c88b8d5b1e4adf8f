import { existsSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as z from '../core/zod.ts';
import { UpkeepError } from '../core/errors.ts';
import { readJsonFile, writeJsonAtomic } from '../core/fs.ts';
import { PresetsSchema, ToolSchema, type Presets, type Tool } from './schema.ts';

/**
 * Loads catalog/tools/*.yaml and catalog/presets.yaml. Parsing and validating
 * 130 YAML files costs more than the rest of a warm audit, so the validated
 * result is kept in the user cache, keyed by every file's name, size and
 * modification time: editing or adding a file rebuilds it.
 */

export interface CatalogProblem {
  file: string;
  /** Dotted path of the field at fault; empty for the whole file. */
  field: string;
  message: string;
}

export interface Catalog {
  root: string;
  tools: Tool[];
  byId: Map<string, Tool>;
  presets: Presets;
  /** Files that failed validation; their tools are left out. */
  problems: CatalogProblem[];
}

interface CompiledCatalog {
  schemaVersion: 1;
  fingerprint: string;
  tools: Tool[];
  presets: Presets;
  problems: CatalogProblem[];
}

/** The catalog folder shipped beside the code, or UPKEEP_CATALOG_DIR. */
export function findCatalogRoot(environment: Readonly<Record<string, string | undefined>> = process.env): string {
  if (environment.UPKEEP_CATALOG_DIR) return environment.UPKEEP_CATALOG_DIR;
  let folder = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(folder, 'catalog');
    if (existsSync(join(candidate, 'tools'))) return candidate;
    const parent = dirname(folder);
    if (parent === folder) {
      throw new UpkeepError('E_CATALOG_MISSING', 'the tool catalog was not found beside upkeep', {
        hint: 'reinstall upkeep, or point UPKEEP_CATALOG_DIR at a folder holding tools/*.yaml',
      });
    }
    folder = parent;
  }
}

export interface LoadCatalogOptions {
  root: string;
  /** Where the compiled catalog is cached; no caching when absent. */
  cacheFile?: string;
}

export async function loadCatalog(options: LoadCatalogOptions): Promise<Catalog> {
  const toolsDir = join(options.root, 'tools');
  const presetsFile = join(options.root, 'presets.yaml');
  let names: string[];
  try {
    names = (await readdir(toolsDir)).filter((name) => name.endsWith('.yaml') || name.endsWith('.yml')).sort();
  } catch (error) {
    throw new UpkeepError('E_CATALOG_MISSING', `cannot read the catalog folder ${toolsDir}`, {
      hint: 'check UPKEEP_CATALOG_DIR or reinstall upkeep',
      cause: error,
    });
  }
  // Synchronous stats: two hundred of them answer from the kernel's cache in
  // about a millisecond, far less than the same number of thread-pool round trips.
  const stats = [...names.map((name) => join(toolsDir, name)), presetsFile].map((file) => {
    const info = statSync(file, { throwIfNoEntry: false });
    return info ? `${basename(file)}:${info.size}:${info.mtimeMs}` : `${basename(file)}:absent`;
  });
  const fingerprint = `${options.root}|${stats.join('|')}`;

  if (options.cacheFile) {
    const cached = await readJsonFile(options.cacheFile, (raw) => raw as CompiledCatalog).catch(() => null);
    if (cached?.status === 'ok' && cached.value.schemaVersion === 1 && cached.value.fingerprint === fingerprint) {
      return assemble(options.root, cached.value.tools, cached.value.presets, cached.value.problems);
    }
  }

  const { tools, presets, problems } = await parseCatalog(toolsDir, names, presetsFile);
  if (options.cacheFile) {
    const compiled: CompiledCatalog = { schemaVersion: 1, fingerprint, tools, presets, problems };
    // A cache that cannot be written only costs speed.
    await writeJsonAtomic(options.cacheFile, compiled).catch(() => undefined);
  }
  return assemble(options.root, tools, presets, problems);
}

function assemble(root: string, tools: Tool[], presets: Presets, problems: CatalogProblem[]): Catalog {
  return { root, tools, byId: new Map(tools.map((tool) => [tool.id, tool])), presets, problems };
}

async function parseCatalog(
  toolsDir: string,
  names: string[],
  presetsFile: string,
): Promise<{ tools: Tool[]; presets: Presets; problems: CatalogProblem[] }> {
  const { parse } = await import('../core/yaml.ts');
  const problems: CatalogProblem[] = [];
  const tools: Tool[] = [];
  const seen = new Map<string, string>();

  const parsed = await Promise.all(
    names.map(async (name) => {
      const file = join('tools', name);
      try {
        return { file, name, value: parse(await readFile(join(toolsDir, name), 'utf8')) as unknown };
      } catch (error) {
        problems.push({ file, field: '', message: `not valid YAML: ${(error as Error).message.split('\n')[0]}` });
        return null;
      }
    }),
  );
  for (const entry of parsed) {
    if (!entry) continue;
    const result = ToolSchema.safeParse(entry.value);
    if (!result.success) {
      problems.push(...zodProblems(entry.file, result.error));
      continue;
    }
    const tool: Tool = { ...result.data, binaries: result.data.binaries ?? [result.data.id] };
    const expected = entry.name.replace(/\.ya?ml$/, '');
    if (tool.id !== expected) {
      problems.push({ file: entry.file, field: 'id', message: `is "${tool.id}" but the file is named ${entry.name}` });
      continue;
    }
    if (seen.has(tool.id)) {
      problems.push({ file: entry.file, field: 'id', message: `"${tool.id}" is also defined in ${seen.get(tool.id)}` });
      continue;
    }
    seen.set(tool.id, entry.file);
    tools.push(tool);
  }

  let presets: Presets = {};
  try {
    const result = PresetsSchema.safeParse(parse(await readFile(presetsFile, 'utf8')) ?? {});
    if (result.success) presets = result.data;
    else problems.push(...zodProblems('presets.yaml', result.error));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      problems.push({ file: 'presets.yaml', field: '', message: `not valid YAML: ${(error as Error).message.split('\n')[0]}` });
    }
  }
  for (const [name, preset] of Object.entries(presets)) {
    preset.tools.forEach((id, index) => {
      if (!seen.has(id)) problems.push({ file: 'presets.yaml', field: `${name}.tools.${index}`, message: `names unknown tool "${id}"` });
    });
  }
  return { tools, presets, problems };
}

function zodProblems(file: string, error: z.core.$ZodError): CatalogProblem[] {
  return error.issues.map((issue) => ({ file, field: issue.path.map(String).join('.'), message: issue.message }));
}

/** Catalog ids closest to a mistyped name, for "did you mean". */
export function closestNames(name: string, candidates: Iterable<string>, limit = 3): string[] {
  const scored = [...candidates]
    .map((candidate) => ({ candidate, distance: editDistance(name.toLowerCase(), candidate) }))
    .filter(({ candidate, distance }) => distance <= Math.max(2, Math.floor(candidate.length / 3)) || candidate.includes(name.toLowerCase()))
    .sort((a, b) => a.distance - b.distance || a.candidate.localeCompare(b.candidate));
  return scored.slice(0, limit).map(({ candidate }) => candidate);
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
