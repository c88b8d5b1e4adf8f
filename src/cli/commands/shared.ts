import { join } from 'node:path';
import { findCatalogRoot, loadCatalog, type Catalog } from '../../catalog/loader.ts';
import { loadConfig, type LoadedConfig } from '../../core/config.ts';
import type { Context } from '../context.ts';

export async function catalogFor(context: Context): Promise<Catalog> {
  return loadCatalog({ root: findCatalogRoot(context.environment), cacheFile: join(context.paths.cache, 'catalog-v1.json') });
}

export async function configFor(context: Context, flags: Record<string, unknown> = {}): Promise<LoadedConfig> {
  return loadConfig({ paths: context.paths, environment: context.environment, cwd: context.cwd, flags });
}

/** Problems in user-added catalog files, as warnings: the rest of the catalog still works. */
export function catalogWarnings(catalog: Catalog): string[] {
  return catalog.problems.map(
    (problem) => `catalog ${problem.file}${problem.field ? ` (${problem.field})` : ''}: ${problem.message}; run \`upkeep catalog validate\``,
  );
}
