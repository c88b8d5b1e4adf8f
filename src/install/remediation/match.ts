import type { HandlerLayer, LoadedHandler } from '../../catalog/handlers.ts';
import type { FailureCategory, Method } from '../../catalog/schema.ts';
import { assessOption, type AssessmentContext, type OptionAssessment } from './options.ts';

export type { AssessmentContext, OptionAssessment } from './options.ts';
export { assessOption, recommendedOption } from './options.ts';

/**
 * Which failure handlers explain a failed step (seed 001's cascade): the
 * failed tool's own handlers first, then those of the method's family, then
 * the infrastructure ones that apply to every failure.
 */

export interface FailedStep {
  method: Method;
  /** The catalog tool being installed, for tool-layer handlers. */
  tool?: string;
  /** null when the command was killed by a signal or never ran. */
  exitCode: number | null;
  /** stdout and stderr together. */
  output: string;
}

export interface HandlerMatch {
  id: string;
  layer: HandlerLayer;
  category: FailureCategory;
  label: string;
  /** The handler's options in its order of preference, assessed for this machine. */
  options: OptionAssessment[];
  /** The handler itself, for callers that assess its options again (another platform, after a fix). */
  handler: LoadedHandler;
}

/** Everything assessment needs except the method, which the failure gives. */
export type MatchContext = Omit<AssessmentContext, 'method'>;

const LAYER_RANK: Record<HandlerLayer, number> = { tool: 0, method: 1, infrastructure: 2 };

/**
 * Every handler whose pattern matches the output, most specific layer first
 * (catalog order within a layer). Without a context the options are not
 * assessed: each `needs` the platform, so none is ever applied blindly.
 */
export function matchFailure(handlers: readonly LoadedHandler[], failure: FailedStep, context?: MatchContext): HandlerMatch[] {
  return handlers
    .filter((handler) => applies(handler, failure) && handler.regex.test(failure.output))
    .map((handler, position) => ({ handler, position }))
    .sort((a, b) => LAYER_RANK[a.handler.layer] - LAYER_RANK[b.handler.layer] || a.position - b.position)
    .map(({ handler }) => ({
      id: handler.id,
      layer: handler.layer,
      category: handler.category,
      label: handler.label,
      options: handler.options.map((option) =>
        context
          ? assessOption(option, { ...context, method: failure.method })
          : {
              id: option.id,
              label: option.label,
              strategy: option.strategy,
              recommended: option.recommended === true,
              status: 'needs' as const,
              needs: ['platform'],
              ...(option.instructions ? { instructions: option.instructions } : {}),
            },
      ),
      handler,
    }));
}

function applies(handler: LoadedHandler, failure: FailedStep): boolean {
  if (handler.exitCode !== undefined && handler.exitCode !== failure.exitCode) return false;
  switch (handler.layer) {
    case 'tool':
      return failure.tool !== undefined && handler.tool === failure.tool;
    case 'method':
      return handler.methods?.includes(failure.method) ?? false;
    case 'infrastructure':
      return true;
  }
}
