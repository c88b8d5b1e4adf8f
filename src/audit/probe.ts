import { basename, join } from 'node:path';
import type { Tool } from '../catalog/schema.ts';
import type { Executor } from '../core/exec.ts';
import { describeError } from '../core/errors.ts';
import { readJsonFile, withLock, writeJsonAtomic } from '../core/fs.ts';
import { extractVersion } from '../core/version.ts';
import type { ClassificationEvidence } from './classify.ts';
import type { PackageOwner } from './packages.ts';

/**
 * Runs a tool's version probe, and remembers what it printed keyed by the
 * binary's identity (real path, size, modification time, inode, probe
 * arguments) so that an audit of unchanged binaries spawns nothing. The raw
 * output is kept rather than the version, so a changed pattern in the catalog
 * takes effect without probing again.
 */

export interface ProbeRecord {
  /** What the probe printed (stdout then stderr), cut to 8 KiB; null when it was not run. */
  output: string | null;
  exitCode: number | null;
  timedOut: boolean;
  /** Why it could not run, when it could not. */
  error: string | null;
  owner: PackageOwner | null;
  /** The first line of a script, or null for a binary. */
  shebang: string | null;
  /** What classification needs beyond paths (a venv's pyvenv.cfg, a rustup hard link). */
  evidence?: ClassificationEvidence;
  probedAt: string;
}

interface ProbeCacheFile {
  schemaVersion: 1;
  entries: Record<string, ProbeRecord>;
}

const MAX_ENTRIES = 4000;
const KEPT_OUTPUT = 8192;

export interface BinaryIdentity {
  realPath: string;
  size: number;
  mtimeMs: number;
  inode: number;
}

/**
 * The name it is run as is part of the key: multi-call binaries (rustup's
 * proxies `cargo` and `rustc` are hard links to rustup, busybox) answer
 * according to argv[0].
 */
export function probeKey(binary: BinaryIdentity, invokedAs: string, args: readonly string[]): string {
  return [binary.realPath, binary.size, binary.mtimeMs, binary.inode, basename(invokedAs), args.join('\u0001')].join('\u0000');
}

export class ProbeCache {
  private constructor(
    private readonly file: string,
    private entries: Record<string, ProbeRecord>,
    /** Set when the file was corrupt and has been moved aside. */
    readonly warning: string | null,
  ) {}

  private readonly added = new Map<string, ProbeRecord>();

  static fileIn(cacheFolder: string): string {
    return join(cacheFolder, 'probes-v1.json');
  }

  static async open(file: string): Promise<ProbeCache> {
    const result = await readJsonFile(file, validateCacheFile);
    if (result.status === 'ok') return new ProbeCache(file, result.value.entries, null);
    if (result.status === 'corrupt') {
      return new ProbeCache(file, {}, `the probe cache ${file} was unreadable (${result.reason}); it was moved to ${result.movedTo ?? 'nowhere'} and is being rebuilt`);
    }
    return new ProbeCache(file, {}, null);
  }

  get(key: string): ProbeRecord | undefined {
    return this.added.get(key) ?? this.entries[key];
  }

  set(key: string, record: ProbeRecord): void {
    this.added.set(key, record);
  }

  get changed(): boolean {
    return this.added.size > 0;
  }

  /** Merges what this run learnt into the file under a lock, keeping other runs' entries. */
  async save(): Promise<void> {
    if (this.added.size === 0) return;
    await withLock(this.file, async () => {
      const current = await readJsonFile(this.file, validateCacheFile).catch(() => null);
      const entries = current?.status === 'ok' ? current.value.entries : this.entries;
      for (const [key, record] of this.added) entries[key] = record;
      const keys = Object.keys(entries);
      if (keys.length > MAX_ENTRIES) {
        keys
          .sort((a, b) => entries[a]!.probedAt.localeCompare(entries[b]!.probedAt))
          .slice(0, keys.length - MAX_ENTRIES)
          .forEach((key) => delete entries[key]);
      }
      const document: ProbeCacheFile = { schemaVersion: 1, entries };
      await writeJsonAtomic(this.file, document);
      this.entries = entries;
      this.added.clear();
    });
  }
}

function validateCacheFile(raw: unknown): ProbeCacheFile {
  if (!raw || typeof raw !== 'object') throw new Error('not an object');
  const document = raw as Partial<ProbeCacheFile>;
  if (document.schemaVersion !== 1) throw new Error(`unknown schemaVersion ${String(document.schemaVersion)}`);
  if (!document.entries || typeof document.entries !== 'object') throw new Error('entries missing');
  return document as ProbeCacheFile;
}

export interface RunProbeOptions {
  executor: Executor;
  /** Seconds before the process group is killed. */
  timeout: number;
  environment: Readonly<Record<string, string | undefined>>;
}

/** Runs the probe of `tool` against the binary at `path`. Never throws. */
export async function runProbe(tool: Tool, path: string, options: RunProbeOptions): Promise<Pick<ProbeRecord, 'output' | 'exitCode' | 'timedOut' | 'error'>> {
  const timeout = (tool.probe.timeout ?? options.timeout) * 1000;
  try {
    const result = await options.executor.run([path, ...tool.probe.args], {
      timeout,
      maxOutput: 64 * 1024,
      mode: 'always',
      // Some tools print colour codes or localised text; ask for plain English.
      // HashiCorp tools (terraform, packer, consul) would otherwise call home to check for updates.
      env: { ...options.environment, LC_ALL: 'C', LANG: 'C', NO_COLOR: '1', TERM: 'dumb', CHECKPOINT_DISABLE: '1' },
    });
    const output = `${result.stdout}${result.stdout && result.stderr ? '\n' : ''}${result.stderr}`.slice(0, KEPT_OUTPUT);
    return {
      output,
      exitCode: result.exitCode,
      timedOut: result.timedOut,
      error: result.timedOut ? `the version probe did not finish within ${timeout / 1000} s and was stopped` : null,
    };
  } catch (error) {
    return { output: null, exitCode: null, timedOut: false, error: describeError(error) };
  }
}

/** Output that says the program could not run, whatever numbers it holds. */
const BROKEN_OUTPUT =
  /Traceback \(most recent call last\)|error while loading shared libraries|Can't locate \S+ in @INC|cannot execute binary file|ModuleNotFoundError|bad interpreter/;

/**
 * Why a probe's output cannot be trusted, or null. A Python traceback or a
 * missing shared library prints paths full of version numbers
 * (`/usr/lib/python3.11/...`) that must not be taken for the tool's version.
 */
export function probeFailure(record: Pick<ProbeRecord, 'output' | 'exitCode'>): string | null {
  if (record.output === null) return null;
  const broken = BROKEN_OUTPUT.exec(record.output);
  if (record.exitCode === 126 || record.exitCode === 127 || broken) {
    const line = (broken ? record.output.split('\n').find((text) => BROKEN_OUTPUT.test(text)) : record.output.trim().split('\n').at(-1)) ?? '';
    return `the program could not run (exit code ${record.exitCode ?? 'none'}): ${line.trim().slice(0, 120)}`;
  }
  return null;
}

/** The version in a probe's output, by the tool's pattern or the generic extractor. */
export function versionFromProbe(tool: Tool, record: Pick<ProbeRecord, 'output'>): string | null {
  if (record.output === null) return null;
  const stripped = record.output.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '');
  return extractVersion(stripped, tool.probe.pattern ? new RegExp(tool.probe.pattern, 'm') : undefined);
}

/**
 * Why this binary is not our tool, or null when nothing says so. Package and
 * shebang checks come first because they need no probe: another program
 * sharing the name (shadow's `sg`) is never run.
 */
export function identityBeforeProbe(tool: Tool, owner: PackageOwner | null, shebang: string | null): string | null {
  const identity = tool.identity;
  if (!identity) return null;
  if (owner && identity.notPackages?.includes(owner.package)) {
    return `owned by ${owner.manager} package ${owner.package}, which is another program of the same name`;
  }
  if (owner && identity.packages && !identity.packages.includes(owner.package)) {
    return `owned by ${owner.manager} package ${owner.package}, not ${identity.packages.join(' or ')}`;
  }
  if (shebang && identity.shebang && !new RegExp(identity.shebang).test(shebang)) {
    return `its first line "${shebang}" does not match ${tool.name}`;
  }
  return null;
}

export function identityAfterProbe(tool: Tool, output: string | null): string | null {
  const pattern = tool.identity?.output;
  if (!pattern || output === null) return null;
  if (new RegExp(pattern, 'i').test(output)) return null;
  const firstLine = output.trim().split('\n')[0]?.slice(0, 80) ?? '';
  return `its version output ("${firstLine}") is not ${tool.name}'s`;
}
