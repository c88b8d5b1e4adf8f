import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BinarySpecSchema, type BinarySpec } from '../../src/catalog/schema.ts';
import { ConfigSchema } from '../../src/core/config.ts';
import { UpkeepError } from '../../src/core/errors.ts';
import { Executor } from '../../src/core/exec.ts';
import { createHttpClient, type HttpClient } from '../../src/core/http.ts';
import { installBinary, renderBinary, type InstallBinaryResult } from '../../src/install/binary.ts';

/**
 * The binary method end to end: release assets built here with the real tar
 * (and by hand where tar refuses to make something unsafe), served by an
 * in-process server that plays GitHub, unpacked with the system's tar and
 * unzip, placed in a temp bin folder and run.
 */

const SCRIPT = '#!/bin/sh\necho tool 1.2.3\n';
const RELEASE = '/acme/tool/releases/download/v1.2.3';
const GITHUB_RELEASE = `https://github.com${RELEASE}`;

// ---- archives -------------------------------------------------------------

interface Entry {
  name: string;
  type?: 'file' | 'folder' | 'symlink';
  content?: string | Buffer;
  mode?: number;
  /** For symlinks. */
  target?: string;
}

/** A ustar archive written byte by byte, for members real tar will not create. */
function tarOf(entries: Entry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    const content = type === 'file' ? Buffer.from(entry.content ?? '') : Buffer.alloc(0);
    const header = Buffer.alloc(512);
    const field = (value: string, offset: number, length: number): void => {
      header.write(value, offset, length, 'utf8');
    };
    const octal = (value: number, offset: number, length: number): void => field(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length);
    field(entry.name, 0, 100);
    octal(entry.mode ?? (type === 'folder' ? 0o755 : type === 'symlink' ? 0o777 : 0o755), 100, 8);
    octal(0, 108, 8);
    octal(0, 116, 8);
    octal(content.length, 124, 12);
    octal(1_700_000_000, 136, 12);
    header.fill(' ', 148, 156);
    field(type === 'folder' ? '5' : type === 'symlink' ? '2' : '0', 156, 1);
    if (entry.target) field(entry.target, 157, 100);
    field('ustar\0', 257, 6);
    field('00', 263, 2);
    let sum = 0;
    for (const byte of header) sum += byte;
    field(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
    blocks.push(header, content, Buffer.alloc((512 - (content.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, index) => {
  let value = index;
  for (let bit = 0; bit < 8; bit++) value = value & 1 ? 0xedb88320 ^ (value >>> 1) : value >>> 1;
  return value >>> 0;
});

function crc32(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = CRC_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** A zip of stored (uncompressed) members with Unix modes, so unzip keeps links and permissions. */
function zipOf(entries: Entry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    const name = Buffer.from(type === 'folder' && !entry.name.endsWith('/') ? `${entry.name}/` : entry.name);
    const data = type === 'symlink' ? Buffer.from(entry.target ?? '') : type === 'file' ? Buffer.from(entry.content ?? '') : Buffer.alloc(0);
    const kind = type === 'folder' ? 0o040000 : type === 'symlink' ? 0o120000 : 0o100000;
    const mode = kind | (entry.mode ?? (type === 'symlink' ? 0o777 : 0o755));
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0, 6);
    local.writeUInt16LE(0, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0, 8);
    central.writeUInt16LE(0, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((mode << 16) >>> 0), 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    centrals.push(central, name);
    offset += local.length + name.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

let workshop: string;

/** Builds an archive with the system's tar from a tree of files. */
async function realTar(files: Record<string, string>, flags: string): Promise<Buffer> {
  const folder = await mkdtemp(join(workshop, 'tree-'));
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(folder, path, '..'), { recursive: true });
    await writeFile(join(folder, path), content);
    await chmod(join(folder, path), 0o755);
  }
  const output = join(folder, 'out.archive');
  execFileSync('tar', [flags, output, '-C', folder, ...Object.keys(files).map((path) => path.split('/')[0]!).filter((top, index, all) => all.indexOf(top) === index)]);
  return readFile(output);
}

async function zstdOf(data: Buffer): Promise<Buffer> {
  const folder = await mkdtemp(join(workshop, 'zst-'));
  await writeFile(join(folder, 'in.tar'), data);
  execFileSync('zstd', ['-q', join(folder, 'in.tar'), '-o', join(folder, 'out.tar.zst')]);
  return readFile(join(folder, 'out.tar.zst'));
}

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');
const sha512 = (data: string | Buffer): string => createHash('sha512').update(data).digest('hex');

// ---- the fake release host ------------------------------------------------

interface Route {
  status?: number;
  body?: string | Buffer;
  headers?: Record<string, string>;
}

let server: Server;
let base: string;
const routes = new Map<string, Route>();
const requested: string[] = [];
const sockets = new Set<Socket>();

beforeAll(async () => {
  workshop = await mkdtemp(join(tmpdir(), 'upkeep-binary-fixtures-'));
  server = createServer((request, response) => {
    const path = request.url ?? '';
    requested.push(path);
    const route = routes.get(path);
    if (!route) {
      response.writeHead(404, { 'content-type': 'text/plain' });
      response.end('Not Found');
      return;
    }
    response.writeHead(route.status ?? 200, { 'content-type': 'application/octet-stream', ...route.headers });
    response.end(route.body ?? '');
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(workshop, { recursive: true, force: true });
});

function serve(name: string, body: string | Buffer): void {
  routes.set(`${RELEASE}/${name}`, { body });
}

// ---- one machine per test -------------------------------------------------

let root: string;
let binDir: string;
let stagingRoot: string;
let http: HttpClient;
const executor = new Executor({ env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C' } });

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'upkeep-binary-'));
  binDir = join(root, 'home', '.local', 'bin');
  stagingRoot = join(root, 'cache', 'staging');
  http = createHttpClient({
    config: ConfigSchema.parse({ endpoints: { github: base }, network: { timeout: 5, retries: 1 } }),
    environment: {},
    sleep: async () => undefined,
  });
});

afterEach(async () => {
  await http.close();
  await rm(root, { recursive: true, force: true });
  routes.clear();
  requested.length = 0;
});

const spec = (input: unknown): BinarySpec => BinarySpecSchema.parse(input);

function install(recipe: BinarySpec, binaries: string[] = ['tool'], extra: { executor?: Executor } = {}): Promise<InstallBinaryResult> {
  return installBinary({
    toolId: 'tool',
    binaries,
    spec: recipe,
    version: 'v1.2.3',
    os: 'linux',
    arch: 'x86_64',
    binDir,
    stagingRoot,
    http,
    executor: extra.executor ?? executor,
    githubEndpoint: base,
  });
}

async function failure(promise: Promise<unknown>): Promise<UpkeepError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(UpkeepError);
    return error as UpkeepError;
  }
  throw new Error('expected a failure');
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function binDirEntries(): Promise<string[]> {
  return (await exists(binDir)) ? (await readdir(binDir)).sort() : [];
}

/** Staging folders never outlive an install, whatever happened. */
async function expectStagingEmpty(): Promise<void> {
  expect(await exists(stagingRoot)).toBe(true);
  expect(await readdir(stagingRoot)).toEqual([]);
}

function run(path: string): string {
  return execFileSync(path, { encoding: 'utf8' });
}

const tarballRecipe = (): BinarySpec =>
  spec({
    url: `${GITHUB_RELEASE}/tool-{version}-{os}-{arch}.tar.gz`,
    checksum: { url: `${GITHUB_RELEASE}/checksums.txt` },
  });

// ---- tests ----------------------------------------------------------------

describe('installBinary', () => {
  it('installs from a tar.gz on the github endpoint, checked against checksums.txt, and the tool runs', async () => {
    const archive = await realTar({ 'tool-1.2.3/tool': SCRIPT, 'tool-1.2.3/README.md': '# tool\n' }, '-czf');
    serve('tool-1.2.3-linux-x86_64.tar.gz', archive);
    serve('checksums.txt', `${sha256('other')}  tool-1.2.3-darwin-aarch64.tar.gz\n${sha256(archive)}  tool-1.2.3-linux-x86_64.tar.gz\n`);

    const result = await install(tarballRecipe());

    expect(result).toEqual({
      url: `${base}${RELEASE}/tool-1.2.3-linux-x86_64.tar.gz`,
      files: [{ name: 'tool', path: join(binDir, 'tool'), sha256: sha256(SCRIPT) }],
      checksum: { algorithm: 'sha256', expected: sha256(archive), source: 'file' },
    });
    expect((await stat(join(binDir, 'tool'))).mode & 0o777).toBe(0o755);
    expect(run(join(binDir, 'tool'))).toBe('tool 1.2.3\n');
    expect(await binDirEntries()).toEqual(['tool']);
    // The checksum is fetched first, so a release without one costs no download.
    expect(requested).toEqual([`${RELEASE}/checksums.txt`, `${RELEASE}/tool-1.2.3-linux-x86_64.tar.gz`]);
    await expectStagingEmpty();
  });

  it('installs every binary the archive has, the shallowest copy of each, and skips extra names it lacks', async () => {
    const deep = '#!/bin/sh\necho example\n';
    const archive = await realTar(
      {
        'pkg/share/examples/tool': deep,
        'pkg/tool': SCRIPT,
        'pkg/toolctl': '#!/bin/sh\necho toolctl\n',
      },
      '-czf',
    );
    serve('tool.tar.gz', archive);
    const result = await install(spec({ url: `${GITHUB_RELEASE}/tool.tar.gz` }), ['tool', 'toolctl', 'tool-legacy']);
    expect(result.files.map((file) => file.name)).toEqual(['tool', 'toolctl']);
    expect(result.checksum).toBeNull();
    expect(run(join(binDir, 'tool'))).toBe('tool 1.2.3\n');
    expect(run(join(binDir, 'toolctl'))).toBe('toolctl\n');
    expect(await binDirEntries()).toEqual(['tool', 'toolctl']);
  });

  it('takes the path the recipe gives, rendered', async () => {
    const archive = await realTar({ 'tool-1.2.3/bin/tool-linux': SCRIPT, 'tool-1.2.3/tool': '#!/bin/sh\necho wrong\n' }, '-czf');
    serve('tool.tgz', archive);
    await install(spec({ url: `${GITHUB_RELEASE}/tool.tgz`, files: { tool: 'tool-{version}/bin/tool-{os}' } }));
    expect(run(join(binDir, 'tool'))).toBe('tool 1.2.3\n');
  });

  it('installs a raw binary under the tool name, checked against a pinned digest, replacing the old one', async () => {
    serve('tool-linux-amd64', SCRIPT);
    await mkdir(binDir, { recursive: true });
    await writeFile(join(binDir, 'tool'), '#!/bin/sh\necho old\n', { mode: 0o755 });
    const result = await install(
      spec({
        url: `${GITHUB_RELEASE}/tool-{os}-{arch}`,
        arch: { x86_64: 'amd64' },
        checksum: { version: '1.2.3', sha256: { 'linux-x86_64': sha256(SCRIPT) } },
      }),
    );
    expect(result.checksum).toEqual({ algorithm: 'sha256', expected: sha256(SCRIPT), source: 'pinned' });
    expect(run(join(binDir, 'tool'))).toBe('tool 1.2.3\n');
    expect(await binDirEntries()).toEqual(['tool']);
    await expectStagingEmpty();
  });

  it('installs a gzipped single file checked against a one-digest sha512 file', async () => {
    const compressed = gzipSync(SCRIPT);
    serve('tool-linux.gz', compressed);
    serve('tool-linux.gz.sha512', `${sha512(compressed)}  tool-linux.gz\n`);
    const result = await install(
      spec({ url: `${GITHUB_RELEASE}/tool-{os}.gz`, checksum: { url: `${GITHUB_RELEASE}/tool-{os}.gz.sha512`, algorithm: 'sha512' } }),
    );
    expect(result.checksum).toEqual({ algorithm: 'sha512', expected: sha512(compressed), source: 'file' });
    expect(run(join(binDir, 'tool'))).toBe('tool 1.2.3\n');
  });

  it('installs from a zip with unzip, also from a download planning rendered', async () => {
    const archive = zipOf([
      { name: 'tool-1.2.3/', type: 'folder' },
      { name: 'tool-1.2.3/tool', content: SCRIPT, mode: 0o644 },
    ]);
    serve('tool.zip', archive);
    const recipe = spec({ url: `${GITHUB_RELEASE}/tool.zip` });
    await install(recipe);
    // Permissions come from upkeep, not from the archive.
    expect((await stat(join(binDir, 'tool'))).mode & 0o777).toBe(0o755);
    expect(run(join(binDir, 'tool'))).toBe('tool 1.2.3\n');

    await rm(binDir, { recursive: true });
    const rendered = renderBinary(recipe, { version: '1.2.3', os: 'linux', arch: 'x86_64', binaries: ['tool'], githubEndpoint: base });
    const result = await installBinary({ toolId: 'tool', rendered, binDir, stagingRoot, http, executor });
    expect(result.files.map((file) => file.path)).toEqual([join(binDir, 'tool')]);
    expect(run(join(binDir, 'tool'))).toBe('tool 1.2.3\n');
  });

  it('installs from tar.xz and tar.zst', async () => {
    serve('tool.tar.xz', await realTar({ 'xz/tool': SCRIPT }, '-cJf'));
    await install(spec({ url: `${GITHUB_RELEASE}/tool.tar.xz` }));
    expect(run(join(binDir, 'tool'))).toBe('tool 1.2.3\n');

    await rm(binDir, { recursive: true });
    serve('tool.tar.zst', await zstdOf(await realTar({ 'zst/tool': SCRIPT }, '-cf')));
    await install(spec({ url: `${GITHUB_RELEASE}/tool.tar.zst` }));
    expect(run(join(binDir, 'tool'))).toBe('tool 1.2.3\n');
    await expectStagingEmpty();
  });

  it('follows the asset redirect to another path, as GitHub does to its object store', async () => {
    const archive = await realTar({ 'tool/tool': SCRIPT }, '-czf');
    routes.set(`${RELEASE}/tool.tar.gz`, { status: 302, headers: { location: `${base}/objects/release-asset-1?sig=abc` } });
    routes.set('/objects/release-asset-1?sig=abc', { body: archive });
    serve('checksums.txt', `${sha256(archive)}  tool.tar.gz\n`);
    const result = await install(spec({ url: `${GITHUB_RELEASE}/tool.tar.gz`, checksum: { url: `${GITHUB_RELEASE}/checksums.txt` } }));
    expect(result.checksum?.expected).toBe(sha256(archive));
    expect(requested).toContain('/objects/release-asset-1?sig=abc');
    expect(run(join(binDir, 'tool'))).toBe('tool 1.2.3\n');
  });

  it('refuses a tampered asset: E_CHECKSUM_MISMATCH with both digests, the old binary untouched, staging removed', async () => {
    const genuine = await realTar({ 'tool-1.2.3/tool': SCRIPT }, '-czf');
    const tampered = await realTar({ 'tool-1.2.3/tool': '#!/bin/sh\necho owned\n' }, '-czf');
    serve('tool-1.2.3-linux-x86_64.tar.gz', tampered);
    serve('checksums.txt', `${sha256(genuine)}  tool-1.2.3-linux-x86_64.tar.gz\n`);
    await mkdir(binDir, { recursive: true });
    await writeFile(join(binDir, 'tool'), '#!/bin/sh\necho old\n', { mode: 0o755 });

    const error = await failure(install(tarballRecipe()));
    expect(error.code).toBe('E_CHECKSUM_MISMATCH');
    expect(error.details).toMatchObject({ algorithm: 'sha256', expected: sha256(genuine), actual: sha256(tampered) });
    expect(run(join(binDir, 'tool'))).toBe('old\n');
    expect(await binDirEntries()).toEqual(['tool']);
    await expectStagingEmpty();
  });

  it('refuses when the checksum file has no line for the asset, without downloading it', async () => {
    serve('tool-1.2.3-linux-x86_64.tar.gz', await realTar({ 'tool-1.2.3/tool': SCRIPT }, '-czf'));
    serve('checksums.txt', `${sha256('a')}  tool-1.2.3-darwin-aarch64.tar.gz\n${sha256('b')}  tool-1.2.3-linux-aarch64.tar.gz\n`);
    const error = await failure(install(tarballRecipe()));
    expect(error.code).toBe('E_CHECKSUM_UNAVAILABLE');
    expect(error.message).toContain('tool-1.2.3-linux-x86_64.tar.gz');
    expect(requested).toEqual([`${RELEASE}/checksums.txt`]);
    expect(await binDirEntries()).toEqual([]);
    await expectStagingEmpty();
  });

  it('refuses when the checksum file cannot be fetched', async () => {
    serve('tool-1.2.3-linux-x86_64.tar.gz', await realTar({ 'tool-1.2.3/tool': SCRIPT }, '-czf'));
    const error = await failure(install(tarballRecipe()));
    expect(error.code).toBe('E_CHECKSUM_UNAVAILABLE');
    expect((error.cause as UpkeepError).code).toBe('E_HTTP_STATUS');
    expect(await binDirEntries()).toEqual([]);
  });

  it('reports a missing asset as E_HTTP_STATUS with its URL', async () => {
    const error = await failure(install(spec({ url: `${GITHUB_RELEASE}/tool-{version}.tar.gz` })));
    expect(error.code).toBe('E_HTTP_STATUS');
    expect(error.details).toMatchObject({ status: 404, url: `${base}${RELEASE}/tool-1.2.3.tar.gz` });
    expect(await binDirEntries()).toEqual([]);
    await expectStagingEmpty();
  });

  it('refuses archives with absolute or ".." members before unpacking anything', async () => {
    serve(
      'dotdot.tar.gz',
      gzipSync(tarOf([{ name: 'tool-1.2.3/tool', content: SCRIPT }, { name: '../evil', content: 'gotcha' }])),
    );
    const dotdot = await failure(install(spec({ url: `${GITHUB_RELEASE}/dotdot.tar.gz` })));
    expect(dotdot.code).toBe('E_ARCHIVE_INVALID');
    expect(dotdot.details?.members).toEqual(['../evil (a ".." step)']);

    serve('absolute.tar.gz', gzipSync(tarOf([{ name: `${root}/evil-absolute`, content: 'gotcha' }, { name: 'tool', content: SCRIPT }])));
    const absolute = await failure(install(spec({ url: `${GITHUB_RELEASE}/absolute.tar.gz` })));
    expect(absolute.code).toBe('E_ARCHIVE_INVALID');
    expect(absolute.message).toContain('an absolute path');
    expect(await exists(join(root, 'evil-absolute'))).toBe(false);

    serve('dotdot.zip', zipOf([{ name: 'tool', content: SCRIPT }, { name: 'sub/../../evil', content: 'gotcha' }]));
    const zipped = await failure(install(spec({ url: `${GITHUB_RELEASE}/dotdot.zip` })));
    expect(zipped.code).toBe('E_ARCHIVE_INVALID');
    expect(zipped.message).toContain('sub/../../evil');

    expect(await binDirEntries()).toEqual([]);
    await expectStagingEmpty();
    expect(await readdir(root)).toEqual(['cache']);
  });

  it('refuses a member written through another member that is not a folder', async () => {
    serve(
      'through.tar.gz',
      gzipSync(
        tarOf([
          { name: 'pkg/lib', type: 'symlink', target: root },
          { name: 'pkg/lib/planted', content: 'gotcha' },
          { name: 'pkg/tool', content: SCRIPT },
        ]),
      ),
    );
    const error = await failure(install(spec({ url: `${GITHUB_RELEASE}/through.tar.gz` })));
    expect(error.code).toBe('E_ARCHIVE_INVALID');
    expect(error.message).toContain('pkg/lib/planted (inside pkg/lib');
    expect(await exists(join(root, 'planted'))).toBe(false);
    expect(await binDirEntries()).toEqual([]);
  });

  it('refuses symbolic links that point outside the archive', async () => {
    serve(
      'links.tar.gz',
      gzipSync(
        tarOf([
          { name: 'pkg/', type: 'folder' },
          { name: 'pkg/tool', content: SCRIPT },
          { name: 'pkg/inside', type: 'symlink', target: 'tool' },
          { name: 'pkg/outside', type: 'symlink', target: '../../../../../../etc/passwd' },
        ]),
      ),
    );
    const tarred = await failure(install(spec({ url: `${GITHUB_RELEASE}/links.tar.gz` })));
    expect(tarred.code).toBe('E_ARCHIVE_INVALID');
    expect(tarred.message).toContain('pkg/outside');
    expect(tarred.message).not.toContain('pkg/inside');

    serve('links.zip', zipOf([{ name: 'tool', content: SCRIPT }, { name: 'shell', type: 'symlink', target: '/bin/sh' }]));
    const zipped = await failure(install(spec({ url: `${GITHUB_RELEASE}/links.zip` })));
    expect(zipped.code).toBe('E_ARCHIVE_INVALID');
    expect(zipped.message).toContain('shell');
    expect(await binDirEntries()).toEqual([]);
    await expectStagingEmpty();
  });

  it('keeps links that stay inside the archive', async () => {
    serve(
      'inner.tar.gz',
      gzipSync(
        tarOf([
          { name: 'pkg/', type: 'folder' },
          { name: 'pkg/libexec/', type: 'folder' },
          { name: 'pkg/libexec/tool-real', content: SCRIPT },
          { name: 'pkg/tool', type: 'symlink', target: 'libexec/tool-real' },
        ]),
      ),
    );
    // A link is never found by name, but a recipe path may go through one.
    await install(spec({ url: `${GITHUB_RELEASE}/inner.tar.gz`, files: { tool: 'pkg/tool' } }));
    expect(run(join(binDir, 'tool'))).toBe('tool 1.2.3\n');
  });

  it('names the executables it found when the binary is not in the archive', async () => {
    serve('other.tar.gz', await realTar({ 'pkg/bin/other-tool': SCRIPT, 'pkg/README': 'readme' }, '-czf'));
    const error = await failure(install(spec({ url: `${GITHUB_RELEASE}/other.tar.gz` })));
    expect(error.code).toBe('E_ARCHIVE_INVALID');
    expect(error.message).toContain('has no tool');
    expect(error.message).toContain('pkg/bin/other-tool');
    expect(error.hint).toContain('files');
    expect(await binDirEntries()).toEqual([]);
    await expectStagingEmpty();
  });

  it('reports a damaged archive as E_ARCHIVE_INVALID', async () => {
    serve('broken.tar.gz', Buffer.from('this is not a tarball at all, just text'));
    const tarred = await failure(install(spec({ url: `${GITHUB_RELEASE}/broken.tar.gz` })));
    expect(tarred.code).toBe('E_ARCHIVE_INVALID');
    serve('broken.gz', Buffer.from('not gzip either'));
    const gzipped = await failure(install(spec({ url: `${GITHUB_RELEASE}/broken.gz` })));
    expect(gzipped.code).toBe('E_ARCHIVE_INVALID');
    serve('broken.zip', Buffer.from('PK but not really'));
    const zipped = await failure(install(spec({ url: `${GITHUB_RELEASE}/broken.zip` })));
    expect(zipped.code).toBe('E_ARCHIVE_INVALID');
    await expectStagingEmpty();
  });

  it('asks for unzip when it is not installed', async () => {
    serve('tool.zip', zipOf([{ name: 'tool', content: SCRIPT }]));
    const emptyPath = join(root, 'empty-path');
    await mkdir(emptyPath);
    const bare = new Executor({ env: { PATH: emptyPath } });
    const error = await failure(install(spec({ url: `${GITHUB_RELEASE}/tool.zip` }), ['tool'], { executor: bare }));
    expect(error.code).toBe('E_ARCHIVE_INVALID');
    expect(error.message).toContain('unzip');
    expect(error.hint).toContain('install unzip');
    await expectStagingEmpty();
  });

  it('refuses a platform the recipe does not cover, before any request', async () => {
    const error = await failure(install(spec({ url: `${GITHUB_RELEASE}/tool-{target}.tar.gz`, targets: { 'darwin-aarch64': 'aarch64-apple-darwin' } })));
    expect(error.code).toBe('E_PLATFORM_UNSUPPORTED');
    expect(requested).toEqual([]);
  });

  it('reports a bin folder it cannot create as E_INSTALL_FAILED, leaving no temporary file', async () => {
    await mkdir(join(root, 'home', '.local'), { recursive: true });
    await writeFile(binDir, 'a file where the folder should be');
    serve('tool-linux', SCRIPT);
    const error = await failure(install(spec({ url: `${GITHUB_RELEASE}/tool-{os}` })));
    expect(error.code).toBe('E_INSTALL_FAILED');
    expect(error.details?.binDir).toBe(binDir);
    expect(await readFile(binDir, 'utf8')).toBe('a file where the folder should be');
    await expectStagingEmpty();
  });
});
