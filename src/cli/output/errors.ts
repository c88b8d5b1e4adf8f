import { isUpkeepError } from '../../core/errors.ts';
import { redactText } from '../../core/log.ts';
import { colors } from './colors.ts';

/** `error[E_CODE]: message` then `hint: ...`, or a JSON object with --json. */
export function renderError(error: unknown, options: { json: boolean; color: boolean; verbose: boolean }): string {
  if (options.json) {
    const body = isUpkeepError(error)
      ? error.toJSON()
      : { code: 'E_INTERNAL', message: redactText(error instanceof Error ? error.message : String(error)) };
    return `${JSON.stringify({ error: body }, null, 2)}\n`;
  }
  const c = colors(options.color);
  if (isUpkeepError(error)) {
    let text = `${c.red(c.bold(`error[${error.code}]`))}: ${redactText(error.message)}\n`;
    if (error.hint) text += `${c.cyan('hint')}: ${error.hint}\n`;
    if (options.verbose && error.cause instanceof Error) text += `cause: ${redactText(error.cause.stack ?? error.cause.message)}\n`;
    return text;
  }
  const message = error instanceof Error ? error.message : String(error);
  let text = `${c.red(c.bold('error'))}: ${redactText(message)}\n`;
  if (options.verbose && error instanceof Error && error.stack) text += `${redactText(error.stack)}\n`;
  else text += `${c.cyan('hint')}: this is a bug in upkeep; run again with --verbose for the stack and report it\n`;
  return text;
}

export function renderWarning(message: string, color: boolean): string {
  const c = colors(color);
  return `${c.yellow('warning')}: ${message}\n`;
}
