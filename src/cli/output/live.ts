import type { Writable } from 'node:stream';
import type { Colors } from './colors.ts';

/**
 * A drawing kept up to date in place on a terminal (the live tables of
 * `update` and `remote`): redrawn at most ten times a second when something
 * changes, and once a second anyway so that clocks and ETAs move. Notes
 * (warnings, retries) are printed above the drawing and stay on screen.
 */
export interface LiveScreen {
  note(text: string): void;
  /** Something changed: redraw soon. */
  changed(): void;
  /** The last drawing; the screen stops redrawing. */
  stop(): void;
}

const REDRAW_MILLISECONDS = 100;

export function liveScreen(stream: Writable, render: () => string): LiveScreen {
  const notes: string[] = [];
  let drawnLines = 0;
  let lastDraw = 0;
  let timer: NodeJS.Timeout | undefined;
  const draw = (): void => {
    lastDraw = Date.now();
    const text = render();
    const erase = drawnLines > 0 ? `\u001b[${drawnLines}A\r\u001b[J` : '';
    const printedNotes = notes.splice(0).map((note) => `${note}\n`).join('');
    stream.write(`${erase}${printedNotes}${text}\n`);
    drawnLines = text.split('\n').length;
  };
  const ticker = setInterval(draw, 1000);
  ticker.unref();
  return {
    note(text) {
      notes.push(text);
    },
    changed() {
      if (Date.now() - lastDraw >= REDRAW_MILLISECONDS) draw();
      else
        timer ??= setTimeout(() => {
          timer = undefined;
          draw();
        }, REDRAW_MILLISECONDS);
    },
    stop() {
      clearInterval(ticker);
      clearTimeout(timer);
      draw();
    },
  };
}

export function progressBar(fraction: number, c: Colors, width: number): string {
  const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return c.green('━'.repeat(filled)) + c.dim('━'.repeat(width - filled));
}
