import * as z from '../core/zod.ts';
import { METHOD_NAMES } from '../core/config.ts';

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

/** Distribution families: the unit package names and package groups are given for. */
export const FAMILIES = ['debian', 'rhel', 'arch', 'alpine', 'suse', 'macos'] as const;
export type Family = (typeof FAMILIES)[number];

/** Every way a recipe can install a tool (the list lives in core so config can name methods). */
export const METHODS = METHOD_NAMES;
export type Method = (typeof METHODS)[number];

/** A package name as package managers accept it; no spaces, no leading dash (never an option). */
const packageName = z.string().check(z.regex(/^[A-Za-z0-9@_+][A-Za-z0-9@._+/:=-]*$/, 'must be a package name (letters, digits, @ . _ + / : = -)'));
const packageNames = z.union([packageName, z.array(packageName).check(z.minLength(1))]);

/**
 * Packages per distribution family, or the name of a group in
 * catalog/groups.yaml (`build-tools`), so the mapping is written once.
 */
export const PackagesSchema = z.union([
  identifier,
  z.partialRecord(z.enum(FAMILIES), z.array(packageName)),
]);
export type Packages = z.infer<typeof PackagesSchema>;

export const RequiresSchema = z.strictObject({
  /** Catalog tools installed first (bulk runs order levels by these). */
  tools: z.optional(z.array(identifier)),
  /** Commands that must be on PATH before the install runs. */
  binaries: z.optional(z.array(z.string().check(z.regex(/^[^/\s]+$/, 'must be a command name')))),
  /** System packages installed first, per family or by group name. */
  packages: z.optional(z.array(PackagesSchema)),
});
export type Requires = z.infer<typeof RequiresSchema>;

const withRequires = { requires: z.optional(RequiresSchema) };

/** apt, dnf, yum, pacman, apk, zypper: the package name(s) in that family's archive. */
const SystemPackageSpec = z.union([
  packageNames,
  z.strictObject({
    package: packageNames,
    /** A repository or feature the package comes from, e.g. EPEL for dnf: installed first as a group. */
    repository: z.optional(identifier),
    ...withRequires,
  }),
]);

const BrewSpec = z.union([
  packageName,
  z.strictObject({
    package: packageName,
    cask: z.optional(z.boolean()),
    /** A third-party tap (`owner/repo`) added before the install. */
    tap: z.optional(repoSlug),
    ...withRequires,
  }),
]);

const SnapSpec = z.union([
  packageName,
  z.strictObject({ package: packageName, classic: z.optional(z.boolean()), channel: z.optional(z.string()), ...withRequires }),
]);

const FlatpakSpec = z.union([
  z.string().check(z.regex(/^[A-Za-z0-9_.-]+$/, 'must be a flatpak application id')),
  z.strictObject({ package: nonEmpty, remote: z._default(z.string(), 'flathub'), ...withRequires }),
]);

/** pipx, uv, pip, npm: a package in the language registry. */
const LanguagePackageSpec = z.union([
  packageName,
  z.strictObject({ package: packageName, ...withRequires }),
]);

const CargoSpec = z.union([
  packageName,
  z.strictObject({
    crate: packageName,
    features: z.optional(z.array(z.string())),
    /** `--locked` (the default): build with the crate's own lock file. */
    locked: z.optional(z.boolean()),
    /** For crates hosted in git rather than crates.io. */
    git: z.optional(z.url()),
    ...withRequires,
  }),
]);

/** A Go module path with the package that holds main, installed with `go install path@version`. */
const GoSpec = z.union([
  packageName,
  z.strictObject({ module: packageName, ...withRequires }),
]);

/** `{version}`, `{os}`, `{arch}`, `{target}` in templates; checked to render at validation. */
const template = z.string().check(z.minLength(1));
const platformKey = z.enum(['linux-x86_64', 'linux-aarch64', 'darwin-x86_64', 'darwin-aarch64']);
export const PLATFORM_KEYS = platformKey.options;
export type PlatformKey = (typeof PLATFORM_KEYS)[number];

export const ARCHIVE_FORMATS = ['tar.gz', 'tar.xz', 'tar.bz2', 'tar.zst', 'zip', 'gz', 'raw'] as const;
export type ArchiveFormat = (typeof ARCHIVE_FORMATS)[number];

export const BinarySpecSchema = z.strictObject({
  /** The release asset's URL template. */
  url: template,
  /** What `{os}` becomes per operating system (default: linux, darwin). */
  os: z.optional(z.partialRecord(z.enum(['linux', 'darwin']), z.string())),
  /** What `{arch}` becomes per architecture (default: x86_64, aarch64). */
  arch: z.optional(z.partialRecord(z.enum(['x86_64', 'aarch64']), z.string())),
  /** What `{target}` becomes per platform; a platform absent here is not supported. */
  targets: z.optional(z.partialRecord(platformKey, z.string())),
  /** Default: from the URL's extension, `raw` when it has none. */
  format: z.optional(z.enum(ARCHIVE_FORMATS)),
  /** Installed name -> path inside the archive (template). Default: a file named after each binary, anywhere in it. */
  files: z.optional(z.record(z.string().check(z.regex(/^[^/\s]+$/, 'must be a file name')), template)),
  checksum: z.optional(
    z.union([
      /** A checksum file published with the release: `<hex>  <name>` lines, or one digest. */
      z.strictObject({ url: template, algorithm: z._default(z.enum(['sha256', 'sha512']), 'sha256') }),
      /** Digests pinned in the recipe for one version. */
      z.strictObject({
        version: nonEmpty,
        sha256: z.partialRecord(platformKey, z.string().check(z.regex(/^[a-f0-9]{64}$/, 'must be a sha256 hex digest'))),
      }),
    ]),
  ),
  ...withRequires,
});
export type BinarySpec = z.infer<typeof BinarySpecSchema>;

/** A vendor's installer script; only where it is the sole supported way. */
export const ScriptSpecSchema = z.strictObject({
  url: z.url(),
  /** The interpreter that runs the downloaded file (never a pipe from curl). */
  shell: z._default(z.enum(['sh', 'bash']), 'sh'),
  args: z._default(z.array(z.string()), []),
  /** Arguments that update an existing installation; re-running with `args` when absent. */
  updateArgs: z.optional(z.array(z.string())),
  /** argv that removes what the script installed. */
  uninstall: z.optional(z.array(z.string()).check(z.minLength(1))),
  env: z.optional(z.record(z.string(), z.string())),
  ...withRequires,
});
export type ScriptSpec = z.infer<typeof ScriptSpecSchema>;

export const InstallSchema = z.strictObject({
  apt: z.optional(SystemPackageSpec),
  dnf: z.optional(SystemPackageSpec),
  yum: z.optional(SystemPackageSpec),
  pacman: z.optional(SystemPackageSpec),
  apk: z.optional(SystemPackageSpec),
  zypper: z.optional(SystemPackageSpec),
  brew: z.optional(BrewSpec),
  snap: z.optional(SnapSpec),
  flatpak: z.optional(FlatpakSpec),
  binary: z.optional(BinarySpecSchema),
  pipx: z.optional(LanguagePackageSpec),
  uv: z.optional(LanguagePackageSpec),
  pip: z.optional(LanguagePackageSpec),
  npm: z.optional(LanguagePackageSpec),
  cargo: z.optional(CargoSpec),
  go: z.optional(GoSpec),
  script: z.optional(ScriptSpecSchema),
});
export type Install = z.infer<typeof InstallSchema>;

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
  /** How to install it, keyed by method. */
  install: z.optional(InstallSchema),
  /** Methods in the order this tool's maintainers recommend them. */
  prefer: z.optional(z.array(z.enum(METHODS))),
  /** What every method needs first. */
  requires: z.optional(RequiresSchema),
  /** The language ecosystem whose configured preferences apply (`python`, `node`...). */
  ecosystem: z.optional(z.enum(['python', 'node', 'rust', 'go', 'ruby', 'system'])),
  /** Config files backed up with the binary before an upgrade; `~` is the home folder. */
  configFiles: z.optional(z.array(nonEmpty)),
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

/** catalog/groups.yaml: named package sets per family (seed 001, evolution B). */
export const GroupsSchema = z.record(
  identifier,
  z.strictObject({
    description: nonEmpty,
    debian: z.optional(z.array(packageName)),
    rhel: z.optional(z.array(packageName)),
    arch: z.optional(z.array(packageName)),
    alpine: z.optional(z.array(packageName)),
    suse: z.optional(z.array(packageName)),
    macos: z.optional(z.array(packageName)),
  }),
);
export type Groups = z.infer<typeof GroupsSchema>;

/** The one vocabulary failure handlers are sorted by. */
export const FAILURE_CATEGORIES = [
  'network',
  'dns',
  'proxy-tls',
  'disk-full',
  'read-only-fs',
  'permission',
  'no-sudo',
  'lock-held',
  'out-of-memory',
  'timeout',
  'not-found',
  'missing-command',
  'missing-build-dependency',
  'externally-managed',
  'conflict',
  'platform-unsupported',
  'checksum-mismatch',
  'other',
] as const;
export type FailureCategory = (typeof FAILURE_CATEGORIES)[number];

export const STRATEGIES = [
  'install-packages',
  'install-dependency',
  'switch-method',
  'retry-with-modifier',
  'cleanup-retry',
  'fix-environment',
  'retry',
  'manual',
] as const;
export type Strategy = (typeof STRATEGIES)[number];

const argv = z.array(z.string()).check(z.minLength(1));

export const RemedyOptionSchema = z.strictObject({
  id: identifier,
  label: nonEmpty,
  strategy: z.enum(STRATEGIES),
  /** The option applied by `--auto-remediate` (at most one per handler). */
  recommended: z.optional(z.boolean()),
  /** install-packages: per family or a group name. */
  packages: z.optional(PackagesSchema),
  /** install-dependency: a catalog tool installed before the retry. */
  dependency: z.optional(identifier),
  /** switch-method: the method tried instead. */
  method: z.optional(z.enum(METHODS)),
  /** retry-with-modifier: extra arguments, variables or a wait before the retry. */
  modifier: z.optional(
    z.strictObject({
      args: z.optional(z.array(z.string())),
      env: z.optional(z.record(z.string(), z.string())),
      /** Seconds to wait before retrying (a lock held by another process). */
      wait: z.optional(z.number().check(z.positive(), z.maximum(600))),
    }),
  ),
  /** cleanup-retry: commands run before the retry, each an argv. */
  cleanup: z.optional(z.array(argv).check(z.minLength(1))),
  /** cleanup-retry: commands that need root. */
  cleanupNeedsRoot: z.optional(z.boolean()),
  /** fix-environment: variables set for the retry. */
  env: z.optional(z.record(z.string(), z.string())),
  /** manual: what the user does by hand; any other strategy: extra advice. */
  instructions: z.optional(nonEmpty),
});
export type RemedyOption = z.infer<typeof RemedyOptionSchema>;

export const HandlerSchema = z.strictObject({
  id: identifier,
  category: z.enum(FAILURE_CATEGORIES),
  label: nonEmpty,
  /** Case-insensitive regex matched against the failed command's stdout and stderr. */
  pattern: regexString,
  /** Only matches when the command exited with this code. */
  exitCode: z.optional(z.int()),
  /** A real output this handler exists for; a test replays it. */
  example: nonEmpty,
  /** The exit code that came with the example, when the handler needs one. */
  exampleExitCode: z.optional(z.int()),
  options: z.array(RemedyOptionSchema).check(z.minLength(1)),
});
export type Handler = z.infer<typeof HandlerSchema>;

/**
 * One file of catalog/handlers/: handlers of one layer. Tool handlers name
 * their tool, method-family handlers their methods; infrastructure handlers
 * apply to every failure.
 */
export const HandlerFileSchema = z.union([
  z.strictObject({ layer: z.literal('tool'), tool: identifier, handlers: z.array(HandlerSchema).check(z.minLength(1)) }),
  z.strictObject({
    layer: z.literal('method'),
    methods: z.array(z.enum(METHODS)).check(z.minLength(1)),
    handlers: z.array(HandlerSchema).check(z.minLength(1)),
  }),
  z.strictObject({ layer: z.literal('infrastructure'), handlers: z.array(HandlerSchema).check(z.minLength(1)) }),
]);
export type HandlerFile = z.infer<typeof HandlerFileSchema>;
