import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { appendFile, chmod, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UpkeepError } from '../../core/errors.ts';

/**
 * OpenSSH's known_hosts, read and appended the way `ssh` does it (sshd(8)
 * "SSH_KNOWN_HOSTS FILE FORMAT"): plain, wildcard, negated and hashed
 * (`|1|salt|hmac`) host patterns, the `[host]:port` form for other ports
 * than 22, and the @revoked marker. Host certificates (@cert-authority) are
 * not used: ssh2 does not offer certificate host key algorithms.
 */

export interface KnownHostEntry {
  file: string;
  line: number;
  marker: 'cert-authority' | 'revoked' | null;
  /** The comma-separated host patterns, or one hashed name. */
  patterns: string;
  keyType: string;
  key: Buffer;
}

export type HostKeyVerdict =
  | { status: 'known'; entry: KnownHostEntry }
  | { status: 'unknown'; otherTypes: string[] }
  | { status: 'changed'; entry: KnownHostEntry }
  | { status: 'revoked'; entry: KnownHostEntry };

export function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'] = null;
    if (fields[0] === '@cert-authority' || fields[0] === '@revoked') {
      marker = fields[0] === '@revoked' ? 'revoked' : 'cert-authority';
      fields.shift();
    } else if (fields[0]?.startsWith('@')) {
      return;
    }
    const [patterns, keyType, encoded] = fields;
    if (!patterns || !keyType || !encoded) return;
    const key = Buffer.from(encoded, 'base64');
    // A line whose key does not decode to its own type is damaged; ssh skips it too.
    if (key.length === 0 || keyTypeOf(key) !== keyType) return;
    entries.push({ file, line: index + 1, marker, patterns, keyType, key });
  });
  return entries;
}

/** How known_hosts names a host: the bare name on port 22, `[name]:port` on any other. */
export function knownHostName(hostname: string, port: number): string {
  return port === 22 ? hostname : `[${hostname}]:${port}`;
}

/** The key type inside an SSH public key blob (its first string). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return '';
  const length = blob.readUInt32BE(0);
  if (length > 64 || blob.length < 4 + length) return '';
  return blob.subarray(4, 4 + length).toString('latin1');
}

/** `SHA256:...`, the fingerprint `ssh` and `ssh-keygen -l` print. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** `ED25519`, `RSA`, `ECDSA`: the word ssh uses when it shows a key. */
export function keyTypeLabel(keyType: string): string {
  if (keyType === 'ssh-ed25519') return 'ED25519';
  if (keyType === 'ssh-rsa') return 'RSA';
  if (keyType.startsWith('ecdsa-')) return 'ECDSA';
  if (keyType === 'ssh-dss') return 'DSA';
  return keyType;
}

/** OpenSSH's pattern language: `*` and `?`, case-insensitive (host names are). */
export function wildcardMatch(pattern: string, text: string): boolean {
  const expression = pattern
    .toLowerCase()
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${expression}$`, 's').test(text.toLowerCase());
}

/**
 * Whether a known_hosts pattern field names `name`: a hashed name is
 * compared by its HMAC; in a list, a matching negated pattern wins over
 * everything else (as in OpenSSH's match_hostname).
 */
export function hostMatches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) return hashedMatches(patterns, name);
  let matched = false;
  for (const pattern of patterns.split(',')) {
    if (pattern.startsWith('!')) {
      if (wildcardMatch(pattern.slice(1), name)) return false;
    } else if (wildcardMatch(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

function hashedMatches(field: string, name: string): boolean {
  const [, , salt, hash] = field.split('|');
  if (!salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = createHmac('sha1', Buffer.from(salt, 'base64')).update(name.toLowerCase()).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/**
 * What the entries say of `key` presented for `name`: the same key is
 * known; a key of a type already recorded for the name has changed (always
 * refused); a key of a type never recorded is unknown. A revoked key is
 * refused whatever else is recorded.
 */
export function checkHostKey(entries: readonly KnownHostEntry[], name: string, key: Buffer): HostKeyVerdict {
  const keyType = keyTypeOf(key);
  for (const entry of entries) {
    if (entry.marker === 'revoked' && entry.key.equals(key) && hostMatches(entry.patterns, name)) return { status: 'revoked', entry };
  }
  const forHost = entries.filter((entry) => entry.marker === null && hostMatches(entry.patterns, name));
  const same = forHost.find((entry) => entry.key.equals(key));
  if (same) return { status: 'known', entry: same };
  const sameType = forHost.find((entry) => entry.keyType === keyType);
  if (sameType) return { status: 'changed', entry: sameType };
  return { status: 'unknown', otherTypes: [...new Set(forHost.map((entry) => entry.keyType))] };
}

/** Host key algorithms ssh2 knows, in its default order of preference. */
const HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];

/**
 * The host key algorithms to offer, those of the keys already recorded for
 * the host first. As OpenSSH does: otherwise a host whose RSA key is known
 * but which also has an ED25519 key would present the unknown one.
 */
export function preferredHostKeyAlgorithms(entries: readonly KnownHostEntry[], name: string): string[] {
  const known = new Set(entries.filter((entry) => entry.marker === null && hostMatches(entry.patterns, name)).map((entry) => entry.keyType));
  const first = HOST_KEY_ALGORITHMS.filter((algorithm) => known.has(algorithm.startsWith('rsa-sha2-') ? 'ssh-rsa' : algorithm));
  return [...first, ...HOST_KEY_ALGORITHMS.filter((algorithm) => !first.includes(algorithm))];
}

/** One known_hosts line; hashed like `HashKnownHosts yes` when asked. */
export function formatKnownHostsLine(name: string, key: Buffer, hash: boolean): string {
  const keyType = keyTypeOf(key);
  let host = name;
  if (hash) {
    const salt = randomBytes(20);
    host = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name.toLowerCase()).digest('base64')}`;
  }
  return `${host} ${keyType} ${key.toString('base64')}`;
}

/** Every entry of the files that exist; missing files are simply empty. */
export async function loadKnownHosts(files: readonly string[]): Promise<KnownHostEntry[]> {
  const entries: KnownHostEntry[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue;
      throw new UpkeepError('E_SSH_HOST_KEY', `cannot read ${file}: ${(error as Error).message}`, {
        hint: 'check its permissions; host keys are verified against it',
      });
    }
    entries.push(...parseKnownHosts(text, file));
  }
  return entries;
}

/**
 * Appends one line, as ssh does. Appending rather than rewriting keeps a
 * known_hosts that is a symlink (dotfiles) a symlink and never loses the
 * lines another ssh added meanwhile; one short O_APPEND write lands whole.
 */
export async function appendKnownHost(file: string, line: string): Promise<void> {
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    let prefix = '';
    try {
      const existing = await readFile(file);
      if (existing.length > 0 && existing[existing.length - 1] !== 0x0a) prefix = '\n';
    } catch {
      // A new file.
    }
    const created = await stat(file).then(() => false, () => true);
    await appendFile(file, `${prefix}${line}\n`, { mode: 0o644 });
    if (created) await chmod(file, 0o644);
  } catch (error) {
    throw new UpkeepError('E_FS_WRITE', `could not add the host key to ${file}: ${(error as Error).message}`, {
      hint: 'check that the folder exists and is writable',
      cause: error,
    });
  }
}
