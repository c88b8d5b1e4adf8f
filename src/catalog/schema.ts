import { z } from 'zod';

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

const identifier = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]*$/, 'must be lower-case letters, digits, ".", "_" or "-"');

/** A regular expression written as a string; checked to compile. */
const regexString = z.string().min(1).refine(
  (text) => {
    try {
      new RegExp(text);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'is not a valid regular expression' },
);

export const ProbeSchema = z.strictObject({
  /** Arguments that make the tool print its version. */
  args: z.array(z.string()).default(['--version']),
  /** A regex whose first group is the version; the generic extractor when absent. */
  pattern: regexString.optional(),
  /** Seconds before the probe's process group is killed. */
  timeout: z.number().positive().max(60).optional(),
});
export type Probe = z.infer<typeof ProbeSchema>;

/**
 * What tells our tool apart from another one with the same binary name
 * (`/usr/bin/sg` is shadow's, not ast-grep; Debian's `yq` is a jq wrapper).
 */
export const IdentitySchema = z.strictObject({
  /** The probe's output must match this. */
  output: regexString.optional(),
  /** If a system package owns the binary, it must be one of these. */
  packages: z.array(z.string().min(1)).optional(),
  /** A binary owned by one of these system packages is another tool; it is never run. */
  notPackages: z.array(z.string().min(1)).optional(),
  /** A script's first line must match this. */
  shebang: regexString.optional(),
});
export type Identity = z.infer<typeof IdentitySchema>;

const repoSlug = z.string().regex(/^[\w.-]+\/[\w.-]+$/, 'must be "owner/name"');

export const UpstreamSchema = z.discriminatedUnion('source', [
  z.strictObject({
    source: z.literal('github'),
    repo: repoSlug,
    /** Only tags starting with this count (monorepos: `cli-v`). */
    tagPrefix: z.string().optional(),
  }),
  z.strictObject({
    source: z.literal('gitlab'),
    project: z.string().min(1),
    host: z.string().optional(),
    tagPrefix: z.string().optional(),
  }),
  z.strictObject({ source: z.literal('pypi'), package: z.string().min(1) }),
  z.strictObject({ source: z.literal('crates'), crate: z.string().min(1) }),
  z.strictObject({ source: z.literal('npm'), package: z.string().min(1) }),
  z.strictObject({ source: z.literal('gnu'), project: z.string().min(1) }),
  z.strictObject({
    source: z.literal('debian'),
    /** The source package, whose pool folder lists every version the archive holds. */
    package: z.string().min(1),
    /** Which archive's pool to read (default: debian). */
    archive: z.enum(['debian', 'ubuntu']).optional(),
  }),
  z.strictObject({ source: z.literal('none'), reason: z.string().optional() }),
]);
export type Upstream = z.infer<typeof UpstreamSchema>;
export type UpstreamSource = Upstream['source'];

export const ToolSchema = z.strictObject({
  id: identifier,
  name: z.string().min(1),
  description: z.string().min(1),
  homepage: z.url(),
  category: z.enum(CATEGORIES),
  /** Binary names to look for, most canonical first. Default: the id. */
  binaries: z.array(z.string().regex(/^[^/\s]+$/, 'must be a file name')).min(1).optional(),
  probe: ProbeSchema.default({ args: ['--version'] }),
  identity: IdentitySchema.optional(),
  upstream: UpstreamSchema,
  /** Other names users type for this tool (`rg` for ripgrep). */
  aliases: z.array(z.string().min(1)).optional(),
});
export type ToolInput = z.input<typeof ToolSchema>;
export type Tool = z.infer<typeof ToolSchema> & { binaries: string[] };

export const PresetsSchema = z.record(
  identifier,
  z.strictObject({ description: z.string().min(1), tools: z.array(identifier).min(1) }),
);
export type Presets = z.infer<typeof PresetsSchema>;

export const BaselineSchema = z.strictObject({
  schemaVersion: z.literal(1),
  generatedAt: z.string(),
  tools: z.record(
    z.string(),
    z.strictObject({ version: z.string().min(1), source: z.string(), url: z.string().optional() }),
  ),
});
export type Baseline = z.infer<typeof BaselineSchema>;
