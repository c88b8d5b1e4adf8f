import * as z from '../core/zod.ts';

/**
 * The schema of catalog/tools/<id>.yaml. Unknown keys are rejected so that a
 * typo (`binarys:`) is reported instead of silently ignored.
 */

export const CATEGORIES = [
  'runtime',
  'package-manager',
  'search',
  'text',
  'linter',
  'formatter',
  'git',
  'cloud',
  'container',
  'ai-agent',
  'build',
  'database',
  'network',
  'shell',
  'security',
  'system',
  'editor',
  'docs',
  'testing',
] as const;
export type Category = (typeof CATEGORIES)[number];

const identifier = z.string().check(z.regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lower-case letters, digits, ".", "_" or "-"'));

/** A regular expression written as a string; checked to compile. */
const regexString = z.string().check(
  z.minLength(1),
  z.refine(
    (text) => {
      try {
        new RegExp(text);
        return true;
      } catch {
        return false;
      }
    },
    { message: 'is not a valid regular expression' },
  ),
);
const nonEmpty = z.string().check(z.minLength(1));

export const ProbeSchema = z.strictObject({
  /** Arguments that make the tool print its version. */
  args: z._default(z.array(z.string()), ['--version']),
  /** A regex whose first group is the version; the generic extractor when absent. */
  pattern: z.optional(regexString),
  /** Seconds before the probe's process group is killed. */
  timeout: z.optional(z.number().check(z.positive(), z.maximum(60))),
});
export type Probe = z.infer<typeof ProbeSchema>;

/**
 * What tells our tool apart from another one with the same binary name
 * (`/usr/bin/sg` is shadow's, not ast-grep; Debian's `yq` is a jq wrapper).
 */
export const IdentitySchema = z.strictObject({
  /** The probe's output must match this. */
  output: z.optional(regexString),
  /** If a system package owns the binary, it must be one of these. */
  packages: z.optional(z.array(nonEmpty)),
  /** A binary owned by one of these system packages is another tool; it is never run. */
  notPackages: z.optional(z.array(nonEmpty)),
  /** A script's first line must match this. */
  shebang: z.optional(regexString),
});
export type Identity = z.infer<typeof IdentitySchema>;

const repoSlug = z.string().check(z.regex(/^[\w.-]+\/[\w.-]+$/, 'must be "owner/name"'));

export const UpstreamSchema = z.discriminatedUnion('source', [
  z.strictObject({
    source: z.literal('github'),
    repo: repoSlug,
    /** Only tags starting with this count (monorepos: `cli-v`). */
    tagPrefix: z.optional(z.string()),
  }),
  z.strictObject({
    source: z.literal('gitlab'),
    project: nonEmpty,
    host: z.optional(z.string()),
    tagPrefix: z.optional(z.string()),
  }),
  z.strictObject({ source: z.literal('pypi'), package: nonEmpty }),
  z.strictObject({ source: z.literal('crates'), crate: nonEmpty }),
  z.strictObject({ source: z.literal('npm'), package: nonEmpty }),
  z.strictObject({ source: z.literal('gnu'), project: nonEmpty }),
  z.strictObject({
    source: z.literal('debian'),
    /** The source package, whose pool folder lists every version the archive holds. */
    package: nonEmpty,
    /** Which archive's pool to read (default: debian). */
    archive: z.optional(z.enum(['debian', 'ubuntu'])),
  }),
  z.strictObject({ source: z.literal('none'), reason: z.optional(z.string()) }),
]);
export type Upstream = z.infer<typeof UpstreamSchema>;
export type UpstreamSource = Upstream['source'];

export const ToolSchema = z.strictObject({
  id: identifier,
  name: nonEmpty,
  description: nonEmpty,
  homepage: z.url(),
  category: z.enum(CATEGORIES),
  /** Binary names to look for, most canonical first. Default: the id. */
  binaries: z.optional(z.array(z.string().check(z.regex(/^[^/\s]+$/, 'must be a file name'))).check(z.minLength(1))),
  probe: z._default(ProbeSchema, { args: ['--version'] }),
  identity: z.optional(IdentitySchema),
  upstream: UpstreamSchema,
  /** Other names users type for this tool (`rg` for ripgrep). */
  aliases: z.optional(z.array(nonEmpty)),
});
export type ToolInput = z.input<typeof ToolSchema>;
export type Tool = z.infer<typeof ToolSchema> & { binaries: string[] };

export const PresetsSchema = z.record(
  identifier,
  z.strictObject({ description: nonEmpty, tools: z.array(identifier).check(z.minLength(1)) }),
);
export type Presets = z.infer<typeof PresetsSchema>;

export const BaselineSchema = z.strictObject({
  schemaVersion: z.literal(1),
  generatedAt: z.string(),
  tools: z.record(
    z.string(),
    z.strictObject({ version: nonEmpty, source: z.string(), url: z.optional(z.string()) }),
  ),
});
export type Baseline = z.infer<typeof BaselineSchema>;
