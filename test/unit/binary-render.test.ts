import { describe, expect, it } from 'vitest';
import { BinarySpecSchema, type BinarySpec } from '../../src/catalog/schema.ts';
import { UpkeepError } from '../../src/core/errors.ts';
import { assetName, findChecksum, inferFormat, renderBinary, type RenderBinaryInput } from '../../src/install/binary.ts';

const spec = (input: unknown): BinarySpec => BinarySpecSchema.parse(input);
const linux: RenderBinaryInput = { version: '1.2.3', os: 'linux', arch: 'x86_64', binaries: ['tool'] };
const sha = (character: string): string => character.repeat(64);

function thrown(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('renderBinary', () => {
  it('substitutes version, os and arch with their defaults and strips a leading v', () => {
    const rendered = renderBinary(spec({ url: 'https://example.test/tool/v{version}/tool-{version}-{os}-{arch}.tar.gz' }), {
      ...linux,
      version: 'v1.2.3',
    });
    expect(rendered).toEqual({
      url: 'https://example.test/tool/v1.2.3/tool-1.2.3-linux-x86_64.tar.gz',
      format: 'tar.gz',
      files: [{ name: 'tool', pathInArchive: null, required: true }],
      checksum: null,
    });
    const mac = renderBinary(spec({ url: 'https://example.test/{os}/{arch}/tool' }), { ...linux, os: 'darwin', arch: 'aarch64' });
    expect(mac.url).toBe('https://example.test/darwin/aarch64/tool');
  });

  it('keeps a version that only starts with a v letter', () => {
    const rendered = renderBinary(spec({ url: 'https://example.test/{version}/tool' }), { ...linux, version: 'vendor-2' });
    expect(rendered.url).toBe('https://example.test/vendor-2/tool');
  });

  it('applies os and arch mappings', () => {
    const mapped = spec({
      url: 'https://example.test/tool_{version}_{os}_{arch}.zip',
      os: { linux: 'Linux', darwin: 'macOS' },
      arch: { x86_64: 'amd64', aarch64: 'arm64' },
    });
    expect(renderBinary(mapped, linux).url).toBe('https://example.test/tool_1.2.3_Linux_amd64.zip');
    expect(renderBinary(mapped, { ...linux, os: 'darwin', arch: 'aarch64' }).url).toBe('https://example.test/tool_1.2.3_macOS_arm64.zip');
    // A mapping that leaves a value out falls back to the default.
    const partial = spec({ url: 'https://example.test/{arch}', arch: { x86_64: 'amd64' } });
    expect(renderBinary(partial, { ...linux, arch: 'aarch64' }).url).toBe('https://example.test/aarch64');
  });

  it('substitutes {target} from targets, also in files and the checksum url', () => {
    const targeted = spec({
      url: 'https://example.test/v{version}/tool-{target}.tar.gz',
      targets: { 'linux-x86_64': 'x86_64-unknown-linux-musl', 'darwin-aarch64': 'aarch64-apple-darwin' },
      files: { tool: 'tool-{version}-{target}/tool' },
      checksum: { url: 'https://example.test/v{version}/tool-{target}.tar.gz.sha512', algorithm: 'sha512' },
    });
    expect(renderBinary(targeted, linux)).toEqual({
      url: 'https://example.test/v1.2.3/tool-x86_64-unknown-linux-musl.tar.gz',
      format: 'tar.gz',
      files: [{ name: 'tool', pathInArchive: 'tool-1.2.3-x86_64-unknown-linux-musl/tool', required: true }],
      checksum: { kind: 'file', url: 'https://example.test/v1.2.3/tool-x86_64-unknown-linux-musl.tar.gz.sha512', algorithm: 'sha512' },
    });
  });

  it('refuses a platform that targets leaves out, naming the supported ones', () => {
    const targeted = spec({ url: 'https://example.test/tool-{target}', targets: { 'linux-x86_64': 'x', 'darwin-aarch64': 'y' } });
    const error = thrown(() => renderBinary(targeted, { ...linux, arch: 'aarch64' }));
    expect(error).toBeInstanceOf(UpkeepError);
    expect((error as UpkeepError).code).toBe('E_PLATFORM_UNSUPPORTED');
    expect((error as UpkeepError).message).toContain('linux-aarch64');
    expect((error as UpkeepError).hint).toContain('linux-x86_64, darwin-aarch64');
    // targets decides support even when no template uses {target}.
    const unused = spec({ url: 'https://example.test/tool-{os}', targets: { 'darwin-x86_64': 'z' } });
    expect((thrown(() => renderBinary(unused, linux)) as UpkeepError).code).toBe('E_PLATFORM_UNSUPPORTED');
  });

  it('refuses {target} without targets as unsupported everywhere', () => {
    const error = thrown(() => renderBinary(spec({ url: 'https://example.test/tool-{target}' }), linux)) as UpkeepError;
    expect(error.code).toBe('E_PLATFORM_UNSUPPORTED');
    expect(error.details?.supported).toEqual([]);
  });

  it('throws a plain Error naming unknown placeholders, before judging the platform', () => {
    const error = thrown(() =>
      renderBinary(spec({ url: 'https://example.test/{name}-{version}', files: { tool: '{dir}/tool' }, targets: { 'darwin-x86_64': 'z' } }), linux),
    );
    expect(error).not.toBeInstanceOf(UpkeepError);
    expect((error as Error).message).toContain('{name}');
    expect((error as Error).message).toContain('{dir}');
    expect(() => renderBinary(spec({ url: 'https://example.test/x', checksum: { url: 'https://example.test/{sums}' } }), linux)).toThrow('{sums}');
  });

  it('infers the format from the URL unless the recipe names one', () => {
    const cases: Array<[string, string]> = [
      ['tool.tar.gz', 'tar.gz'],
      ['tool.tgz', 'tar.gz'],
      ['tool.tar.xz', 'tar.xz'],
      ['tool.txz', 'tar.xz'],
      ['tool.tar.bz2', 'tar.bz2'],
      ['tool.tbz2', 'tar.bz2'],
      ['tool.tar.zst', 'tar.zst'],
      ['tool.ZIP', 'zip'],
      ['tool.gz', 'gz'],
      ['tool-linux-amd64', 'raw'],
      ['tool.tar.gz?raw=true', 'tar.gz'],
    ];
    for (const [name, format] of cases) {
      expect(renderBinary(spec({ url: `https://example.test/download/${name}` }), linux).format, name).toBe(format);
    }
    expect(renderBinary(spec({ url: 'https://example.test/download/tool', format: 'gz' }), linux).format).toBe('gz');
    expect(inferFormat('https://example.test/a.tar.gz/tool')).toBe('raw');
  });

  it('rewrites github.com URLs to another github endpoint, and leaves other hosts alone', () => {
    const recipe = spec({
      url: 'https://github.com/acme/tool/releases/download/v{version}/tool.tar.gz',
      checksum: { url: 'https://github.com/acme/tool/releases/download/v{version}/checksums.txt' },
    });
    const mirrored = renderBinary(recipe, { ...linux, githubEndpoint: 'http://127.0.0.1:8080/mirror/' });
    expect(mirrored.url).toBe('http://127.0.0.1:8080/mirror/acme/tool/releases/download/v1.2.3/tool.tar.gz');
    expect(mirrored.checksum).toEqual({ kind: 'file', url: 'http://127.0.0.1:8080/mirror/acme/tool/releases/download/v1.2.3/checksums.txt', algorithm: 'sha256' });
    expect(renderBinary(recipe, { ...linux, githubEndpoint: 'https://github.com' }).url).toBe('https://github.com/acme/tool/releases/download/v1.2.3/tool.tar.gz');
    expect(renderBinary(recipe, linux).url).toBe('https://github.com/acme/tool/releases/download/v1.2.3/tool.tar.gz');
    const elsewhere = spec({ url: 'https://github.company.test/acme/tool.zip' });
    expect(renderBinary(elsewhere, { ...linux, githubEndpoint: 'http://mirror.test' }).url).toBe('https://github.company.test/acme/tool.zip');
  });

  it('uses a pinned digest only for its version and platform', () => {
    const pinned = spec({ url: 'https://example.test/{version}/tool', checksum: { version: 'v1.2.3', sha256: { 'linux-x86_64': sha('a'), 'darwin-aarch64': sha('b') } } });
    expect(renderBinary(pinned, linux).checksum).toEqual({ kind: 'pinned', algorithm: 'sha256', digest: sha('a') });
    expect(renderBinary(pinned, { ...linux, os: 'darwin', arch: 'aarch64' }).checksum).toEqual({ kind: 'pinned', algorithm: 'sha256', digest: sha('b') });
    expect(renderBinary(pinned, { ...linux, version: '1.2.4' }).checksum).toBeNull();
    expect(renderBinary(pinned, { ...linux, arch: 'aarch64' }).checksum).toBeNull();
  });

  it('defaults files to the tool binaries, the first one required', () => {
    const rendered = renderBinary(spec({ url: 'https://example.test/tool.tar.gz' }), { ...linux, binaries: ['fd', 'fdfind'] });
    expect(rendered.files).toEqual([
      { name: 'fd', pathInArchive: null, required: true },
      { name: 'fdfind', pathInArchive: null, required: false },
    ]);
    expect(renderBinary(spec({ url: 'https://example.test/tool.tar.gz' }), { ...linux, binaries: undefined }).files).toEqual([]);
  });

  it('refuses file paths that leave the archive, and several files from a single-file download', () => {
    expect(() => renderBinary(spec({ url: 'https://example.test/t.tar.gz', files: { tool: '../{version}/tool' } }), linux)).toThrow('inside');
    expect(() => renderBinary(spec({ url: 'https://example.test/t.tar.gz', files: { tool: '/usr/bin/tool' } }), linux)).toThrow('inside');
    expect(() => renderBinary(spec({ url: 'https://example.test/tool', files: { a: 'a', b: 'b' } }), linux)).toThrow('one file');
  });
});

describe('checksum files', () => {
  const asset = 'tool-1.2.3-linux-x86_64.tar.gz';

  it('finds the line naming the asset, in text or binary mode, with or without folders', () => {
    const text = [`${sha('1')}  tool-1.2.3-darwin-aarch64.tar.gz`, `${sha('2').toUpperCase()} *${asset}`, `${sha('3')}  tool.zip`].join('\n');
    expect(findChecksum(text, asset, 'sha256')).toBe(sha('2'));
    expect(findChecksum(`${sha('4')}  ./dist/${asset}\n${sha('5')}  other\n`, asset, 'sha256')).toBe(sha('4'));
    expect(findChecksum(`SHA256 (${asset}) = ${sha('6')}\n`, asset, 'sha256')).toBe(sha('6'));
  });

  it('takes the only digest of a one-digest file, and nothing from a list without the asset', () => {
    expect(findChecksum(`${sha('7')}\n`, asset, 'sha256')).toBe(sha('7'));
    expect(findChecksum(`${sha('8')}  renamed-before-upload.tar.gz\n`, asset, 'sha256')).toBe(sha('8'));
    expect(findChecksum(`${sha('1')}  a.tar.gz\n${sha('2')}  b.tar.gz\n`, asset, 'sha256')).toBeNull();
    expect(findChecksum('<html>not found</html>', asset, 'sha256')).toBeNull();
  });

  it('reads only digests of the algorithm asked for', () => {
    const sha512 = 'c'.repeat(128);
    expect(findChecksum(`${sha512}  ${asset}\n`, asset, 'sha512')).toBe(sha512);
    expect(findChecksum(`${sha('1')}  ${asset}\n`, asset, 'sha512')).toBeNull();
  });

  it('names an asset after the last segment of its URL path, decoded', () => {
    expect(assetName('https://example.test/download/v1/tool%2B1.tar.gz?x=1#y')).toBe('tool+1.tar.gz');
  });
});
