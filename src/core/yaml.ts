/**
 * yaml, re-exported so that callers can load it lazily with
 * `await import('../core/yaml.ts')`: a dynamic import of a CommonJS package
 * straight from the bundle yields only its default export, while a static
 * import here keeps the named ones.
 */
export { parse, parseDocument, stringify } from 'yaml';
