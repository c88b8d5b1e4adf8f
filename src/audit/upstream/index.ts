import type { Upstream } from '../../catalog/schema.ts';
import { UpkeepError } from '../../core/errors.ts';
import type { UpstreamContext, UpstreamResult } from './common.ts';
import { latestFromCrates } from './crates.ts';
import { latestFromDebian } from './debian.ts';
import { latestFromGithub } from './github.ts';
import { latestFromGitlab } from './gitlab.ts';
import { latestFromGnu } from './gnu.ts';
import { latestFromNpm } from './npm.ts';
import { latestFromPypi } from './pypi.ts';

export type { PreviousLookup, UpstreamContext, UpstreamResult } from './common.ts';
export { githubMethodOrder, GITHUB_METHODS } from './github.ts';

/**
 * Asks a tool's upstream for its latest version. `none` asks nobody and
 * answers null. Throws UpkeepError (E_HTTP_*, E_UPSTREAM_*) on failure.
 */
export async function lookupLatest(upstream: Upstream, context: UpstreamContext): Promise<UpstreamResult | null> {
  switch (upstream.source) {
    case 'github':
      return latestFromGithub(upstream, context);
    case 'gitlab':
      return latestFromGitlab(upstream, context);
    case 'pypi':
      return latestFromPypi(upstream, context);
    case 'crates':
      return latestFromCrates(upstream, context);
    case 'npm':
      return latestFromNpm(upstream, context);
    case 'gnu':
      return latestFromGnu(upstream, context);
    case 'debian':
      return latestFromDebian(upstream, context);
    case 'none':
      return null;
    default: {
      const unknown = upstream as { source?: unknown };
      throw new UpkeepError('E_UPSTREAM_UNSUPPORTED', `upstream source ${String(unknown.source)} is not supported`, {
        hint: 'use one of github, gitlab, pypi, crates, npm, gnu, debian or none',
        details: { reason: `unsupported source ${String(unknown.source)}` },
      });
    }
  }
}
