import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { ArchiveFormat, BinarySpec, PlatformKey } from '../catalog/schema.ts';
import { PLATFORM_KEYS } from '../catalog/schema.ts';
import { UpkeepError } from '../core/errors.ts';
import type { Executor } from '../core/exec.ts';
import type { HttpClient } from '../core/http.ts';
import { describeExecutables, listExecutables, locateFile, unpackArchive } from './archive.ts';
import type { Architecture, OperatingSystem } from './types.ts';

/**
 * The `binary` method: a release asset downloaded, checked against a
 * published or pinned digest, unpacked and its executables placed in
 * install.binDir. Nothing reaches binDir unless the checksum (when the recipe
 * has one) matched and the archive was safe; each file replaces the old one
 * with a rename, so a running tool never sees half a binary.
 */

export interface RenderBinaryInput {
  /** A leading `v` before a digit is dropped: tags are `v1.2.3`, templates want `1.2.3`. */
  version: string;
  os: OperatingSystem;
  arch: Architecture;
  /** The tool's binary names: the files installed when the recipe has no `files`. */
  binaries?: readonly string[];
  /** config endpoints.github; when it is not github.com, github.com URLs are sent there instead (mirrors). */
  githubEndpoint?: string;
}

export interface RenderedFile {
  /** The name it gets in binDir. */
  name: string;
  /** Rendered path inside the archive; null: search the archive for a file with this name. */
  pathInArchive: string | null;
  /**
   * False for the tool's extra binary names when the recipe lists no files:
   * those are often other distributions' names (`fdfind`) that a release
   * does not ship, so they are installed only when present.
   */
  required: boolean;
}

export type RenderedChecksum =
  | { kind: 'file'; url: string; algorithm: 'sha256' | 'sha512' }
  | { kind: 'pinned'; algorithm: 'sha256'; digest: string }
  | null;

export interface RenderedBinary {
  url: string;
  format: ArchiveFormat;
  files: RenderedFile[];
  checksum: RenderedChecksum;
}

const PLACEHOLDERS = new Set(['version', 'os', 'arch', 'target']);
const PLACEHOLDER_PATTERN = /\{([^{}]*)\}/g;
const GITHUB = 'https://github.com';

export function normaliseVersion(version: string): string {
  return version.trim().replace(/^[vV](?=\d)/, '');
}

/**
 * The concrete download for one version and platform. Pure: catalog
 * validation calls it to check that templates render. A template with an
 * unknown placeholder is a recipe bug (plain Error); a platform the recipe
 * does not cover is a user-facing E_PLATFORM_UNSUPPORTED.
 */
export function renderBinary(spec: BinarySpec, input: RenderBinaryInput): RenderedBinary {
  const templates = [spec.url, ...Object.values(spec.files ?? {}), ...(spec.checksum && 'url' in spec.checksum ? [spec.checksum.url] : [])];
  const unknown = new Set<string>();
  let usesTarget = false;
  for (const template of templates) {
    for (const match of template.matchAll(PLACEHOLDER_PATTERN)) {
      const name = match[1]!;
      if (!PLACEHOLDERS.has(name)) unknown.add(`{${name}}`);
      if (name === 'target') usesTarget = true;
    }
  }
  if (unknown.size > 0) {
    throw new Error(`unknown placeholder${unknown.size === 1 ? '' : 's'} ${[...unknown].join(', ')} in binary recipe templates (known: {version}, {os}, {arch}, {target})`);
  }

  const platform: PlatformKey = `${input.os}-${input.arch}`;
  let target: string | undefined;
  if (spec.targets !== undefined || usesTarget) {
    target = spec.targets?.[platform];
    if (target === undefined) {
      const supported = PLATFORM_KEYS.filter((key) => spec.targets?.[key] !== undefined);
      throw new UpkeepError('E_PLATFORM_UNSUPPORTED', `the release download has no build for ${platform}`, {
        hint: supported.length > 0 ? `it is published for ${supported.join(', ')}; choose another install method` : 'the recipe names no platform for {target}; choose another install method',
        details: { platform, supported },
      });
    }
  }

  const version = normaliseVersion(input.version);
  const values: Record<string, string> = {
    version,
    os: spec.os?.[input.os] ?? input.os,
    arch: spec.arch?.[input.arch] ?? input.arch,
    ...(target === undefined ? {} : { target }),
  };
  const render = (template: string): string => template.replace(PLACEHOLDER_PATTERN, (_whole, name: string) => values[name]!);
  const toEndpoint = (url: string): string => rewriteGithub(url, input.githubEndpoint);

  const url = toEndpoint(render(spec.url));
  const format = spec.format ?? inferFormat(url);

  let files: RenderedFile[];
  if (spec.files !== undefined) {
    files = Object.entries(spec.files).map(([name, template]) => {
      const pathInArchive = render(template);
      if (pathInArchive.startsWith('/') || pathInArchive.split('/').includes('..')) {
        throw new Error(`the path of ${name} in the archive must stay inside it: ${pathInArchive}`);
      }
      return { name, pathInArchive, required: true };
    });
    if ((format === 'raw' || format === 'gz') && files.length > 1) {
      throw new Error(`a ${format} download holds one file, but files lists ${files.length}`);
    }
  } else {
    files = (input.binaries ?? []).map((name, index) => ({ name, pathInArchive: null, required: index === 0 }));
  }

  let checksum: RenderedChecksum = null;
  if (spec.checksum && 'url' in spec.checksum) {
    checksum = { kind: 'file', url: toEndpoint(render(spec.checksum.url)), algorithm: spec.checksum.algorithm };
  } else if (spec.checksum) {
    const digest = spec.checksum.sha256[platform];
    // A digest pinned for another version (or platform) says nothing about this download.
    if (normaliseVersion(spec.checksum.version) === version && digest !== undefined) checksum = { kind: 'pinned', algorithm: 'sha256', digest };
  }
  return { url, format, files, checksum };
}

/** The archive format an asset's name implies; `raw` when it names none. */
export function inferFormat(url: string): ArchiveFormat {
  const name = assetName(url).toLowerCase();
  if (name.endsWith('.tar.gz') || name.endsWith('.tgz')) return 'tar.gz';
  if (name.endsWith('.tar.xz') || name.endsWith('.txz')) return 'tar.xz';
  if (name.endsWith('.tar.bz2') || name.endsWith('.tbz2') || name.endsWith('.tbz')) return 'tar.bz2';
  if (name.endsWith('.tar.zst') || name.endsWith('.tzst')) return 'tar.zst';
  if (name.endsWith('.zip')) return 'zip';
  if (name.endsWith('.gz')) return 'gz';
  return 'raw';
}

/** The last segment of a URL's path, decoded: the name checksum files list. */
export function assetName(url: string): string {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    path = url.split(/[?#]/)[0] ?? url;
  }
  const segment = path.split('/').filter(Boolean).pop() ?? '';
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function rewriteGithub(url: string, endpoint: string | undefined): string {
  if (endpoint === undefined) return url;
  const base = endpoint.replace(/\/+$/, '');
  if (base === GITHUB || !url.startsWith(`${GITHUB}/`)) return url;
  return `${base}${url.slice(GITHUB.length)}`;
}

/**
 * The digest for `name` in a checksum file: the line naming it
 * (`<hex>  name`, `<hex> *name`, `SHA256 (name) = <hex>`, names compared
 * without folders), else the only digest when the file has just one. Null
 * when neither.
 */
export function findChecksum(text: string, name: string, algorithm: 'sha256' | 'sha512'): string | null {
  const length = algorithm === 'sha256' ? 64 : 128;
  const digests: Array<{ digest: string; name: string | null }> = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const bsd = /^[A-Za-z0-9-]+\s*\((.+)\)\s*=\s*([A-Fa-f0-9]+)$/.exec(line);
    if (bsd) {
      if (bsd[2]!.length === length) digests.push({ digest: bsd[2]!.toLowerCase(), name: bsd[1]! });
      continue;
    }
    const gnu = /^([A-Fa-f0-9]+)(?:\s+\*?(.+))?$/.exec(line);
    if (gnu && gnu[1]!.length === length) digests.push({ digest: gnu[1]!.toLowerCase(), name: gnu[2]?.trim() ?? null });
  }
  const baseName = (path: string): string => path.replace(/^.*[\\/]/, '');
  const named = digests.find((entry) => entry.name !== null && (entry.name === name || baseName(entry.name) === name));
  if (named) return named.digest;
  return digests.length === 1 ? digests[0]!.digest : null;
}

interface InstallBinaryCommon {
  toolId: string;
  /** Absolute; `~` must already be expanded. */
  binDir: string;
  /** A folder upkeep owns for temporary files (e.g. <cache>/staging); each install uses a fresh folder under it. */
  stagingRoot: string;
  http: HttpClient;
  executor: Executor;
  onProgress?: (received: number, total: number | null) => void;
}

/** Either the recipe and what to render it for, or a download already rendered (by planning). */
export type InstallBinaryRequest = InstallBinaryCommon &
  (
    | {
        spec: BinarySpec;
        binaries: string[];
        version: string;
        os: OperatingSystem;
        arch: Architecture;
        githubEndpoint?: string;
      }
    | { rendered: RenderedBinary; binaries?: string[] }
  );

export interface InstalledFile {
  name: string;
  path: string;
  sha256: string;
}

export interface InstallBinaryResult {
  url: string;
  files: InstalledFile[];
  checksum: { algorithm: string; expected: string; source: 'file' | 'pinned' } | null;
}

const CHECKSUM_FILE_MAX_BYTES = 4 * 1024 * 1024;

export async function installBinary(request: InstallBinaryRequest): Promise<InstallBinaryResult> {
  if (request.executor.dryRun) throw new Error('installBinary changes the machine; dry runs stop at the plan');
  if (!isAbsolute(request.binDir)) throw new Error(`binDir must be an absolute path: ${request.binDir}`);
  const rendered =
    'rendered' in request
      ? request.rendered
      : renderBinary(request.spec, {
          version: request.version,
          os: request.os,
          arch: request.arch,
          binaries: request.binaries,
          githubEndpoint: request.githubEndpoint,
        });
  if (rendered.files.length === 0) throw new Error(`${request.toolId}: a binary install needs at least one file name`);
  for (const file of rendered.files) {
    if (file.name === '.' || file.name === '..' || /[/\\\0]/.test(file.name)) throw new Error(`${request.toolId}: not a file name: ${file.name}`);
  }
  // Checksum files list the asset's real name; the staging copy needs one that is a safe path segment.
  const name = assetName(rendered.url);

  await mkdir(request.stagingRoot, { recursive: true });
  const staging = await mkdtemp(join(request.stagingRoot, `${safeFileName(request.toolId)}-`));
  try {
    // The checksum comes first: when it cannot be had, the asset is not worth downloading.
    const expected = await expectedDigest(rendered, name, request.http);

    const downloaded = join(staging, 'download', safeFileName(name));
    const result = await request.http.download(rendered.url, downloaded, request.onProgress ? { onProgress: request.onProgress } : {});
    if (expected) {
      const actual = expected.algorithm === 'sha512' ? result.sha512 : result.sha256;
      if (actual !== expected.digest) {
        throw new UpkeepError('E_CHECKSUM_MISMATCH', `${name} does not match its ${expected.algorithm} checksum; nothing was installed`, {
          hint: 'the download was damaged or the release was changed after publishing; try again, and report it if it persists',
          details: { url: rendered.url, algorithm: expected.algorithm, expected: expected.digest, actual, source: expected.source },
        });
      }
    }

    const unpacked = join(staging, 'unpacked');
    const singleFileName = rendered.files[0]!.name;
    await unpackArchive({ archive: downloaded, format: rendered.format, destination: unpacked, executor: request.executor, singleFileName });

    const sources = await locateAll(rendered, unpacked, name);
    const files = await place(sources, request.binDir);
    return {
      url: rendered.url,
      files,
      checksum: expected ? { algorithm: expected.algorithm, expected: expected.digest, source: expected.source } : null,
    };
  } finally {
    await rm(staging, { recursive: true, force: true }).catch(() => undefined);
  }
}

interface ExpectedDigest {
  algorithm: 'sha256' | 'sha512';
  digest: string;
  source: 'file' | 'pinned';
}

async function expectedDigest(rendered: RenderedBinary, name: string, http: HttpClient): Promise<ExpectedDigest | null> {
  const checksum = rendered.checksum;
  if (checksum === null) return null;
  if (checksum.kind === 'pinned') return { algorithm: 'sha256', digest: checksum.digest.toLowerCase(), source: 'pinned' };
  let text: string;
  try {
    text = (await http.get(checksum.url, { followRedirects: true, maxBytes: CHECKSUM_FILE_MAX_BYTES })).body;
  } catch (error) {
    throw new UpkeepError('E_CHECKSUM_UNAVAILABLE', `could not fetch the checksum file for ${name}; nothing was installed`, {
      hint: 'the release may not publish one at that address, or the network failed; try again, or fix the recipe\'s checksum url',
      cause: error,
      details: { url: checksum.url, asset: name, reason: error instanceof Error ? error.message : String(error) },
    });
  }
  const digest = findChecksum(text, name, checksum.algorithm);
  if (digest === null) {
    throw new UpkeepError('E_CHECKSUM_UNAVAILABLE', `the checksum file has no ${checksum.algorithm} digest for ${name}; nothing was installed`, {
      hint: 'the release may name its assets differently from the recipe; check the recipe\'s url and checksum',
      details: { url: checksum.url, asset: name },
    });
  }
  return { algorithm: checksum.algorithm, digest, source: 'file' };
}

async function locateAll(rendered: RenderedBinary, unpacked: string, name: string): Promise<Array<{ name: string; source: string }>> {
  const single = rendered.format === 'raw' || rendered.format === 'gz';
  const sources: Array<{ name: string; source: string }> = [];
  const missing: string[] = [];
  for (const [index, file] of rendered.files.entries()) {
    if (single) {
      // A raw or gz download is the one file, whatever the recipe's other names.
      if (index === 0) sources.push({ name: file.name, source: join(unpacked, file.name) });
      else if (file.required !== false) missing.push(file.name);
      continue;
    }
    const found = await locateFile(unpacked, file);
    if (found) sources.push({ name: file.name, source: found });
    // A download rendered before `required` existed counts every file as required.
    else if (file.required !== false) missing.push(file.pathInArchive ?? file.name);
  }
  if (missing.length > 0) {
    const executables = single ? [] : await listExecutables(unpacked);
    throw new UpkeepError('E_ARCHIVE_INVALID', `${name} has no ${missing.join(', ')}; ${describeExecutables(executables)}`, {
      hint: 'the release changed its layout; set `files` in the recipe to the path inside the archive',
      details: { asset: name, missing, executables },
    });
  }
  return sources;
}

/**
 * Every file is copied next to its final place first and only then renamed
 * over it, so a failure part-way leaves the old files working.
 */
async function place(sources: Array<{ name: string; source: string }>, binDir: string): Promise<InstalledFile[]> {
  const staged: Array<{ temporary: string; final: string; name: string; sha256: string }> = [];
  try {
    await mkdir(binDir, { recursive: true });
    for (const { name, source } of sources) {
      const temporary = join(binDir, `.${name}.upkeep-tmp`);
      const final = join(binDir, name);
      staged.push({ temporary, final, name, sha256: '' });
      await copyFile(source, temporary);
      await chmod(temporary, 0o755);
      staged[staged.length - 1]!.sha256 = await sha256Of(temporary);
    }
    for (const entry of staged) await rename(entry.temporary, entry.final);
  } catch (error) {
    await Promise.all(staged.map((entry) => rm(entry.temporary, { force: true }).catch(() => undefined)));
    throw placeFailure(error, binDir);
  }
  return staged.map((entry) => ({ name: entry.name, path: entry.final, sha256: entry.sha256 }));
}

function placeFailure(error: unknown, binDir: string): UpkeepError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') {
    return new UpkeepError('E_NEEDS_ROOT', `cannot write to ${binDir}`, {
      hint: 'set install.binDir to a folder you own (the default is ~/.local/bin), or run as root',
      cause: error,
      details: { binDir },
    });
  }
  return new UpkeepError('E_INSTALL_FAILED', `could not place files in ${binDir}: ${(error as Error).message}`, {
    hint: 'check that the folder is writable, has room, and holds no folder with the tool\'s name',
    cause: error,
    details: { binDir },
  });
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** An asset or tool name made safe as one path segment in the staging folder. */
function safeFileName(name: string): string {
  const cleaned = name.replace(/[/\\\0]/g, '_');
  return cleaned === '' || cleaned === '.' || cleaned === '..' ? 'download' : cleaned;
}
