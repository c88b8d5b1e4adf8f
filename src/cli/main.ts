import { runCli } from './run.ts';

// The only module that touches `process` (DESIGN rule 1).

// A reader that goes away (`upkeep audit --help | head -1`) is no failure:
// the rest of the output is dropped and the command ends as it would have.
// Ending at once instead could cut an update run short in the middle of apt.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_DESTROYED') throw error;
  });
}

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
  pid: process.pid,
  // How a plugin runs upkeep again (the upkeep-tools plugin): this Node, this entry point.
  selfCommand: [process.execPath, process.argv[1]!],
  onInterrupt: (listener) => {
    process.on('SIGINT', listener);
    process.on('SIGTERM', listener);
    return () => {
      process.off('SIGINT', listener);
      process.off('SIGTERM', listener);
    };
  },
});
process.exitCode = exitCode;
