/**
 * A worker logger whose JSON lines a test reads back: what the worker did (a cycle, a fenced session, lanes
 * opened) shows in its log long before it shows anywhere else.
 */
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';

/** One parsed log line: pino's `msg` and `level`, and whatever fields the call logged. */
export type LogLine = { msg: string; level: number } & Record<string, unknown>;

export function capturedLogger(level: 'debug' | 'info' = 'info'): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: pino({ level }, sink), lines };
}
