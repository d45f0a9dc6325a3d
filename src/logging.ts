/**
 * One logger for the process (pino: structured JSON on stderr, fast; pretty on a terminal unless LOG_JSON is set).
 * Log lines carry tenant and table ids (`tenantId`, `table`), never connection strings or passwords, by three
 * guards: fields named like credentials are censored (`redact`), messages built from driver errors go through
 * `redact` (src/core/errors.ts) first, and every line is scrubbed once more just before it is written (credentials
 * in anything that looks like a URL, `password=…` pairs of a connection string).
 *
 * The Temporal SDK logs through the same logger (`temporalLogger`, installed by src/telemetry.ts), so the worker's
 * whole stderr is one JSON stream; the SDK's lines about a tenant's workflow or activity gain its `tenantId`.
 */
import pino from 'pino';
import type { LogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import { redact } from './core/errors';
import { WORKFLOW_ID_PREFIX } from '../contract/ids';

/** `password=…` / `pwd=…` in a connection string (ADO, ODBC, libpq keyword form). */
const PASSWORD_PAIR = /\b(password|pwd)(\s*[=:]\s*)(\\"(?:[^"\\]|\\[^"])*\\"|"(?:[^"\\]|\\.)*"|'[^']*'|[^;&\s"\\,}]+)/gi;

/** The last guard: whatever reaches the stream loses URL credentials and password pairs. */
export function scrubLine(line: string): string {
  return redact(line).replace(PASSWORD_PAIR, (_m, key: string, sep: string) => `${key}${sep}***`);
}

const options: pino.LoggerOptions = {
  level: process.env.LOG_LEVEL ?? 'info',
  base: { service: 'tenant-mirror' },
  redact: {
    paths: ['url', '*.url', 'password', '*.password', 'connectionString', '*.connectionString', 'source.url', 'mirror.url', '*.source.url', '*.mirror.url'],
    censor: '***',
  },
  hooks: { streamWrite: scrubLine },
};

const pretty = process.stderr.isTTY && !process.env.LOG_JSON;

export const logger: pino.Logger = pretty
  ? pino({ ...options, transport: { target: 'pino-pretty', options: { destination: 2, ignore: 'pid,hostname,service' } } })
  : pino(options, pino.destination(2));

export type Logger = pino.Logger;

const LEVELS: Record<LogLevel, pino.Level> = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' };

/**
 * The Temporal SDK's Logger on top of ours: its messages become JSON lines with `sdkComponent` and the SDK's
 * metadata; a workflow id of ours (`tenant-mirror:<tenant>`) adds `tenantId`.
 */
export function temporalLogger(base: pino.Logger = logger, minLevel: LogLevel = 'TRACE'): TemporalLogger {
  const sdk = base.child({ source: 'temporal' });
  const order: LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];
  const log = (level: LogLevel, message: string, meta?: LogMetadata): void => {
    if (order.indexOf(level) < order.indexOf(minLevel)) return;
    const fields: Record<string, unknown> = { ...(meta ?? {}) };
    const workflowId = typeof fields.workflowId === 'string' ? fields.workflowId : undefined;
    if (workflowId?.startsWith(WORKFLOW_ID_PREFIX) && fields.tenantId === undefined) fields.tenantId = workflowId.slice(WORKFLOW_ID_PREFIX.length);
    // pino serialises an `err` field fully (message, stack, cause); the SDK names it `error`.
    if (fields.error instanceof Error && fields.err === undefined) {
      fields.err = fields.error;
      delete fields.error;
    }
    sdk[LEVELS[level]](fields, message);
  };
  return {
    log,
    trace: (m, meta) => log('TRACE', m, meta),
    debug: (m, meta) => log('DEBUG', m, meta),
    info: (m, meta) => log('INFO', m, meta),
    warn: (m, meta) => log('WARN', m, meta),
    error: (m, meta) => log('ERROR', m, meta),
  };
}
