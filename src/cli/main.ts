import { runCli } from './run.ts';

// The only module that touches `process` (DESIGN rule 1).
const exitCode = await runCli(process.argv.slice(2), {
  environment: process.env,
  cwd: process.cwd(),
  stdout: process.stdout,
  stderr: process.stderr,
  stdoutIsTTY: process.stdout.isTTY === true,
  stderrIsTTY: process.stderr.isTTY === true,
  stdin: process.stdin,
  stdinIsTTY: process.stdin.isTTY === true,
  uid: process.getuid?.(),
});
process.exitCode = exitCode;
