/**
 * Speed of `upkeep remote`: 8 "hosts" (real sshd instances on loopback, each
 * with its own host key), each running a mock update of known length (one
 * mock plugin whose update takes MOCK_SECONDS), updated one after another
 * (--parallel 1) and all at once (--parallel 8). Reported: both wall times,
 * the speed-up, and the per-host overhead of a remote update (the serial wall
 * time per host minus the mock's length), split into what upkeep itself takes
 * on the host (the same update run locally, no SSH) and what going through
 * SSH adds (connection, authentication, the wrapper, the event stream).
 * Writes bench/results/remote.json. Run: npm run bench:remote (builds first:
 * the hosts run bin/upkeep.js).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRemoteHost, generateKey, sshdAvailable, type RemoteHostFixture } from '../test/helpers/sshd.ts';

const HOSTS = 8;
const MOCK_SECONDS = 2;
const ROUNDS = 3;
const root = resolve(import.meta.dirname, '..');
const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;
const median = (values: number[]) => values.toSorted((left, right) => left - right)[Math.floor(values.length / 2)]!;

if (!sshdAvailable()) {
  console.error('bench:remote needs /usr/sbin/sshd and ssh-keygen (Debian: apt-get install openssh-server)');
  process.exitCode = 1;
} else {
  const folder = mkdtempSync(join(tmpdir(), 'upkeep-bench-remote-'));
  const hosts: RemoteHostFixture[] = [];
  try {
    const home = join(folder, 'home');
    const key = await generateKey(join(home, '.ssh', 'id_ed25519'));
    for (let index = 1; index <= HOSTS; index += 1) {
      hosts.push(
        await createRemoteHost({
          root: folder,
          name: `host${index}`,
          authorizedKeys: [key.publicKey],
          plugins: [{ name: 'mock', settings: { update_seconds: MOCK_SECONDS, seconds: 0.05 } }],
        }),
      );
    }
    writeFileSync(join(home, '.ssh', 'known_hosts'), hosts.map((host) => `${host.sshd.knownHostsLine}\n`).join(''));
    mkdirSync(join(folder, 'local', 'config'), { recursive: true });
    writeFileSync(
      join(folder, 'local', 'config', 'hosts.yaml'),
      `hosts:\n${hosts.map((host) => `  ${host.name}: {hostname: 127.0.0.1, port: ${host.sshd.port}, user: root, upkeep_path: ${host.upkeepPath}}`).join('\n')}\ngroups:\n  fleet: [${hosts.map((host) => host.name).join(', ')}]\n`,
    );
    const environment = { HOME: home, PATH: '/usr/bin:/bin', UPKEEP_HOME: join(folder, 'local'), NO_COLOR: '1' };

    /** Forgets the mock's applied update on every host, so that the next run updates again. */
    const reset = (): void => {
      for (const host of hosts) {
        rmSync(host.machine, { recursive: true, force: true });
        mkdirSync(host.machine);
      }
    };
    const timed = (argv: string[], env: Record<string, string>): number => {
      const started = performance.now();
      const result = spawnSync(argv[0]!, argv.slice(1), { env, encoding: 'utf8', timeout: 600_000 });
      const seconds = (performance.now() - started) / 1000;
      if (result.status !== 0) throw new Error(`${argv.join(' ')} failed (${result.status}): ${result.stderr}${result.stdout}`);
      return seconds;
    };
    const cli = [process.execPath, join(root, 'bin', 'upkeep.js')];

    // The same update on a "host", run locally: what upkeep itself takes there.
    const local: number[] = [];
    for (let run = 0; run < ROUNDS + 1; run += 1) {
      reset();
      local.push(timed([hosts[0]!.upkeepPath, 'update', 'run', '--json'], { PATH: '/usr/bin:/bin' }));
    }
    const serial: number[] = [];
    const parallel: number[] = [];
    for (let run = 0; run < ROUNDS; run += 1) {
      reset();
      serial.push(timed([...cli, 'remote', 'fleet', '--parallel', '1', '--json'], environment));
      reset();
      parallel.push(timed([...cli, 'remote', 'fleet', '--parallel', String(HOSTS), '--json'], environment));
    }
    const serialSeconds = median(serial);
    const parallelSeconds = median(parallel);
    const localSeconds = median(local.slice(1));
    const perHost = serialSeconds / HOSTS;
    const result = {
      hosts: HOSTS,
      mockSeconds: MOCK_SECONDS,
      rounds: ROUNDS,
      serialSeconds: round(serialSeconds),
      parallelSeconds: round(parallelSeconds),
      speedup: round(serialSeconds / parallelSeconds),
      perHostSeconds: round(perHost),
      /** Serial wall time per host minus the mock's length. */
      perHostOverheadSeconds: round(perHost - MOCK_SECONDS),
      /** Of that, what upkeep takes on the host without SSH (start-up, estimate, state, stats). */
      upkeepOnHostOverheadSeconds: round(localSeconds - MOCK_SECONDS),
      /** And what SSH adds: connection, key exchange, authentication, the wrapper, the event stream. */
      sshOverheadSeconds: round(perHost - localSeconds),
      /** All hosts at once, beyond one mock's length. */
      parallelOverheadSeconds: round(parallelSeconds - MOCK_SECONDS),
    };
    console.log(`upkeep remote: ${HOSTS} sshd hosts on loopback, a mock update of ${MOCK_SECONDS} s each (median of ${ROUNDS} rounds)`);
    console.table({
      'one after another (--parallel 1)': { seconds: result.serialSeconds },
      [`all at once (--parallel ${HOSTS})`]: { seconds: result.parallelSeconds },
    });
    console.log(`speed-up ${result.speedup}x; per host: ${result.perHostSeconds} s = ${MOCK_SECONDS} s mock + ${result.perHostOverheadSeconds} s overhead`);
    console.log(`  of which upkeep on the host (no SSH): ${result.upkeepOnHostOverheadSeconds} s, SSH: ${result.sshOverheadSeconds} s`);
    mkdirSync(join(root, 'bench', 'results'), { recursive: true });
    writeFileSync(join(root, 'bench', 'results', 'remote.json'), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    for (const host of hosts) await host.sshd.stop();
    rmSync(folder, { recursive: true, force: true });
  }
}
