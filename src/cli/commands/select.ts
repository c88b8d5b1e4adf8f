import { closestNames, type Catalog } from '../../catalog/loader.ts';
import type { Tool } from '../../catalog/schema.ts';
import { ExitCode, UpkeepError } from '../../core/errors.ts';

/**
 * Turns what a user typed (ids, aliases, binary names, `--only a,b`,
 * `--preset NAME`) into catalog tools, in catalog order. An unknown name is a
 * usage error that lists the closest names.
 */
export function selectTools(catalog: Catalog, names: readonly string[], preset: string | undefined): { tools: Tool[]; explicit: boolean } {
  const wanted = new Set<string>();
  if (preset !== undefined) {
    const found = catalog.presets[preset];
    if (!found) {
      const suggestions = closestNames(preset, Object.keys(catalog.presets));
      throw new UpkeepError('E_UNKNOWN_PRESET', `there is no preset named "${preset}"`, {
        hint: suggestions.length > 0
          ? `did you mean ${suggestions.join(', ')}? \`upkeep catalog presets\` lists them all`
          : '`upkeep catalog presets` lists the presets',
        exitCode: ExitCode.usage,
      });
    }
    for (const id of found.tools) wanted.add(id);
  }
  const lookup = nameIndex(catalog);
  const unknown: string[] = [];
  for (const name of names) {
    const id = lookup.get(name.toLowerCase());
    if (id) wanted.add(id);
    else unknown.push(name);
  }
  if (unknown.length > 0) {
    const first = unknown[0]!;
    const suggestions = closestNames(first, lookup.keys());
    throw new UpkeepError(
      'E_UNKNOWN_TOOL',
      `${unknown.length === 1 ? 'unknown tool' : 'unknown tools'}: ${unknown.join(', ')}`,
      {
        hint: suggestions.length > 0
          ? `did you mean ${suggestions.map((name) => lookup.get(name) ?? name).filter(unique).join(', ')}? \`upkeep catalog list\` shows every tool`
          : '`upkeep catalog list` shows every tool',
        exitCode: ExitCode.usage,
        details: { unknown, suggestions },
      },
    );
  }
  const explicit = names.length > 0 || preset !== undefined;
  return { tools: explicit ? catalog.tools.filter((tool) => wanted.has(tool.id)) : catalog.tools, explicit };
}

function unique<T>(value: T, index: number, all: T[]): boolean {
  return all.indexOf(value) === index;
}

/** Every name a tool answers to, lower-cased, mapped to its id; ids win over binaries. */
function nameIndex(catalog: Catalog): Map<string, string> {
  const index = new Map<string, string>();
  for (const tool of catalog.tools) {
    for (const name of [...tool.binaries, ...(tool.aliases ?? [])]) {
      if (!index.has(name.toLowerCase())) index.set(name.toLowerCase(), tool.id);
    }
  }
  for (const tool of catalog.tools) index.set(tool.id, tool.id);
  return index;
}

/** `--only a,b --only c` and `--only "a b"` both work. */
export function splitList(values: readonly string[] | string | undefined): string[] {
  if (values === undefined) return [];
  const list = Array.isArray(values) ? values : [values];
  return list.flatMap((value) => value.split(/[,\s]+/)).filter(Boolean);
}
