/**
 * Variables a process started on the user's behalf (a plugin, a scheduled
 * run) needs from the user's environment, named once for both.
 */

/** Behind a proxy, and with its certificate authority, every download fails without these. */
export const NETWORK_VARIABLES = [
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'REQUESTS_CA_BUNDLE',
  'CURL_CA_BUNDLE',
  'PIP_CERT',
  'GIT_SSL_CAINFO',
  'NPM_CONFIG_CAFILE',
] as const;

/** Where the package managers keep what they installed, when a shell profile moved it. */
export const MANAGER_VARIABLES = [
  'PNPM_HOME',
  'NPM_CONFIG_PREFIX',
  'CARGO_HOME',
  'RUSTUP_HOME',
  'GOPATH',
  'GOBIN',
  'GEM_HOME',
  'PIPX_HOME',
  'PIPX_BIN_DIR',
  'UV_TOOL_DIR',
  'UV_TOOL_BIN_DIR',
  'HOMEBREW_PREFIX',
] as const;
