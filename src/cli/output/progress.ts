import type { Context } from '../context.ts';

/**
 * One live status line on stderr, only on a terminal and never with --quiet
 * or --json (DESIGN rule 7). Redrawn at most ten times a second.
 */
export interface Progress {
  update(phase: string, done: number, total: number): void;
  done(): void;
}

const silent: Progress = { update() {}, done() {} };

export function createProgress(context: Context): Progress {
  if (!context.stderrIsTTY || context.quiet || context.json) return silent;
  const phases = new Map<string, { done: number; total: number }>();
  let lastDraw = 0;
  let drawn = false;
  const draw = (): void => {
    const text = [...phases].map(([phase, { done, total }]) => `${phase} ${done}/${total}`).join(' · ');
    context.stderr.write(`\r\u001b[K${text}`);
    drawn = true;
  };
  return {
    update(phase, done, total) {
      phases.set(phase, { done, total });
      const now = Date.now();
      if (now - lastDraw < 100 && done < total) return;
      lastDraw = now;
      draw();
    },
    done() {
      if (drawn) context.stderr.write('\r\u001b[K');
    },
  };
}
