/**
 * One logger for the process (pino: structured JSON, fast; pretty on a terminal). Log lines carry tenant and
 * table ids, never connection strings: fields named like credentials are censored, and messages built from
 * driver errors go through `redact` (src/core/errors.ts) first.
 */
import pino from 'pino';

const options: pino.LoggerOptions = {
  level: process.env.LOG_LEVEL ?? 'info',
  base: { service: 'tenant-mirror' },
  redact: { paths: ['url', '*.url', 'password', '*.password', 'connectionString'], censor: '***' },
};

const pretty = process.stderr.isTTY && !process.env.LOG_JSON;

export const logger: pino.Logger = pretty
  ? pino({ ...options, transport: { target: 'pino-pretty', options: { destination: 2, ignore: 'pid,hostname,service' } } })
  : pino(options, pino.destination(2));

export type Logger = pino.Logger;
