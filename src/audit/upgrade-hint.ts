import type { Tool } from '../catalog/schema.ts';
import type { InstallMethod } from './types.ts';

/**
 * The command that would upgrade an installation, derived from how it was
 * installed (the seed 001 table). Shown beside outdated tools until
 * `upkeep upgrade` exists; null where no safe command can be derived.
 */
export function upgradeHint(tool: Tool, method: InstallMethod, systemPackage: string | undefined): string | null {
  const upstream = tool.upstream;
  const packageName = systemPackage ?? tool.id;
  switch (method) {
    case 'apt':
      return `sudo apt-get install --only-upgrade -y ${packageName}`;
    case 'rpm':
      return `sudo dnf upgrade -y ${packageName}`;
    case 'pacman':
      return `sudo pacman -S --noconfirm ${packageName}`;
    case 'apk':
      return `sudo apk upgrade ${packageName}`;
    case 'zypper':
      return `sudo zypper update -y ${packageName}`;
    case 'homebrew':
      return `brew upgrade ${tool.id}`;
    case 'snap':
      return `sudo snap refresh ${tool.id}`;
    case 'pipx':
      return `pipx upgrade ${upstream.source === 'pypi' ? upstream.package : tool.id}`;
    case 'uv':
      return `uv tool upgrade ${upstream.source === 'pypi' ? upstream.package : tool.id}`;
    case 'npm-global':
    case 'npm-user':
      return upstream.source === 'npm' ? `npm install -g ${upstream.package}@latest` : null;
    case 'pnpm':
      return upstream.source === 'npm' ? `pnpm add -g ${upstream.package}@latest` : null;
    case 'bun':
      return upstream.source === 'npm' ? `bun add -g ${upstream.package}@latest` : null;
    case 'cargo':
      return upstream.source === 'crates' ? `cargo install --locked ${upstream.crate}` : null;
    case 'rustup':
      return 'rustup update';
    case 'mise':
      return `mise upgrade ${tool.id}`;
    case 'asdf':
      return `asdf install ${tool.id} latest`;
    case 'volta':
      return `volta install ${upstream.source === 'npm' ? upstream.package : tool.id}@latest`;
    default:
      return null;
  }
}
