/**
 * Runs one resolveLatest in its own process, for the test that two audits
 * writing the latest-version cache at once lose nothing. Input: the JSON in
 * UPKEEP_TEST_LATEST ({ cacheDir, endpoints, tools, baselinePath }); output:
 * the versions found, as JSON on stdout.
 */
import { resolveLatest } from '../../src/audit/latest.ts';
import type { Tool } from '../../src/catalog/schema.ts';
import { ConfigSchema } from '../../src/core/config.ts';
import { silentLogger } from '../../src/core/log.ts';

interface Input {
  cacheDir: string;
  endpoints: Record<string, string>;
  tools: Array<Pick<Tool, 'id' | 'upstream'>>;
  baselinePath: string;
}

const input = JSON.parse(process.env.UPKEEP_TEST_LATEST ?? '{}') as Input;
const config = ConfigSchema.parse({ endpoints: input.endpoints, network: { timeout: 5, retries: 0 } });
const { results } = await resolveLatest({
  tools: input.tools,
  config,
  paths: { config: input.cacheDir, cache: input.cacheDir, state: input.cacheDir, data: input.cacheDir },
  environment: {},
  logger: silentLogger,
  offline: false,
  refresh: true,
  baselinePath: input.baselinePath,
  userAgent: 'upkeep/test',
});
process.stdout.write(`${JSON.stringify(Object.fromEntries([...results].map(([id, result]) => [id, result.latest?.version ?? null])))}\n`);
