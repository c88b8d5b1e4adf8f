// Bundles the CLI with esbuild so that start-up parses one file instead of
// resolving hundreds of modules, and compiles the YAML catalog into one JSON
// file so that an audit does not parse 130 YAML files on every run.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });

await build({
  entryPoints: { cli: 'src/cli/main.ts' },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // Split so that modules used only on some paths (undici for the network,
  // pino for --log-file, yaml for config files) load only when needed.
  splitting: true,
  sourcemap: 'linked',
  logLevel: 'warning',
  banner: {
    // Bundled CommonJS dependencies call require(); give ESM output one.
    js: "import { createRequire as __upkeepCreateRequire } from 'node:module'; const require = __upkeepCreateRequire(import.meta.url);",
  },
});

const { compileCatalog } = await import('./compile-catalog.mjs');
await compileCatalog();
