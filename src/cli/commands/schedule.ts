import type { Command } from 'commander';
import type { Handler } from '../run.ts';

type Register = <T>(handler: Handler<T>) => (...args: unknown[]) => Promise<void>;

export function registerScheduleCommands(_program: Command, _run: Register): void {}
