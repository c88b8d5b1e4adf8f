import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UpkeepError } from '../../src/core/errors.ts';
import { ensureSuccess, Executor } from '../../src/core/exec.ts';
import { parseManifest } from '../../src/update/plugin/manifest.ts';
import { invokePlugin } from '../../src/update/plugin/run.ts';
import { PROBE_COMMAND, VALIDATED_COMMANDS, validatePlugin } from '../../src/update/plugin/validate.ts';

const fixtures = resolve('test/fixtures/plugins');
const executor = new Executor({ env: {} });

let root: string;
let tempDir: string;
let environment: Record<string, string>;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'upkeep-plugin-validate-'));
  tempDir = join(root, 'tmp');
  environment = { PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, HOME: join(root, 'home') };
  await Promise.all([mkdir(tempDir), mkdir(environment.HOME!)]);
});
afterEach(async () => rm(root, { recursive: true, force: true }));

const validate = (path: string) => validatePlugin(path, { executor, environment, tempDir });

describe('validatePlugin', () => {
  it('passes a plugin that follows the protocol, checking every command but the actions', async () => {
    const report = await validate(join(fixtures, 'good.yaml'));
    expect(report.problems).toEqual([]);
    expect(report.warnings).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.manifest?.name).toBe('good');
    expect(report.commands.map((check) => check.command)).toEqual([...VALIDATED_COMMANDS, PROBE_COMMAND]);
    expect(report.commands.every((check) => check.ok)).toBe(true);
    expect(report.commands.find((check) => check.command === 'does-require-sudo')).toEqual({ command: 'does-require-sudo', ok: true, exitCode: 1, answer: 'no' });
    expect(report.commands.at(-1)).toEqual({ command: PROBE_COMMAND, ok: true, exitCode: 64, answer: 'not-implemented' });
    // The run folder is temporary.
    expect(await readdir(tempDir)).toEqual([]);
  });

  it('never runs download, update, self-update or self-upgrade', async () => {
    const report = await validate(join(fixtures, 'recorder.sh'));
    expect(report.ok).toBe(true);
    const asked = (await readFile(join(environment.HOME!, 'commands.log'), 'utf8')).trim().split('\n');
    expect(asked).toEqual([...VALIDATED_COMMANDS, PROBE_COMMAND]);
  });

  it('accepts optional and unused conditional commands answered with exit 64', async () => {
    const report = await validate(join(fixtures, 'minimal.yaml'));
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.commands.filter((check) => check.answer === 'not-implemented').map((check) => check.command)).toEqual([
      'sudo-programs-paths',
      'estimate-update-mutexes',
      'download-mutexes',
      'update-mutexes',
      'estimate-update-dependency',
      'download-dependency',
      'update-dependency',
      'runs-after',
      'validate',
      PROBE_COMMAND,
    ]);
    expect(report.commands.find((check) => check.command === 'is-applicable')?.answer).toBe('not-applicable');
  });

  it('fails a plugin that breaks the protocol or contradicts its manifest, naming each problem', async () => {
    const report = await validate(join(fixtures, 'sloppy.yaml'));
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([
      'sudo-programs-paths: printed nothing on stdout (one JSON envelope expected)',
      'update-mutexes: mutex "internal:lock" uses the reserved category internal:',
      'validate: printed nothing on stdout (one JSON envelope expected)',
      `${PROBE_COMMAND}: an unknown command must be answered with exit code 64 and error code UNKNOWN_COMMAND; got exit code 2: printed nothing on stdout (one JSON envelope expected)`,
      'the manifest sets can_separate_download: true, but can-separate-download answers no',
    ]);
    expect(report.warnings).toEqual(['version answers 2.0.0, but the manifest says 1.0.0']);
    expect(report.commands.find((check) => check.command === 'sudo-programs-paths')).toMatchObject({ ok: false, exitCode: 2, answer: 'failed' });
  });

  it('names a required command that is not implemented', async () => {
    const plugin = join(root, 'lazy.sh');
    await writeFile(
      plugin,
      `#!/bin/sh\ncase "$1" in\n  version) echo '{"status":"success","data":{"version":"1","protocol":1},"error":null}' ;;\n  *) echo '{"status":"error","data":null,"error":{"code":"UNKNOWN_COMMAND","message":"no"}}'; exit 64 ;;\nesac\n`,
    );
    await chmod(plugin, 0o755);
    const report = await validate(plugin);
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([
      'is-applicable: not implemented (exit 64), but every plugin must implement it',
      'estimate-update: not implemented (exit 64), but every plugin must implement it',
      'can-separate-download: not implemented (exit 64), but every plugin must implement it',
      'does-require-sudo: not implemented (exit 64), but every plugin must implement it',
    ]);
  });

  it('fails a bare executable that prints garbage, quoting it', async () => {
    const report = await validate(join(fixtures, 'garbage.sh'));
    expect(report.ok).toBe(false);
    expect(report.manifest?.name).toBe('garbage');
    expect(report.problems[0]).toBe('version: stdout is not one JSON envelope: "Reading package lists... Done\\nBuilding dependency tree... Done"');
    expect(report.commands.every((check) => !check.ok)).toBe(true);
  });

  it('reports a plugin’s own errors as warnings: they follow the protocol', async () => {
    const plugin = join(root, 'offline.sh');
    const good = join(fixtures, 'good.sh');
    await writeFile(
      plugin,
      `#!/bin/sh\nif [ "$1" = estimate-update ]; then echo '{"status":"error","data":null,"error":{"code":"NETWORK_ERROR","message":"offline"}}'; exit 75; fi\nexec ${good} "$1"\n`,
    );
    await chmod(plugin, 0o755);
    const report = await validate(plugin);
    expect(report.ok).toBe(true);
    expect(report.warnings).toEqual([
      'estimate-update answered with error NETWORK_ERROR: offline',
      'can-separate-download answers yes, but the manifest sets can_separate_download: false, so upkeep never runs download on its own',
    ]);
  });

  it('reports an invalid manifest or a missing executable without running anything', async () => {
    const invalid = join(root, 'bad.yaml');
    await writeFile(invalid, 'plugin:\n  name: bad\n  version: "1"\n  description: x\n  executable: x.sh\n  static_mutexes: {update: [lock]}\n');
    const report = await validate(invalid);
    expect(report).toMatchObject({ ok: false, manifest: null, commands: [] });
    expect(report.problems).toEqual([`${invalid}: plugin.static_mutexes.update.0: mutex "lock" is not category:resource`]);

    const orphan = join(root, 'orphan.yaml');
    await writeFile(orphan, 'plugin:\n  name: orphan\n  version: "1"\n  description: x\n  executable: orphan.sh\n');
    const missing = await validate(orphan);
    expect(missing).toMatchObject({ ok: false, commands: [], problems: [`executable ${join(root, 'orphan.sh')} does not exist`] });
  });

  it('refuses a path that is neither a manifest nor an executable', async () => {
    await expect(validate(join(root, 'nothing.yaml'))).rejects.toMatchObject({ code: 'E_PLUGIN_INVALID' });
    await expect(validate(join(root, 'nothing'))).rejects.toBeInstanceOf(UpkeepError);
    await expect(validate(join(fixtures, 'not-executable.sh'))).rejects.toThrow(/not executable/);
  });
});

describe('the example plugin of docs/plugin-protocol.md', () => {
  async function writeExample(): Promise<string> {
    const text = await readFile('docs/plugin-protocol.md', 'utf8');
    const block = (name: string, language: string): string => {
      const match = new RegExp(`<!-- example: ${name} -->\\n\`\`\`${language}\\n([\\s\\S]*?)\`\`\``).exec(text);
      if (!match) throw new Error(`no ${name} example in the doc`);
      return match[1]!;
    };
    const folder = join(root, 'plugins.d');
    await mkdir(folder);
    await writeFile(join(folder, 'dotfiles.yaml'), block('manifest', 'yaml'));
    await writeFile(join(folder, 'dotfiles.sh'), block('plugin', 'sh'));
    await chmod(join(folder, 'dotfiles.sh'), 0o755);
    return join(folder, 'dotfiles.yaml');
  }

  it('passes validation', async () => {
    const report = await validate(await writeExample());
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.commands.find((check) => check.command === 'is-applicable')?.answer).toBe('not-applicable');
  });

  it('estimates, downloads and updates a real git checkout, and a second update finds nothing to do', async () => {
    const path = await writeExample();
    const manifest = parseManifest(await readFile(path, 'utf8'), path, 'user');
    const git = async (cwd: string, ...args: string[]) =>
      ensureSuccess(
        await executor.run(['git', '-c', 'user.name=upkeep', '-c', 'user.email=upkeep@example.invalid', ...args], {
          cwd,
          env: { ...environment, GIT_CONFIG_NOSYSTEM: '1' },
        }),
      ).stdout.trim();
    const upstream = join(root, 'upstream.git');
    const author = join(root, 'author');
    const checkout = join(environment.HOME!, '.dotfiles');
    await git(root, 'init', '--quiet', '--bare', '-b', 'main', upstream);
    await git(root, 'clone', '--quiet', upstream, author);
    await git(author, 'commit', '--quiet', '--allow-empty', '-m', 'one');
    await git(author, 'push', '--quiet', 'origin', 'main');
    await git(root, 'clone', '--quiet', upstream, checkout);
    await git(author, 'commit', '--quiet', '--allow-empty', '-m', 'two');
    await git(author, 'push', '--quiet', 'origin', 'main');
    const before = (await git(checkout, 'rev-parse', 'HEAD')).slice(0, 12);
    const after = (await git(author, 'rev-parse', 'HEAD')).slice(0, 12);

    const runDir = join(root, 'run');
    const options = { executor, environment, runDir };
    expect((await invokePlugin(manifest, 'is-applicable', options)).answer.kind).toBe('success');
    expect((await invokePlugin(manifest, 'estimate-update', options)).answer).toEqual({
      kind: 'success',
      data: { applicable: true, packages_to_update: [{ name: 'dotfiles', current_version: before, new_version: after }] },
    });
    expect((await git(checkout, 'rev-parse', 'HEAD')).slice(0, 12)).toBe(before);
    expect((await invokePlugin(manifest, 'download', options)).answer).toEqual({ kind: 'success', data: { message: 'fetched' } });
    expect((await invokePlugin(manifest, 'update', options)).answer).toEqual({
      kind: 'success',
      data: { packages_updated: [{ name: 'dotfiles', from: before, to: after }], package_count: 1 },
    });
    expect((await invokePlugin(manifest, 'update', options)).answer).toEqual({ kind: 'success', data: { package_count: 0, message: 'already up to date' } });
    expect((await git(checkout, 'rev-parse', 'HEAD')).slice(0, 12)).toBe(after);
  });
});
