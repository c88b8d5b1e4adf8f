import { Option, type Command } from 'commander';
import { closestNames, findCatalogRoot, loadCatalog } from '../../catalog/loader.ts';
import { CATEGORIES, METHODS } from '../../catalog/schema.ts';
import { ExitCode, UpkeepError } from '../../core/errors.ts';
import { colors, formatColumns } from '../output/colors.ts';
import type { Handler } from '../run.ts';
import { catalogFor, catalogWarnings } from './shared.ts';

export function registerCatalogCommands(program: Command, run: <T>(handler: Handler<T>) => (...args: unknown[]) => Promise<void>): void {
  const catalog = program.command('catalog').summary('list, show and validate the tool catalog');
  catalog
    .command('list')
    .summary('list the tools upkeep knows')
    .addOption(new Option('--category <name>', 'only tools of this category').choices([...CATEGORIES]))
    .action(run(listHandler));
  catalog.command('show').summary('show one tool\'s catalog entry').argument('<tool>', 'tool id').action(run(showHandler));
  catalog.command('presets').summary('list the named sets of tools').action(run(presetsHandler));
  catalog
    .command('validate')
    .summary('check every catalog file; exits 1 and names each bad file, field and reason')
    .option('--dir <path>', 'catalog folder to check (default: the one upkeep uses)')
    .action(run(validateHandler));
  catalog.command('stats').summary('count tools, recipes, handlers, presets and tools per install method').action(run(statsHandler));
}

const listHandler: Handler<{ category?: string }> = async (options, context) => {
  const catalog = await catalogFor(context);
  const tools = catalog.tools.filter((tool) => !options.category || tool.category === options.category);
  const data = tools.map((tool) => ({
    id: tool.id,
    name: tool.name,
    category: tool.category,
    binaries: tool.binaries,
    upstream: tool.upstream.source,
    description: tool.description,
  }));
  return {
    exitCode: ExitCode.success,
    data,
    warnings: catalogWarnings(catalog),
    human: (color) => {
      const c = colors(color);
      const rows = [[c.bold('ID'), c.bold('CATEGORY'), c.bold('UPSTREAM'), c.bold('DESCRIPTION')]];
      for (const tool of data) rows.push([tool.id, tool.category, tool.upstream, tool.description]);
      return `${formatColumns(rows)}\n\n${data.length} tools`;
    },
  };
};

const showHandler: Handler<Record<string, never>> = async (_options, context, operands) => {
  const catalog = await catalogFor(context);
  const id = operands[0]!;
  const tool = catalog.byId.get(id) ?? catalog.tools.find((entry) => entry.binaries.includes(id) || entry.aliases?.includes(id));
  if (!tool) {
    const suggestions = closestNames(id, catalog.byId.keys());
    throw new UpkeepError('E_UNKNOWN_TOOL', `unknown tool: ${id}`, {
      hint: suggestions.length > 0 ? `did you mean ${suggestions.join(', ')}?` : '`upkeep catalog list` shows every tool',
      exitCode: ExitCode.usage,
    });
  }
  const { stringify } = await import('../../core/yaml.ts');
  return { exitCode: ExitCode.success, data: tool, human: () => stringify(tool).trimEnd() };
};

const presetsHandler: Handler<Record<string, never>> = async (_options, context) => {
  const catalog = await catalogFor(context);
  return {
    exitCode: ExitCode.success,
    data: catalog.presets,
    human: (color) => {
      const c = colors(color);
      return formatColumns(
        Object.entries(catalog.presets).map(([name, preset]) => [c.bold(name), `${preset.description} (${preset.tools.length} tools)`]),
      );
    },
  };
};

const validateHandler: Handler<{ dir?: string }> = async (options, context) => {
  const root = options.dir ?? findCatalogRoot(context.environment);
  // Always from the files themselves, never from the compiled cache.
  const catalog = await loadCatalog({ root });
  const [{ loadGroups, loadHandlers }, { recipeProblems }] = await Promise.all([import('../../catalog/handlers.ts'), import('../../install/recipe-checks.ts')]);
  const [groups, handlers] = await Promise.all([loadGroups(root), loadHandlers(root)]);
  const problems = [...catalog.problems, ...groups.problems, ...recipeProblems(catalog, groups.groups), ...handlers.problems];
  const ok = problems.length === 0;
  const summary = `${catalog.tools.length} tools (${catalog.tools.filter((tool) => tool.install).length} with recipes), ${Object.keys(catalog.presets).length} presets, ${Object.keys(groups.groups).length} package groups and ${handlers.handlers.length} failure handlers`;
  return {
    exitCode: ok ? ExitCode.success : ExitCode.failure,
    data: {
      root,
      tools: catalog.tools.length,
      presets: Object.keys(catalog.presets).length,
      groups: Object.keys(groups.groups).length,
      handlers: handlers.handlers.length,
      problems,
    },
    human: (color) => {
      const c = colors(color);
      if (ok) return `${c.green('ok')}: ${summary} in ${root} are valid`;
      const lines = problems.map((problem) => `${c.red('invalid')} ${problem.file}${problem.field ? ` ${c.bold(problem.field)}` : ''}: ${problem.message}`);
      lines.push('', `${problems.length} problem(s); ${summary}`);
      return lines.join('\n');
    },
  };
};

const statsHandler: Handler<Record<string, never>> = async (_options, context) => {
  const catalog = await catalogFor(context);
  const { loadHandlers } = await import('../../catalog/handlers.ts');
  const handlers = await loadHandlers(catalog.root);
  const methods: Record<string, number> = Object.fromEntries(METHODS.map((method) => [method, 0]));
  for (const tool of catalog.tools) for (const method of METHODS) if (tool.install?.[method] !== undefined) methods[method]! += 1;
  const data = {
    tools: catalog.tools.length,
    toolsWithRecipes: catalog.tools.filter((tool) => tool.install && Object.keys(tool.install).length > 0).length,
    handlers: handlers.handlers.length,
    presets: Object.keys(catalog.presets).length,
    methods,
  };
  return {
    exitCode: ExitCode.success,
    data,
    warnings: catalogWarnings(catalog),
    human: (color) => {
      const c = colors(color);
      return [
        `${c.bold(String(data.tools))} tools, ${c.bold(String(data.toolsWithRecipes))} with install recipes`,
        `${c.bold(String(data.handlers))} failure handlers, ${c.bold(String(data.presets))} presets`,
        '',
        formatColumns(Object.entries(methods).sort((a, b) => b[1] - a[1]).map(([method, count]) => [method, String(count)]), '  '),
      ].join('\n');
    },
  };
};
