/**
 * A stable fingerprint of a table's shape, stored beside the mirror's LSN so a changed shape is noticed even when
 * the mirror could not tell from its own catalog (e.g. a NOT NULL the mirror deliberately does not enforce).
 */
import { createHash } from 'node:crypto';
import type { TableSchema } from './types';

/**
 * JSON with object keys sorted at every level and `undefined` members left out, so two equal values always give
 * the same text whatever order their properties were built in. Array order is kept: it is meaningful.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    // JSON.stringify(undefined) is undefined; inside arrays JSON uses null for it, and so do we.
    return text === undefined ? 'null' : text;
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * sha256 (hex) of the table's mirror-relevant shape: its name, columns (name, type, nullability, in order) and
 * primary key. `source` is left out on purpose: where the rows are read from does not change what the mirror
 * holds.
 */
export function schemaHash(schema: TableSchema): string {
  const shape = {
    name: schema.name,
    columns: schema.columns.map((c) => ({ name: c.name, type: c.type, nullable: c.nullable })),
    primaryKey: schema.primaryKey,
  };
  return createHash('sha256').update(canonicalJson(shape)).digest('hex');
}
