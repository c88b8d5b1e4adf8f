import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { ExecResult } from '../../src/core/exec.ts';
import { COMMAND_NAMES, interpretOutput, jsonSchemas, parseEnvelope, parseProgressLine, PLUGIN_COMMANDS } from '../../src/update/plugin/protocol.ts';
import type { PluginCommand } from '../../src/update/plugin/protocol.ts';

function result(exitCode: number | null, stdout: unknown, extra: Partial<ExecResult> = {}): ExecResult {
  return {
    argv: ['/plugins/apt', 'x'],
    exitCode,
    signal: null,
    stdout: typeof stdout === 'string' ? stdout : `${JSON.stringify(stdout)}\n`,
    stderr: '',
    timedOut: false,
    truncated: false,
    durationMs: 12,
    dryRun: false,
    ...extra,
  };
}
const success = (data: unknown) => ({ protocol: 1, status: 'success', data, error: null });
const error = (code: string, message = 'it broke', details?: string) => ({ status: 'error', data: null, error: { code, message, ...(details ? { details } : {}) } });
const protocolMessage = (command: PluginCommand | string, exitCode: number | null, stdout: unknown, extra: Partial<ExecResult> = {}): string => {
  const answer = interpretOutput(command, result(exitCode, stdout, extra));
  expect(answer.kind).toBe('failed');
  if (answer.kind !== 'failed') throw new Error('not failed');
  expect(answer.error.code).toBe('PROTOCOL');
  expect(answer.transient).toBe(false);
  return answer.error.message;
};

describe('PLUGIN_COMMANDS', () => {
  it('lists the 18 commands of protocol v1 with their requirement', () => {
    expect(COMMAND_NAMES).toHaveLength(18);
    const required = COMMAND_NAMES.filter((command) => PLUGIN_COMMANDS[command].requirement === 'required');
    expect(required.sort()).toEqual(['can-separate-download', 'does-require-sudo', 'estimate-update', 'is-applicable', 'update', 'version']);
    expect(COMMAND_NAMES.filter((command) => PLUGIN_COMMANDS[command].requirement === 'optional').sort()).toEqual(['self-update', 'self-upgrade', 'validate']);
    expect(COMMAND_NAMES.filter((command) => PLUGIN_COMMANDS[command].action).sort()).toEqual(['download', 'self-update', 'self-upgrade', 'update']);
  });
});

describe('interpretOutput', () => {
  it('reads a success with its data, allowing whitespace and unknown keys', () => {
    const estimate = {
      applicable: true,
      packages_to_update: [{ name: 'python3', current_version: '3.12.1', new_version: '3.12.2', download_size_bytes: 10, future_field: 1 }],
      security_updates: true,
    };
    expect(interpretOutput('estimate-update', result(0, `\n  ${JSON.stringify({ ...success(estimate), extra: 'ignored' })}  \n\n`))).toEqual({ kind: 'success', data: estimate });
    expect(interpretOutput('update', result(0, { status: 'success', data: null, error: null }))).toEqual({ kind: 'success', data: {} });
  });

  it('reads yes and no of the boolean queries from the exit code, which must agree with the data', () => {
    expect(interpretOutput('can-separate-download', result(0, success({ can_separate_download: true })))).toEqual({ kind: 'success', data: { can_separate_download: true } });
    expect(interpretOutput('does-require-sudo', result(1, success({ requires_sudo: false })))).toEqual({ kind: 'no', data: { requires_sudo: false } });
    expect(interpretOutput('validate', result(1, success({ healthy: false, problems: ['apt-get is missing'] })))).toMatchObject({ kind: 'no' });
    expect(protocolMessage('does-require-sudo', 0, success({ requires_sudo: false }))).toBe('does-require-sudo: exit code 0 does not agree with data.requires_sudo = false');
    expect(protocolMessage('is-applicable', 0, success({ applicable: false }))).toMatch(/data.applicable = false/);
    // exit 1 with status success is only a boolean "no"
    expect(protocolMessage('version', 1, success({ version: '1', protocol: 1 }))).toBe('version: exit code 1 does not agree with status "success"');
  });

  it('reads not applicable, not supported and not implemented', () => {
    expect(interpretOutput('is-applicable', result(1, { status: 'not_applicable', data: { applicable: false, reason: 'apt-get is not installed' }, error: null }))).toEqual({
      kind: 'not-applicable',
      reason: 'apt-get is not installed',
    });
    expect(interpretOutput('estimate-update', result(1, { status: 'not_applicable', data: null, error: null }))).toMatchObject({ kind: 'not-applicable', reason: expect.any(String) });
    expect(interpretOutput('self-upgrade', result(1, { status: 'not_supported', data: null, error: null }))).toEqual({ kind: 'not-supported' });
    expect(interpretOutput('validate', result(64, error('UNKNOWN_COMMAND')))).toEqual({ kind: 'not-implemented' });
    expect(interpretOutput('upkeep-protocol-probe', result(64, error('UNKNOWN_COMMAND')))).toEqual({ kind: 'not-implemented' });
  });

  it('refuses statuses that are not an answer to the command', () => {
    expect(protocolMessage('update', 1, { status: 'not_applicable', data: null, error: null })).toBe('update: status "not_applicable" is not an answer to update');
    expect(protocolMessage('is-applicable', 1, { status: 'not_supported', data: null, error: null })).toMatch(/not an answer/);
    expect(protocolMessage('is-applicable', 0, { status: 'not_applicable', data: null, error: null })).toMatch(/exit code 0 does not agree with status "not_applicable"/);
    expect(protocolMessage('upkeep-protocol-probe', 0, success({}))).toMatch(/unknown command must be answered with exit code 64/);
    expect(protocolMessage('upkeep-protocol-probe', 2, error('BROKEN'))).toMatch(/unknown command must be answered with exit code 64, not 2/);
  });

  it('reads failures, marking exit 75 and the transient codes as transient', () => {
    expect(interpretOutput('update', result(1, error('COMMAND_FAILED', 'apt-get failed', 'E: broken packages')))).toEqual({
      kind: 'failed',
      error: { code: 'COMMAND_FAILED', message: 'apt-get failed', details: 'E: broken packages' },
      transient: false,
      timedOut: false,
    });
    expect(interpretOutput('estimate-update', result(2, error('PARSE_ERROR')))).toMatchObject({ kind: 'failed', transient: false });
    expect(interpretOutput('estimate-update', result(75, error('LOCKED')))).toMatchObject({ kind: 'failed', transient: true, error: { code: 'LOCKED' } });
    for (const code of ['NETWORK_ERROR', 'TIMEOUT', 'TEMPORARY_FAILURE']) {
      expect(interpretOutput('download', result(2, error(code)))).toMatchObject({ kind: 'failed', transient: true, timedOut: false });
      expect(interpretOutput('update', result(1, error(code)))).toMatchObject({ kind: 'failed', transient: true });
    }
  });

  it('fills a failure without details from the tail of stderr, leaving progress lines out', () => {
    const stderr = 'Reading lists\n{"type":"progress","percent":40}\nE: Could not get lock\n';
    expect(interpretOutput('update', result(75, error('TEMPORARY_FAILURE'), { stderr }))).toMatchObject({
      error: { details: 'Reading lists\nE: Could not get lock' },
    });
  });

  it('checks that exit code and status agree', () => {
    expect(protocolMessage('version', 2, success({ version: '1', protocol: 1 }))).toBe('version: exit code 2 does not agree with status "success"');
    expect(protocolMessage('update', 0, error('FAILED'))).toBe('update: exit code 0 does not agree with status "error"');
    // a query that fails exits 2, never 1
    expect(protocolMessage('estimate-update', 1, error('FAILED'))).toMatch(/exit code 1 does not agree/);
    expect(protocolMessage('version', 3, success({ version: '1', protocol: 1 }))).toMatch(/exit code 3/);
    expect(protocolMessage('validate', 64, error('NOPE'))).toBe('validate: exit code 64 needs error code UNKNOWN_COMMAND, not NOPE');
    expect(protocolMessage('validate', 2, error('UNKNOWN_COMMAND'))).toBe('validate: error code UNKNOWN_COMMAND needs exit code 64, not 2');
    expect(protocolMessage('update', 2, { status: 'error', data: null, error: null })).toMatch(/without an error object/);
    expect(protocolMessage('update', 1, error('PROTOCOL'))).toBe('update: error code PROTOCOL is reserved for upkeep');
  });

  it('refuses anything but exactly one envelope, quoting the start of what it got', () => {
    expect(protocolMessage('version', 0, '')).toMatch(/printed nothing on stdout/);
    expect(protocolMessage('version', 0, 'Reading package lists... Done\n')).toBe('version: stdout is not one JSON envelope: "Reading package lists... Done"');
    const twoLines = `${JSON.stringify(success({ version: '1', protocol: 1 }))}\n${JSON.stringify(success({}))}\n`;
    expect(protocolMessage('version', 0, twoLines)).toMatch(/not one JSON envelope/);
    const long = 'x'.repeat(500);
    const message = protocolMessage('version', 0, long);
    expect(message).toContain(`"${'x'.repeat(200)}…"`);
    expect(message).not.toContain('x'.repeat(201));
    expect(protocolMessage('version', 0, '[1, 2]')).toMatch(/not a JSON object/);
    expect(protocolMessage('version', 0, { status: 'fine', data: null, error: null })).toMatch(/^version: envelope.status: /);
    expect(protocolMessage('version', 0, { status: 'success', error: null })).toMatch(/^version: envelope.data: /);
    expect(protocolMessage('version', 0, { protocol: 2, status: 'success', data: {}, error: null })).toBe('version: the envelope speaks protocol 2; upkeep speaks protocol 1');
  });

  it('checks the data against the command schema, naming the field', () => {
    expect(protocolMessage('estimate-update', 0, success({ applicable: true, packages_to_update: [{ name: 'x', new_version: '2' }] }))).toMatch(
      /^estimate-update: data.packages_to_update.0.current_version: /,
    );
    expect(protocolMessage('estimate-update', 0, success({ applicable: true }))).toMatch(/data.packages_to_update/);
    expect(protocolMessage('update', 0, success({ package_count: -1 }))).toMatch(/data.package_count/);
    expect(protocolMessage('sudo-programs-paths', 0, success({ paths: ['apt-get'] }))).toMatch(/data.paths.0: must be an absolute path/);
    expect(protocolMessage('version', 0, success({ version: '1.0', protocol: 2 }))).toMatch(/data.protocol/);
    expect(protocolMessage('runs-after', 0, success({ plugins: ['Apt'] }))).toMatch(/data.plugins.0/);
    expect(protocolMessage('is-applicable', 1, { status: 'not_applicable', data: { applicable: true }, error: null })).toMatch(/data.applicable/);
  });

  it('normalizes the mutexes of an answer and names an invalid one', () => {
    expect(interpretOutput('update-mutexes', result(0, success({ mutexes: ['PkgMgr:APT', 'runtime:python', 'pkgmgr:apt'] })))).toEqual({
      kind: 'success',
      data: { mutexes: ['pkgmgr:apt', 'runtime:python'] },
    });
    expect(protocolMessage('update-dependency', 0, success({ mutexes: ['internal:lock'] }))).toBe('update-dependency: mutex "internal:lock" uses the reserved category internal:');
    expect(protocolMessage('download-mutexes', 0, success({ mutexes: ['thing:apt'] }))).toMatch(/"thing:apt" has an unknown category/);
    expect(protocolMessage('download-mutexes', 0, success({ mutexes: ['apt-lock'] }))).toMatch(/data.mutexes.0: must be category:resource/);
  });

  it('turns a timeout into a transient failure and a signal into a plain one', () => {
    expect(interpretOutput('update', result(null, '', { timedOut: true, signal: 'SIGKILL', durationMs: 3600_000 }))).toMatchObject({
      kind: 'failed',
      error: { code: 'TIMEOUT', message: 'update did not finish in time (3600 s) and was stopped' },
      transient: true,
      timedOut: true,
    });
    expect(interpretOutput('update', result(null, '', { signal: 'SIGSEGV', stderr: 'core dumped' }))).toEqual({
      kind: 'failed',
      error: { code: 'SIGNAL', message: 'update was killed by SIGSEGV', details: 'core dumped' },
      transient: false,
      timedOut: false,
    });
    expect(interpretOutput('update', result(null, '', { signal: 'SIGTERM', aborted: true }))).toMatchObject({ kind: 'failed', error: { code: 'INTERRUPTED' }, transient: false });
  });

  it('counts an action a dry-run executor recorded as done', () => {
    expect(interpretOutput('update', result(0, '', { dryRun: true }))).toEqual({ kind: 'success', data: {} });
    expect(interpretOutput('version', result(0, '', { dryRun: true }))).toMatchObject({ kind: 'failed', error: { code: 'PROTOCOL' } });
  });
});

describe('parseEnvelope', () => {
  it('defaults nothing but accepts a missing protocol', () => {
    expect(parseEnvelope('{"status":"success","data":{},"error":null}')).toEqual({ envelope: { status: 'success', data: {}, error: null } });
  });
});

describe('parseProgressLine', () => {
  it('reads progress lines and leaves everything else as log text', () => {
    expect(parseProgressLine('{"type":"progress","percent":45,"message":"Downloading 3/10","current":3,"total":10}')).toEqual({
      percent: 45,
      message: 'Downloading 3/10',
      current: 3,
      total: 10,
    });
    expect(parseProgressLine('  {"type": "progress", "percent": 12.5, "bytes_done": 5, "bytes_total": 40}\r')).toEqual({ percent: 12.5, bytes_done: 5, bytes_total: 40 });
    expect(parseProgressLine('{"type":"progress","percent":5,"eta_seconds":30}')).toEqual({ percent: 5 });
    for (const line of [
      'Reading package lists...',
      '',
      '{"type":"progress"}',
      '{"type":"progress","percent":101}',
      '{"type":"progress","percent":-1}',
      '{"type":"status","percent":50}',
      '{"type":"progress","percent":"50"}',
      '{"type":"progress","percent":50',
      '[1]',
    ]) {
      expect(parseProgressLine(line)).toBeNull();
    }
  });
});

describe('jsonSchemas', () => {
  it('gives a schema for the envelope, progress, the manifest and every command', () => {
    const schemas = jsonSchemas();
    for (const command of COMMAND_NAMES) expect(schemas[PLUGIN_COMMANDS[command].schema]).toBeTypeOf('object');
    expect(Object.keys(schemas)).toEqual(expect.arrayContaining(['envelope', 'progress', 'manifest', 'not-applicable']));
    expect(schemas['estimate-update']).toMatchObject({ type: 'object', required: ['applicable', 'packages_to_update'] });
  });

  it('matches the schemas written in docs/plugin-protocol.md, block for block', async () => {
    const text = await readFile('docs/plugin-protocol.md', 'utf8');
    const documented: Record<string, unknown> = {};
    for (const match of text.matchAll(/<!-- schema: ([a-z-]+) -->\n```json\n([\s\S]*?)```/g)) {
      documented[match[1]!] = JSON.parse(match[2]!);
    }
    // When this fails, paste the new output of jsonSchemas() into the doc's blocks.
    expect(documented).toEqual(jsonSchemas());
  });
});
