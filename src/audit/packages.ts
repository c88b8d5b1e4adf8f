import { readFile as readFileCallback } from 'node:fs';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Executor } from '../core/exec.ts';

/**
 * Which system package owns a file. Package databases that are plain files
 * (dpkg, pacman, apk) are read directly, never through the package manager:
 * spawning `dpkg -S` costs more than reading every list file. rpm keeps a
 * binary database, so it is asked through the executor.
 *
 * Only the paths asked for are looked up: the wanted paths go into a Set and
 * each list file is streamed against it, so nothing builds an index of every
 * file on the system.
 */

export type SystemPackageManager = 'dpkg' | 'rpm' | 'pacman' | 'apk';

export interface PackageOwner {
  manager: SystemPackageManager;
  /** The package name without architecture qualifier (`libc6`, not `libc6:amd64`). */
  package: string;
  /** dpkg multiarch qualifier, when the list file carries one. */
  architecture?: string;
}

export interface PackageDatabase {
  /**
   * The owner of each path that has one; paths no package lists are absent.
   * Keys are the paths exactly as given. Answers are cached, so asking again
   * costs nothing and new paths cost one pass over the databases.
   */
  ownersOf(paths: readonly string[]): Promise<Map<string, PackageOwner>>;
  /** The package databases found under the root. */
  managers(): Promise<SystemPackageManager[]>;
}

export interface PackageDatabaseOptions {
  /** The file system root holding the databases; `/` unless a test points elsewhere. */
  root?: string;
  /** Only `run` is used, and only for rpm. */
  executor: Pick<Executor, 'run'>;
  /** How many list files are read at once. */
  concurrency?: number;
  /** Milliseconds each rpm query may take. */
  rpmTimeout?: number;
}

const DEFAULT_CONCURRENCY = 64;
const DEFAULT_RPM_TIMEOUT = 10_000;
/** Paths per rpm call: rpm takes many at once, but argv length is finite. */
const RPM_BATCH = 200;
/** Top-level folders that usr-merge turns into symlinks (`/bin -> usr/bin`). */
const MERGE_CANDIDATES = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/usr/sbin'];

export function createPackageDatabase(options: PackageDatabaseOptions): PackageDatabase {
  return new FilePackageDatabase(options);
}

interface Layout {
  managers: SystemPackageManager[];
  dpkgInfo: string | null;
  pacmanLocal: string | null;
  apkInstalled: string | null;
  /** Pairs of folders that are the same folder on this system. */
  aliases: Array<[string, string]>;
}

/** A path to look up in a database, and the asked paths it answers for. */
type Wanted = Map<string, Set<string>>;

class FilePackageDatabase implements PackageDatabase {
  private readonly root: string;
  private readonly executor: Pick<Executor, 'run'>;
  private readonly concurrency: number;
  private readonly rpmTimeout: number;
  private readonly answers = new Map<string, PackageOwner | null>();
  private layoutPromise: Promise<Layout> | undefined;
  private dpkgListsPromise: Promise<string[]> | undefined;
  private dpkgDiversionsPromise: Promise<Diversion[]> | undefined;
  private apkTextPromise: Promise<string> | undefined;
  /** Lookups run one after another so that no path is scanned for twice. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: PackageDatabaseOptions) {
    this.root = path.resolve(options.root ?? '/');
    this.executor = options.executor;
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.rpmTimeout = options.rpmTimeout ?? DEFAULT_RPM_TIMEOUT;
  }

  async managers(): Promise<SystemPackageManager[]> {
    return [...(await this.layout()).managers];
  }

  ownersOf(paths: readonly string[]): Promise<Map<string, PackageOwner>> {
    const run = this.queue.then(() => this.lookUp(paths));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async lookUp(paths: readonly string[]): Promise<Map<string, PackageOwner>> {
    const missing = [...new Set(paths)].filter((asked) => !this.answers.has(asked) && path.posix.isAbsolute(asked));
    if (missing.length > 0) {
      const layout = await this.layout();
      const found = new Map<string, PackageOwner>();
      const unresolved = (): string[] => missing.filter((asked) => !found.has(asked));
      // A file belongs to one package manager; the order only matters on the
      // odd machine with two (dpkg plus a stray rpm database, say).
      if (layout.dpkgInfo) await this.scanDpkg(layout, unresolved(), found);
      if (layout.pacmanLocal) await this.scanPacman(layout, unresolved(), found);
      if (layout.apkInstalled) await this.scanApk(layout, unresolved(), found);
      if (layout.managers.includes('rpm')) await this.queryRpm(layout, unresolved(), found);
      for (const asked of missing) this.answers.set(asked, found.get(asked) ?? null);
    }
    const result = new Map<string, PackageOwner>();
    for (const asked of paths) {
      const owner = this.answers.get(asked);
      if (owner) result.set(asked, owner);
    }
    return result;
  }

  private layout(): Promise<Layout> {
    this.layoutPromise ??= this.detectLayout();
    return this.layoutPromise;
  }

  private inRoot(absolute: string): string {
    return path.join(this.root, absolute);
  }

  private async detectLayout(): Promise<Layout> {
    const isDirectory = async (absolute: string): Promise<boolean> =>
      stat(this.inRoot(absolute)).then((info) => info.isDirectory(), () => false);
    const isFile = async (absolute: string): Promise<boolean> =>
      stat(this.inRoot(absolute)).then((info) => info.isFile(), () => false);

    const [dpkg, pacman, apkLib, apkUsr, rpmVar, rpmSysimage, aliases] = await Promise.all([
      isDirectory('/var/lib/dpkg/info'),
      isDirectory('/var/lib/pacman/local'),
      isFile('/lib/apk/db/installed'),
      isFile('/usr/lib/apk/db/installed'),
      isDirectory('/var/lib/rpm'),
      isDirectory('/usr/lib/sysimage/rpm'),
      this.detectMergedFolders(),
    ]);
    const apkInstalled = apkLib ? '/lib/apk/db/installed' : apkUsr ? '/usr/lib/apk/db/installed' : null;
    const managers: SystemPackageManager[] = [];
    if (dpkg) managers.push('dpkg');
    if (pacman) managers.push('pacman');
    if (apkInstalled) managers.push('apk');
    if (rpmVar || rpmSysimage) managers.push('rpm');
    return {
      managers,
      dpkgInfo: dpkg ? '/var/lib/dpkg/info' : null,
      pacmanLocal: pacman ? '/var/lib/pacman/local' : null,
      apkInstalled,
      aliases,
    };
  }

  /**
   * On usr-merged systems `/bin` is a symlink to `usr/bin`, so `/bin/sh` and
   * `/usr/bin/sh` are one file while dpkg may list it under either name.
   */
  private async detectMergedFolders(): Promise<Array<[string, string]>> {
    const pairs = await Promise.all(
      MERGE_CANDIDATES.map(async (folder): Promise<[string, string] | null> => {
        try {
          const info = await lstat(this.inRoot(folder));
          if (!info.isSymbolicLink()) return null;
          const target = await readlink(this.inRoot(folder));
          const resolved = path.posix.resolve(path.posix.dirname(folder), target);
          return resolved === folder ? null : [folder, resolved];
        } catch {
          return null;
        }
      }),
    );
    return pairs.filter((pair): pair is [string, string] => pair !== null);
  }

  /** Every name the asked path has on this system, itself first. */
  private namesOf(layout: Layout, asked: string): string[] {
    const names = [path.posix.normalize(asked)];
    for (let index = 0; index < names.length && names.length < 16; index++) {
      const name = names[index]!;
      for (const [link, target] of layout.aliases) {
        for (const [from, to] of [[link, target], [target, link]] as const) {
          if (name.startsWith(`${from}/`)) {
            const other = to + name.slice(from.length);
            if (!names.includes(other)) names.push(other);
          }
        }
      }
    }
    return names;
  }

  private wantedFor(layout: Layout, asked: readonly string[]): Wanted {
    const wanted: Wanted = new Map();
    for (const original of asked) {
      for (const name of this.namesOf(layout, original)) {
        let askers = wanted.get(name);
        if (!askers) wanted.set(name, (askers = new Set()));
        askers.add(original);
      }
    }
    return wanted;
  }

  // dpkg -----------------------------------------------------------------

  private async scanDpkg(layout: Layout, asked: string[], found: Map<string, PackageOwner>): Promise<void> {
    if (asked.length === 0) return;
    const infoDirectory = this.inRoot(layout.dpkgInfo!);
    this.dpkgListsPromise ??= readdir(infoDirectory).then(
      (names) => names.filter((name) => name.endsWith('.list')).sort(),
      () => [],
    );
    this.dpkgDiversionsPromise ??= readDiversions(this.inRoot('/var/lib/dpkg/diversions'));
    const [lists, diversions] = await Promise.all([this.dpkgListsPromise, this.dpkgDiversionsPromise]);

    const wanted = this.wantedFor(layout, asked);
    // A diverted file's new name appears in no list: its original package
    // lists the old name. Look for the old name on its behalf.
    const divertedAway = new Map<string, Diversion>();
    for (const diversion of diversions) {
      const askers = wanted.get(diversion.to);
      if (!askers) continue;
      if (!wanted.has(diversion.from)) wanted.set(diversion.from, new Set());
      for (const asker of askers) divertedAway.set(asker, diversion);
    }

    // listed path -> every list that names it, in list-name order
    const listers = new Map<string, string[]>();
    await scanFiles(
      lists.map((name) => path.join(infoDirectory, name)),
      this.concurrency,
      new Set(wanted.keys()),
      (file, line) => {
        let names = listers.get(line);
        if (!names) listers.set(line, (names = []));
        names.push(path.basename(file, '.list'));
      },
    );

    const owner = (listName: string): PackageOwner => {
      const colon = listName.indexOf(':');
      return colon < 0
        ? { manager: 'dpkg', package: listName }
        : { manager: 'dpkg', package: listName.slice(0, colon), architecture: listName.slice(colon + 1) };
    };
    const divertedBy = new Map(diversions.map((diversion) => [diversion.from, diversion]));

    for (const original of new Set(asked)) {
      if (found.has(original)) continue;
      const away = divertedAway.get(original);
      if (away) {
        // The file at the diverted-to name is the original package's.
        const packaged = (listers.get(away.from) ?? []).map(owner).find((candidate) => candidate.package !== away.package);
        if (packaged) found.set(original, packaged);
        continue;
      }
      for (const name of this.namesOf(layout, original)) {
        const names = listers.get(name);
        if (!names || names.length === 0) continue;
        const diversion = divertedBy.get(name);
        if (diversion) {
          // A local diversion (`:`) means the administrator's own file sits here.
          if (diversion.package === ':') break;
          const diverter = names.map(owner).find((candidate) => candidate.package === diversion.package);
          found.set(original, diverter ?? owner(names[0]!));
        } else {
          found.set(original, owner(names[0]!));
        }
        break;
      }
    }
  }

  // pacman ---------------------------------------------------------------

  private async scanPacman(layout: Layout, asked: string[], found: Map<string, PackageOwner>): Promise<void> {
    if (asked.length === 0) return;
    const local = this.inRoot(layout.pacmanLocal!);
    const entries = await readdir(local, { withFileTypes: true }).catch(() => []);
    const packages = entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort();
    const wanted = this.wantedFor(layout, asked);
    // pacman lists paths without the leading slash.
    const relative = new Map<string, string>();
    for (const name of wanted.keys()) relative.set(name.slice(1), name);
    const listed = new Map<string, string>();
    await scanFiles(
      packages.map((directory) => path.join(local, directory, 'files')),
      this.concurrency,
      new Set(relative.keys()),
      (file, line) => {
        const absolute = relative.get(line)!;
        if (!listed.has(absolute)) listed.set(absolute, pacmanPackageName(path.basename(path.dirname(file))));
      },
    );
    assignOwners(wanted, listed, 'pacman', found);
  }

  // apk ------------------------------------------------------------------

  private async scanApk(layout: Layout, asked: string[], found: Map<string, PackageOwner>): Promise<void> {
    if (asked.length === 0) return;
    this.apkTextPromise ??= readFile(this.inRoot(layout.apkInstalled!), 'utf8').catch(() => '');
    const text = await this.apkTextPromise;
    const wanted = this.wantedFor(layout, asked);
    const listed = new Map<string, string>();
    let packageName = '';
    let folder = '';
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      const line = text.slice(start, end);
      start = end + 1;
      if (line.length < 2 || line[1] !== ':') {
        // A blank line ends a package block.
        if (line.length === 0) {
          packageName = '';
          folder = '';
        }
        continue;
      }
      const value = line.slice(2);
      switch (line[0]) {
        case 'P':
          packageName = value;
          folder = '';
          break;
        case 'F':
          folder = value;
          break;
        case 'R': {
          const absolute = folder ? `/${folder}/${value}` : `/${value}`;
          if (wanted.has(absolute) && !listed.has(absolute) && packageName) listed.set(absolute, packageName);
          break;
        }
        default:
          break;
      }
    }
    assignOwners(wanted, listed, 'apk', found);
  }

  // rpm ------------------------------------------------------------------

  private async queryRpm(layout: Layout, asked: string[], found: Map<string, PackageOwner>): Promise<void> {
    if (asked.length === 0) return;
    // First the paths as asked, then (for what is still unowned) their
    // usr-merge aliases, in case the database lists only the other name.
    const first = await this.rpmOwners(asked);
    for (const [original, name] of first) found.set(original, { manager: 'rpm', package: name });
    const retry = new Map<string, string>();
    for (const original of asked) {
      if (found.has(original)) continue;
      for (const alias of this.namesOf(layout, original).slice(1)) if (!retry.has(alias)) retry.set(alias, original);
    }
    if (retry.size === 0) return;
    const second = await this.rpmOwners([...retry.keys()]);
    for (const [alias, name] of second) {
      const original = retry.get(alias)!;
      if (!found.has(original)) found.set(original, { manager: 'rpm', package: name });
    }
  }

  /** Batches paths into few rpm calls; falls back to one call per path when the output cannot be lined up. */
  private async rpmOwners(paths: readonly string[]): Promise<Map<string, string>> {
    const owners = new Map<string, string>();
    const rootArguments = this.root === '/' ? [] : ['--root', this.root];
    const ask = (batch: readonly string[]) =>
      this.executor
        .run(['rpm', ...rootArguments, '-qf', '--qf', '%{NAME}\\n', ...batch], { mode: 'always', timeout: this.rpmTimeout })
        .catch(() => null);

    for (let index = 0; index < paths.length; index += RPM_BATCH) {
      const batch = paths.slice(index, index + RPM_BATCH);
      const result = await ask(batch);
      if (!result || result.timedOut) continue;
      const aligned = alignRpmOutput(batch, result.stdout);
      if (aligned) {
        for (const [asked, name] of aligned) owners.set(asked, name);
        continue;
      }
      // Several owners for one path, or messages on stderr: ask one by one.
      const single = await mapLimit(batch, 4, async (one) => ({ one, result: await ask([one]) }));
      for (const { one, result: answer } of single) {
        if (!answer || answer.timedOut || answer.exitCode !== 0) continue;
        const name = answer.stdout.split('\n')[0]?.trim();
        if (name && isRpmName(name)) owners.set(one, name);
      }
    }
    return owners;
  }
}

/** Lines up `rpm -qf` output with the paths asked; null when it cannot. */
function alignRpmOutput(batch: readonly string[], stdout: string): Map<string, string> | null {
  const lines = stdout.split('\n').filter((line) => line.length > 0);
  if (lines.length !== batch.length) return null;
  const owners = new Map<string, string>();
  for (let index = 0; index < batch.length; index++) {
    const asked = batch[index]!;
    const line = lines[index]!;
    if (line.includes(asked) && (/is not owned by any package/.test(line) || line.startsWith('error:'))) continue;
    if (!isRpmName(line)) return null;
    owners.set(asked, line);
  }
  return owners;
}

function isRpmName(line: string): boolean {
  return /^[A-Za-z0-9_+.~^-]+$/.test(line);
}

/** `ripgrep-14.1.0-1` -> `ripgrep`: pacman versions and releases carry no hyphen. */
export function pacmanPackageName(directory: string): string {
  const parts = directory.split('-');
  return parts.length > 2 ? parts.slice(0, -2).join('-') : directory;
}

function assignOwners(
  wanted: Wanted,
  listed: Map<string, string>,
  manager: SystemPackageManager,
  found: Map<string, PackageOwner>,
): void {
  for (const [name, askers] of wanted) {
    const packageName = listed.get(name);
    if (!packageName) continue;
    for (const asker of askers) {
      // The asked name itself wins over an alias of it.
      if (!found.has(asker) || name === asker) found.set(asker, { manager, package: packageName });
    }
  }
}

interface Diversion {
  from: string;
  to: string;
  /** The diverting package, or `:` for a local diversion. */
  package: string;
}

async function readDiversions(file: string): Promise<Diversion[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const lines = text.split('\n');
  const diversions: Diversion[] = [];
  for (let index = 0; index + 2 < lines.length; index += 3) {
    const [from, to, packageName] = [lines[index]!, lines[index + 1]!, lines[index + 2]!];
    if (from && to && packageName) diversions.push({ from, to, package: packageName });
  }
  return diversions;
}

/**
 * Streams each file's lines against `wanted`, reading `concurrency` files at
 * once. The callback API of fs is used on purpose: on a machine with a few
 * hundred small list files, `fs.promises.readFile` costs about twice as much.
 * Lines are compared as bytes first (by length) so that only candidate lines
 * are decoded.
 */
function scanFiles(
  files: readonly string[],
  concurrency: number,
  wanted: ReadonlySet<string>,
  onMatch: (file: string, line: string) => void,
): Promise<void> {
  if (files.length === 0 || wanted.size === 0) return Promise.resolve();
  const lengths = new Set<number>();
  for (const line of wanted) lengths.add(Buffer.byteLength(line));
  return new Promise((resolve) => {
    let next = 0;
    let active = 0;
    let done = 0;
    const scan = (file: string, buffer: Buffer): void => {
      let start = 0;
      while (start < buffer.length) {
        let end = buffer.indexOf(10, start);
        if (end < 0) end = buffer.length;
        if (lengths.has(end - start)) {
          const line = buffer.toString('utf8', start, end);
          if (wanted.has(line)) onMatch(file, line);
        }
        start = end + 1;
      }
    };
    const pump = (): void => {
      while (active < concurrency && next < files.length) {
        const file = files[next++]!;
        active++;
        readFileCallback(file, (error, buffer) => {
          active--;
          done++;
          // A list file removed while we read is simply not there any more.
          if (!error) scan(file, buffer);
          if (done === files.length) resolve();
          else pump();
        });
      }
    };
    pump();
  });
}

async function mapLimit<T, R>(items: readonly T[], limit: number, map: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await map(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export interface HomebrewKeg {
  /** The Homebrew prefix: `/opt/homebrew`, `/usr/local`, `/home/linuxbrew/.linuxbrew`. */
  prefix: string;
  kind: 'formula' | 'cask';
  name: string;
  version: string;
}

/**
 * Homebrew keeps no file list: a file is a formula's when it lies in
 * `<prefix>/Cellar/<formula>/<version>/` (casks: `Caskroom`).
 */
export function homebrewKegOf(file: string): HomebrewKeg | null {
  const match = /^(.*)\/(Cellar|Caskroom)\/([^/]+)\/([^/]+)(?:\/|$)/.exec(file);
  if (!match) return null;
  return {
    prefix: match[1] || '/',
    kind: match[2] === 'Cellar' ? 'formula' : 'cask',
    name: match[3]!,
    version: match[4]!,
  };
}
