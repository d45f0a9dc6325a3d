/**
 * Can an existing mirror table hold a newly received table shape, and what must change in place?
 *
 * Rules (the mirror must accept every row the source can now send, and must never silently lose data):
 * - a new column is added (nullable: existing rows have no value for it until the table is repopulated);
 * - a column the source no longer has is dropped;
 * - a type that grew (int16 → int32 → int64, float32 → float64, longer varchar/char/binary, varchar → text,
 *   wider numeric, more fractional-second digits, integer → a numeric that holds it) is widened;
 * - a column that became nullable drops its NOT NULL;
 * - a column that became NOT NULL is left as it is: a looser mirror accepts every row the source sends, and
 *   tightening it in place could fail on rows the mirror already holds. It is not a difference.
 * - any other type change (narrowing, or a different kind) and any primary key change is incompatible: the table
 *   has to be rebuilt from scratch.
 *
 * Pure and dialect-neutral: the caller passes both sides as logical types, normalised through its own type
 * mapping (so "what this database would store" is compared, not what the source called it).
 */
import type { ColumnSchema, LogicalType, TableSchema } from './types';

export interface ExistingColumn {
  name: string;
  type: LogicalType;
  nullable: boolean;
}

/** What the mirror's catalog says about a table. */
export interface ExistingTable {
  columns: ExistingColumn[];
  primaryKey: string[];
}

export type SchemaChange =
  | { kind: 'addColumn'; column: ColumnSchema }
  | { kind: 'widenType'; column: string; from: LogicalType; to: LogicalType }
  | { kind: 'dropNotNull'; column: string }
  | { kind: 'dropColumn'; column: string };

export type SchemaComparison =
  | { status: 'unchanged' }
  | { status: 'altered'; changes: SchemaChange[] }
  | { status: 'incompatible'; reason: string };

export type TypeRelation = 'equal' | 'widening' | 'incompatible';

/** Decimal digits needed for every value of an integer type (with int8 = 0..255). */
const INT_DIGITS: Record<string, number> = { int8: 3, int16: 5, int32: 10, int64: 19 };
const INT_RANK: Record<string, number> = { int8: 0, int16: 1, int32: 2, int64: 3 };

/** Unspecified fractional-second precision means the maximum a database keeps (6 digits). */
function fraction(p: number | undefined): number {
  return p === undefined ? 6 : p;
}

/** Unbounded length is longer than any bound. */
function lengthOf(n: number | undefined): number {
  return n === undefined ? Number.POSITIVE_INFINITY : n;
}

/**
 * How a column of type `from` relates to the type `to` it should now have: the same, a widening the database can
 * do in place without losing a value, or neither.
 */
export function typeRelation(from: LogicalType, to: LogicalType): TypeRelation {
  if (from.kind in INT_RANK && to.kind in INT_RANK) {
    const a = INT_RANK[from.kind]!;
    const b = INT_RANK[to.kind]!;
    return a === b ? 'equal' : a < b ? 'widening' : 'incompatible';
  }
  if (from.kind in INT_DIGITS && to.kind === 'decimal') {
    if (to.precision === undefined) return 'widening';
    return to.precision - (to.scale ?? 0) >= INT_DIGITS[from.kind]! ? 'widening' : 'incompatible';
  }
  if (from.kind === 'float32' && to.kind === 'float64') return 'widening';
  switch (from.kind) {
    case 'decimal': {
      if (to.kind !== 'decimal') return 'incompatible';
      if (from.precision === to.precision && (from.scale ?? 0) === (to.scale ?? 0)) return 'equal';
      if (to.precision === undefined) return 'widening';
      if (from.precision === undefined) return 'incompatible';
      const fromScale = from.scale ?? 0;
      const toScale = to.scale ?? 0;
      return toScale >= fromScale && to.precision - toScale >= from.precision - fromScale ? 'widening' : 'incompatible';
    }
    case 'string':
    case 'binary': {
      if (to.kind !== from.kind || Boolean(to.fixed) !== Boolean(from.fixed)) return 'incompatible';
      const a = lengthOf(from.length);
      const b = lengthOf(to.length);
      return a === b ? 'equal' : a < b ? 'widening' : 'incompatible';
    }
    case 'time':
    case 'timetz':
    case 'timestamp':
    case 'timestamptz': {
      if (to.kind !== from.kind) return 'incompatible';
      const a = fraction(from.precision);
      const b = fraction(to.precision);
      return a === b ? 'equal' : a < b ? 'widening' : 'incompatible';
    }
    case 'array': {
      if (to.kind !== 'array') return 'incompatible';
      return typeRelation(from.element, to.element);
    }
    case 'native':
      return to.kind === 'native' && to.dialect === from.dialect && to.name === from.name ? 'equal' : 'incompatible';
    default:
      // Types without parameters: the same kind is the same type.
      return from.kind === to.kind ? 'equal' : 'incompatible';
  }
}

export function describeType(t: LogicalType): string {
  switch (t.kind) {
    case 'decimal':
      return t.precision === undefined ? 'decimal' : `decimal(${t.precision},${t.scale ?? 0})`;
    case 'string':
    case 'binary':
      return `${t.kind}${t.fixed ? ' fixed' : ''}${t.length === undefined ? '' : `(${t.length})`}`;
    case 'time':
    case 'timetz':
    case 'timestamp':
    case 'timestamptz':
      return t.precision === undefined ? t.kind : `${t.kind}(${t.precision})`;
    case 'array':
      return `${describeType(t.element)}[]`;
    case 'native':
      return `${t.dialect}:${t.name}`;
    default:
      return t.kind;
  }
}

/** One line per change, for SchemaApplyResult.changes and status. */
export function describeChange(c: SchemaChange): string {
  switch (c.kind) {
    case 'addColumn':
      return `add column ${JSON.stringify(c.column.name)} ${describeType(c.column.type)}`;
    case 'widenType':
      return `widen column ${JSON.stringify(c.column)} from ${describeType(c.from)} to ${describeType(c.to)}`;
    case 'dropNotNull':
      return `drop NOT NULL on column ${JSON.stringify(c.column)}`;
    case 'dropColumn':
      return `drop column ${JSON.stringify(c.column)}`;
  }
}

export function compareSchema(existing: ExistingTable, received: TableSchema): SchemaComparison {
  const samePk =
    existing.primaryKey.length === received.primaryKey.length &&
    existing.primaryKey.every((name, i) => name === received.primaryKey[i]);
  if (!samePk) {
    return {
      status: 'incompatible',
      reason: `primary key changed from (${existing.primaryKey.join(', ')}) to (${received.primaryKey.join(', ')})`,
    };
  }

  const byName = new Map(existing.columns.map((c) => [c.name, c]));
  const changes: SchemaChange[] = [];
  for (const column of received.columns) {
    const current = byName.get(column.name);
    if (!current) {
      changes.push({ kind: 'addColumn', column });
      continue;
    }
    const relation = typeRelation(current.type, column.type);
    if (relation === 'incompatible') {
      return {
        status: 'incompatible',
        reason: `column ${JSON.stringify(column.name)} changed type from ${describeType(current.type)} to ${describeType(column.type)}`,
      };
    }
    if (relation === 'widening') changes.push({ kind: 'widenType', column: column.name, from: current.type, to: column.type });
    // Key columns stay NOT NULL whatever the source says: a primary key requires it.
    if (column.nullable && !current.nullable && !received.primaryKey.includes(column.name)) changes.push({ kind: 'dropNotNull', column: column.name });
  }
  const receivedNames = new Set(received.columns.map((c) => c.name));
  for (const column of existing.columns) {
    if (!receivedNames.has(column.name)) changes.push({ kind: 'dropColumn', column: column.name });
  }
  return changes.length ? { status: 'altered', changes } : { status: 'unchanged' };
}
