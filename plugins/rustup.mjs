#!/usr/bin/env node
// upkeep plugin for rustup: Rust toolchains and rustup itself.
//
// `rustup check` prints one line per toolchain and one for rustup:
//   stable-x86_64-unknown-linux-gnu - Update available : 1.80.0 (051478957 2024-07-21) -> 1.81.0 (eeb90cda1 2024-09-04)
//   rustup - Up to date : 1.27.1
// Its exit code changed across releases (always 0; then 0 for "updates" and
// 1 for "none"; since 1.29, 0 for none and 100 for updates), so the text
// decides and only an `error:` line makes it a failure. `rustup update`
// then updates every toolchain and rustup itself.
import { commandFailed, definePlugin, estimatePackages, loadState, PluginError, programFound, progress, run, setting } from './lib/plugin.mjs';

const NAME = 'rustup';
// rustup's downloads fail with reqwest's chain of causes.
const NETWORK = /could not download file|dns error|failed to lookup address|error sending request|Connection refused|timed out/i;

function failure(argv, result) {
  const text = `${result.stderr}\n${result.stdout}`;
  if (NETWORK.test(text)) {
    // The error and its causes; a backtrace (RUST_BACKTRACE) follows them and is left out.
    const errors = text.split('Stack backtrace:')[0].split('\n').filter((line) => /^error:|^\s+\d+: /.test(line));
    return new PluginError('NETWORK_ERROR', `${argv.join(' ')} could not reach the Rust distribution server`, { details: errors.join('\n'), transient: true });
  }
  return commandFailed(argv, result);
}

/** `<toolchain> - Update available : <old> (<hash> <date>) -> <new> (<hash> <date>)`; rustup's own line has no parentheses. */
function parseCheck(text) {
  const packages = [];
  for (const line of text.split('\n')) {
    const match = /^(\S+) - Update available : (\S+)(?: \([^)]*\))? -> (\S+)/.exec(line.trim());
    if (match) packages.push({ name: match[1], current_version: match[2], new_version: match[3] });
  }
  return packages;
}

async function pending() {
  const argv = ['rustup', 'check'];
  const result = await run(argv, { timeout: setting(NAME, 'query_timeout', 60) });
  const failed = /^error:/m.test(result.stderr) || ![0, 1, 100].includes(result.code);
  if (failed) throw failure(argv, result);
  return parseCheck(result.stdout);
}

const toolchainsIn = (packages) => packages.filter((entry) => entry.name !== 'rustup');

async function estimate() {
  const found = await estimatePackages(pending, { start: 'rustup check', found: 'updates available' });
  return { ...found, ...(toolchainsIn(found.packages_to_update).length > 0 ? { affects_runtimes: ['rust'] } : {}) };
}

/** `  stable-x86_64-unknown-linux-gnu updated - rustc 1.81.0 (eeb90cda1 2024-09-04) (from rustc 1.80.0 (051478957 2024-07-21))`. */
function updatedIn(text) {
  return [...text.matchAll(/^\s*(\S+) updated - rustc (\S+) .*\(from rustc (\S+)/gm)].map(([, name, to, from]) => ({ name, from, to }));
}

async function update() {
  const planned = loadState('estimate')?.packages ?? (await pending());
  if (planned.length === 0) return { packages_updated: [], package_count: 0, message: 'every toolchain and rustup are up to date' };
  const toolchains = toolchainsIn(planned).length;
  let synced = 0;
  progress(0, 'rustup update');
  const argv = ['rustup', 'update'];
  const result = await run(argv, {
    echo: true,
    // `info: syncing channel updates for 'stable-x86_64-unknown-linux-gnu'` starts each toolchain.
    onLine: (line) => {
      const match = /syncing channel updates for '([^']+)'/.exec(line);
      if (match) progress((90 * synced++) / Math.max(toolchains, synced), `updating ${match[1]}`);
    },
  });
  if (result.code !== 0) throw failure(argv, result);
  const text = `${result.stderr}\n${result.stdout}`;
  const updated = updatedIn(text);
  // The summary names toolchains only; rustup's self-update counts when it was pending and the run succeeded.
  const self = planned.find((entry) => entry.name === 'rustup');
  if (self) updated.push({ name: 'rustup', from: self.current_version, to: self.new_version });
  progress(100, `${updated.length} updated`);
  return { packages_updated: updated, package_count: updated.length };
}

await definePlugin({
  name: NAME,
  version: '1.0.0',
  isApplicable: () => programFound('rustup'),
  estimate,
  update,
  canSeparateDownload: false,
  requiresSudo: false,
});
