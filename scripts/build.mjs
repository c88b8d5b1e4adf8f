// Bundles the CLI with esbuild so that start-up parses one file instead of
// resolving hundreds of modules. The catalog stays YAML; it is compiled into the
// user cache on first use (src/catalog/loader.ts).
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';

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
  // A native module: it loads its compiled .node file from its own folder.
  external: ['better-sqlite3'],
  define: { __UPKEEP_VERSION__: JSON.stringify(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version) },
  banner: {
    // Bundled CommonJS dependencies use require() and __filename; give ESM output both.
    js: [
      "import { createRequire as __upkeepCreateRequire } from 'node:module';",
      "import { fileURLToPath as __upkeepFileURLToPath } from 'node:url';",
      'const require = __upkeepCreateRequire(import.meta.url);',
      'const __filename = __upkeepFileURLToPath(import.meta.url);',
    ].join(' '),
  },
});

