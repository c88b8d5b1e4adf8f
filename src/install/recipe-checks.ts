import type { CatalogProblem, Catalog } from '../catalog/loader.ts';
import { PLATFORM_KEYS, type Groups, type Packages, type Tool } from '../catalog/schema.ts';
import { isUpkeepError } from '../core/errors.ts';
import { renderBinary } from './binary.ts';
import { recipeMethods } from './managers.ts';

/**
 * What the schema cannot check about recipes: templates render for every
 * platform they claim, named groups and tools exist, `prefer` names methods
 * the recipe has. Run by `upkeep catalog validate` and by the catalog test.
 */
export function recipeProblems(catalog: Pick<Catalog, 'tools' | 'byId'>, groups: Groups): CatalogProblem[] {
  const problems: CatalogProblem[] = [];
  for (const tool of catalog.tools) problems.push(...toolProblems(tool, catalog, groups));
  return problems;
}

function toolProblems(tool: Tool, catalog: Pick<Catalog, 'byId'>, groups: Groups): CatalogProblem[] {
  const file = `tools/${tool.id}.yaml`;
  const problems: CatalogProblem[] = [];
  const add = (field: string, message: string) => problems.push({ file, field, message });
  const methods = recipeMethods(tool);
  if (tool.install && methods.length === 0) add('install', 'has no method');
  tool.prefer?.forEach((method, index) => {
    if (!methods.includes(method)) add(`prefer.${index}`, `names ${method}, which the recipe does not have`);
  });
  const checkRequires = (requires: Tool['requires'], field: string) => {
    requires?.tools?.forEach((id, index) => {
      if (!catalog.byId.has(id)) add(`${field}.tools.${index}`, `names unknown tool "${id}"`);
    });
    requires?.packages?.forEach((packages, index) => checkPackages(packages, `${field}.packages.${index}`));
  };
  const checkPackages = (packages: Packages, field: string) => {
    if (typeof packages === 'string' && !groups[packages]) add(field, `names unknown package group "${packages}" (see catalog/groups.yaml)`);
  };
  checkRequires(tool.requires, 'requires');
  for (const method of methods) {
    const raw = tool.install?.[method];
    if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
      if ('requires' in raw) checkRequires(raw.requires, `install.${method}.requires`);
      if ('repository' in raw && raw.repository) checkPackages(raw.repository, `install.${method}.repository`);
    }
  }
  const binary = tool.install?.binary;
  if (binary) {
    const claimed = binary.targets ? (Object.keys(binary.targets) as Array<(typeof PLATFORM_KEYS)[number]>) : PLATFORM_KEYS;
    for (const key of claimed) {
      const [os, arch] = key.split('-') as ['linux' | 'darwin', 'x86_64' | 'aarch64'];
      try {
        renderBinary(binary, { version: '1.2.3', os, arch, binaries: tool.binaries });
      } catch (error) {
        add('install.binary', `does not render for ${key}: ${isUpkeepError(error) ? error.message : (error as Error).message}`);
        break;
      }
    }
  }
  return problems;
}
