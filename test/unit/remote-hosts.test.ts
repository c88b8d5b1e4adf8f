import { createHmac, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Context } from '../../src/cli/context.ts';
import { exitCodeOf } from '../../src/cli/commands/remote.ts';
import { createRemoteDisplay, renderRemoteSummary } from '../../src/cli/output/remote.ts';
import { quoteProgram, shellQuote } from '../../src/update/remote/connection.ts';
import { expandHostPattern, parseIniInventory, parseYamlInventory } from '../../src/update/remote/inventory.ts';
import {
  checkHostKey,
  fingerprint,
  formatKnownHostsLine,
  hostMatches,
  knownHostName,
  parseKnownHosts,
  preferredHostKeyAlgorithms,
} from '../../src/update/remote/known-hosts.ts';
import { parseEventLine, remoteCommandLine, type HostResult } from '../../src/update/remote/remote-run.ts';
import { loadSshConfig, sshConfigHosts, sshSettingsFor } from '../../src/update/remote/ssh-config.ts';

/** An SSH public key blob: string type, then some bytes standing for the key. */
function blob(type: string, seed: string): Buffer {
  const typeBytes = Buffer.from(type);
  const body = Buffer.from(seed.padEnd(32, '.'));
  const length = (value: number) => {
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32BE(value);
    return buffer;
  };
  return Buffer.concat([length(typeBytes.length), typeBytes, length(body.length), body]);
}

describe('ssh_config', () => {
  let folder: string;
  beforeEach(async () => {
    folder = await mkdtemp(join(tmpdir(), 'upkeep-ssh-config-'));
    await mkdir(join(folder, '.ssh', 'config.d'), { recursive: true });
  });
  afterEach(() => rm(folder, { recursive: true, force: true }));

  it('lists named hosts, applies the first value of every matching block, and skips Match blocks', async () => {
    await writeFile(
      join(folder, '.ssh', 'config'),
      [
        '# leading options apply to every host',
        'ConnectTimeout 5',
        'Include config.d/*.conf',
        'Host web1 web2 !web3 *.lab',
        '  HostName=%h.example.com',
        '  User "deploy"',
        '  IdentityFile ~/.ssh/web_key',
        'Match exec "true"',
        '  User never',
        'Host web1',
        '  User ignored-second',
        '  Port 2200',
        '  IdentityFile %d/.ssh/second_key',
        'Host *',
        '  User fallback',
        '  Port 22',
        '',
      ].join('\n'),
    );
    await writeFile(join(folder, '.ssh', 'config.d', 'a.conf'), 'Host included\n  HostName 10.0.0.9\n');
    const config = await loadSshConfig({ user: join(folder, '.ssh', 'config') }, folder);
    expect(sshConfigHosts(config).map((host) => host.name)).toEqual(['included', 'web1', 'web2']);
    const tokens = { localUser: 'me', home: folder };
    expect(sshSettingsFor(config, ['web1'], tokens)).toMatchObject({
      hostname: 'web1.example.com',
      user: 'deploy',
      port: 2200,
      identityFiles: [join(folder, '.ssh', 'web_key'), join(folder, '.ssh', 'second_key')],
    });
    expect(sshSettingsFor(config, ['included'], tokens)).toMatchObject({ hostname: '10.0.0.9', user: 'fallback', port: 22 });
    // Negated in the first block: only `Host *` applies.
    expect(sshSettingsFor(config, ['web3'], tokens)).toMatchObject({ user: 'fallback', identityFiles: [] });
    expect(sshSettingsFor(config, ['db.lab'], tokens)).toMatchObject({ hostname: 'db.lab.example.com', user: 'deploy' });
  });
});

describe('Ansible inventories', () => {
  it('reads INI: ranges, ports, vars, children, and merges variables as Ansible does', () => {
    const inventory = parseIniInventory(
      [
        'lonely.example.com',
        '',
        '[web]',
        'web[01:03].example.com ansible_user=deploy',
        'odd.example.com:2222 ansible_host="10.0.0.5"  # a comment',
        '',
        '[web:vars]',
        'upkeep_path=/opt/upkeep',
        'ansible_user=webuser',
        '',
        '[production:children]',
        'web',
        '',
        '[production:vars]',
        'upkeep_path=/usr/bin/upkeep',
        'ansible_port=2200',
        '',
        '[all:vars]',
        'ansible_user=everyone',
      ].join('\n'),
      'inventory.ini',
    );
    const hosts = Object.fromEntries(inventory.hosts.map((host) => [host.name, host]));
    expect(Object.keys(hosts)).toEqual(['lonely.example.com', 'web01.example.com', 'web02.example.com', 'web03.example.com', 'odd.example.com']);
    // Host vars beat the deepest group's (web), which beat production's, which beat all's.
    expect(hosts['web01.example.com']!.vars).toMatchObject({ ansible_user: 'deploy', upkeep_path: '/opt/upkeep', ansible_port: 2200 });
    expect(hosts['odd.example.com']!.vars).toMatchObject({ ansible_user: 'webuser', ansible_host: '10.0.0.5', ansible_port: 2222 });
    expect(hosts['lonely.example.com']!.vars).toEqual({ ansible_user: 'everyone' });
    const groups = Object.fromEntries(inventory.groups.map((group) => [group.name, group.hosts]));
    expect(groups.production).toEqual(['web01.example.com', 'web02.example.com', 'web03.example.com', 'odd.example.com']);
    expect(groups.ungrouped).toEqual(['lonely.example.com']);
    expect(groups.all).toHaveLength(5);
  });

  it('reads YAML inventories', () => {
    const inventory = parseYamlInventory(
      {
        all: {
          vars: { ansible_user: 'root' },
          hosts: { 'solo.example.com': null },
          children: {
            db: { hosts: { 'db[a:b]': { ansible_port: 2201 } }, vars: { upkeep_path: '/srv/upkeep' } },
            prod: { children: { db: null } },
          },
        },
      },
      'inventory.yaml',
    );
    const hosts = Object.fromEntries(inventory.hosts.map((host) => [host.name, host.vars]));
    expect(hosts).toEqual({
      'solo.example.com': { ansible_user: 'root' },
      dba: { ansible_user: 'root', ansible_port: 2201, upkeep_path: '/srv/upkeep' },
      dbb: { ansible_user: 'root', ansible_port: 2201, upkeep_path: '/srv/upkeep' },
    });
    expect(inventory.groups.find((group) => group.name === 'prod')!.hosts).toEqual(['dba', 'dbb']);
  });

  it('expands host ranges with leading zeros, letters and steps', () => {
    expect(expandHostPattern('web[08:10]')).toEqual(['web08', 'web09', 'web10']);
    expect(expandHostPattern('node[1:5:2].lab')).toEqual(['node1.lab', 'node3.lab', 'node5.lab']);
    expect(expandHostPattern('r[a:c]-[1:2]')).toEqual(['ra-1', 'ra-2', 'rb-1', 'rb-2', 'rc-1', 'rc-2']);
    expect(expandHostPattern('plain')).toEqual(['plain']);
  });

  it('refuses a line it cannot read, naming the file and the line', () => {
    expect(() => parseIniInventory('[web]\nweb1 this is not=an assignment\n', 'bad.ini')).toThrow(/bad\.ini: line 2/);
    expect(() => parseYamlInventory({ all: { hosts: ['a'] } }, 'bad.yaml')).toThrow(/bad\.yaml: all\.hosts/);
  });
});

describe('known_hosts', () => {
  const key = blob('ssh-ed25519', 'current');
  const otherKey = blob('ssh-ed25519', 'another');
  const rsa = blob('ssh-rsa', 'rsa');

  function hashed(name: string): string {
    const salt = randomBytes(20);
    return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
  }

  it('names hosts on other ports than 22 as [host]:port', () => {
    expect(knownHostName('example.com', 22)).toBe('example.com');
    expect(knownHostName('10.0.0.1', 2222)).toBe('[10.0.0.1]:2222');
  });

  it('matches plain, wildcard, negated and hashed patterns', () => {
    expect(hostMatches('a.example.com,b.example.com', 'b.example.com')).toBe(true);
    expect(hostMatches('*.example.com,!secret.example.com', 'www.example.com')).toBe(true);
    expect(hostMatches('*.example.com,!secret.example.com', 'secret.example.com')).toBe(false);
    expect(hostMatches('[10.0.0.?]:2222', '[10.0.0.7]:2222')).toBe(true);
    expect(hostMatches(hashed('[127.0.0.1]:2201'), '[127.0.0.1]:2201')).toBe(true);
    expect(hostMatches(hashed('[127.0.0.1]:2201'), '[127.0.0.1]:2202')).toBe(false);
  });

  it('tells a known key from a changed, an unknown and a revoked one', () => {
    const entries = parseKnownHosts(
      [
        `${hashed('host.example.com')} ssh-ed25519 ${key.toString('base64')}`,
        `other.example.com ssh-ed25519 ${otherKey.toString('base64')}`,
        `rsa-only.example.com ssh-rsa ${rsa.toString('base64')}`,
        `@revoked * ssh-ed25519 ${otherKey.toString('base64')}`,
        'garbage line',
        `broken.example.com ssh-ed25519 ${rsa.toString('base64')}`,
      ].join('\n'),
      'known_hosts',
    );
    expect(entries).toHaveLength(4);
    expect(checkHostKey(entries, 'host.example.com', key)).toMatchObject({ status: 'known', entry: { line: 1 } });
    expect(checkHostKey(entries, 'host.example.com', blob('ssh-ed25519', 'intruder'))).toMatchObject({ status: 'changed', entry: { line: 1 } });
    expect(checkHostKey(entries, 'rsa-only.example.com', key)).toEqual({ status: 'unknown', otherTypes: ['ssh-rsa'] });
    expect(checkHostKey(entries, 'new.example.com', key)).toEqual({ status: 'unknown', otherTypes: [] });
    expect(checkHostKey(entries, 'other.example.com', otherKey)).toMatchObject({ status: 'revoked' });
  });

  it('offers the algorithms of the keys already known first', () => {
    const entries = parseKnownHosts(`rsa-only.example.com ssh-rsa ${rsa.toString('base64')}`, 'known_hosts');
    expect(preferredHostKeyAlgorithms(entries, 'rsa-only.example.com').slice(0, 4)).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa', 'ssh-ed25519']);
    expect(preferredHostKeyAlgorithms(entries, 'elsewhere')[0]).toBe('ssh-ed25519');
  });

  it('writes lines that it reads back, hashed or not, and prints OpenSSH fingerprints', () => {
    for (const hash of [false, true]) {
      const line = formatKnownHostsLine('[127.0.0.1]:2201', key, hash);
      expect(line.startsWith('|1|')).toBe(hash);
      expect(checkHostKey(parseKnownHosts(line, 'f'), '[127.0.0.1]:2201', key).status).toBe('known');
    }
    expect(fingerprint(key)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe('the remote command line', () => {
  it('quotes words for the remote shell and leaves ~/ to it', () => {
    expect(shellQuote('update')).toBe('update');
    expect(shellQuote("it's here")).toBe(`'it'\\''s here'`);
    expect(quoteProgram('~/bin/my upkeep')).toBe("~/'bin/my upkeep'");
    expect(quoteProgram('/usr/local/bin/upkeep')).toBe('/usr/local/bin/upkeep');
  });

  it('never puts a password in the command line, only the word that says one follows on stdin', () => {
    const line = remoteCommandLine('/opt/upkeep', ['update', 'run', '--json'], true);
    expect(line.startsWith("sh -c '")).toBe(true);
    expect(line.endsWith(' upkeep-remote password /opt/upkeep update run --json')).toBe(true);
    expect(remoteCommandLine('upkeep', ['update', 'check', '--json'], false)).toMatch(/ upkeep-remote no-password upkeep update check --json$/);
  });

  it('takes as events only the lines that are JSON objects with a type', () => {
    expect(parseEventLine('{"type":"run","runId":"x","status":"estimating","time":"t"}')).toMatchObject({ type: 'run' });
    expect(parseEventLine('{')).toBeNull();
    expect(parseEventLine('  {}')).toBeNull();
    expect(parseEventLine('"type"')).toBeNull();
    expect(parseEventLine('warning: {"type": 1}')).toBeNull();
  });
});

function result(host: string, status: HostResult['status'], extra: Partial<HostResult> = {}): HostResult {
  return {
    host,
    address: `root@${host}`,
    status,
    mode: 'run',
    dryRun: false,
    seconds: 12,
    reconnects: 0,
    resumed: false,
    runId: null,
    remoteExitCode: 0,
    report: null,
    check: null,
    unseen: null,
    error: null,
    warnings: [],
    ...extra,
  };
}

describe('exit codes and the summary', () => {
  it('is 0 when every host succeeded, 1 when none did, 3 in between', () => {
    expect(exitCodeOf([result('a', 'succeeded'), result('b', 'succeeded')])).toBe(0);
    expect(exitCodeOf([result('a', 'succeeded'), result('b', 'failed')])).toBe(3);
    expect(exitCodeOf([result('a', 'partial'), result('b', 'partial')])).toBe(3);
    expect(exitCodeOf([result('a', 'failed'), result('b', 'interrupted')])).toBe(1);
  });

  it('shows one row per host, then each failure with its hint', () => {
    const text = renderRemoteSummary(
      [
        result('web1', 'succeeded', { reconnects: 1, resumed: true, unseen: { runId: 'r', plugins: ['apt', 'npm'], failures: [], wallSeconds: 3 } }),
        result('web2', 'failed', { error: { code: 'E_SSH_HOST_KEY', message: 'web2 is not a known host', hint: 'use --accept-new' } }),
      ],
      'run',
      false,
    );
    expect(text).toMatch(/web1\s+✓ ok\s+12s\s+2 ok\s+1 reconnect, resumed; finished while disconnected/);
    expect(text).toContain('✗ web2: error[E_SSH_HOST_KEY]: web2 is not a known host\n  hint: use --accept-new');
    expect(text).toContain('2 hosts: 1 ok, 1 failed');
  });
});

describe('the live view', () => {
  it('draws a row per host with its plugins on a terminal', () => {
    const stderr = new PassThrough();
    let drawn = '';
    stderr.on('data', (chunk: Buffer) => (drawn += chunk.toString()));
    const context = { json: false, quiet: false, verbose: false, stderrIsTTY: true, color: false, stderr, stdout: new PassThrough() } as unknown as Context;
    const display = createRemoteDisplay(context, ['web1', 'web2'], 'run');
    const time = '2026-01-01T00:00:00Z';
    display.event('web1', { type: 'connection', status: 'connected', attempt: 1, address: 'root@web1', time });
    display.event('web1', { type: 'run', runId: 'r', status: 'updating', time });
    for (const plugin of ['apt', 'npm']) display.event('web1', { type: 'estimate', plugin, applicable: true, updates: 2, downloadBytes: 0, securityUpdates: false, requiresReboot: false, estimates: {}, time });
    display.event('web1', { type: 'phase', plugin: 'apt', phase: 'update', status: 'completed', attempt: 1, time });
    display.event('web1', { type: 'phase', plugin: 'npm', phase: 'update', status: 'running', attempt: 1, time });
    display.event('web1', { type: 'progress', plugin: 'npm', phase: 'update', percent: 40, message: 'fetching', time });
    display.event('web2', { type: 'connection', status: 'retrying', attempt: 1, address: 'root@web2', delaySeconds: 2, message: 'connection refused', time });
    display.done();
    const lastFrame = drawn.split('\u001b[J').at(-1)!;
    expect(lastFrame).toMatch(/● web1\s+updating\s+━+ 1\/2\s+\S+\s+npm 40% fetching/);
    expect(lastFrame).toMatch(/↻ web2\s+retry in 2 s/);
  });
});
