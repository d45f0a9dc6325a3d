/**
 * The `canonical` digest form (see DigestForm in types.ts): a row hash computed here, from the row's COPY text
 * fields, so that a PostgreSQL side and a SQL Server side of one mirror agree about equal values whose text differs.
 * Each field is first brought to one canonical text per logical type (the same value prints differently on the two
 * databases: `12:00:00` and `12:00:00.000000`, `1.5` and `1.5000`, `0.1` and `1.0000000000000001E-1`), then the
 * fields are hashed together. Both adapters feed it the fields they already produce for the row stream (the SQL
 * Server adapters' lossless conversions, src/mssql/values.ts), so there is one definition of "equal" for every pair.
 *
 * Row hashes are signed 64-bit integers (hash64); a range's digest is their count and exact sum (BigInt), which does
 * not depend on the order rows are read in, and counts a row that is there twice twice (a keyless table).
 */
import type { LogicalType, RangeDigest } from './types';

/** The canonical text of one field of a column of `type`; null stays null. Text it cannot read is kept as it is. */
export function canonicalField(type: LogicalType, value: string | null): string | null {
  if (value === null) return null;
  switch (type.kind) {
    case 'boolean':
      return canonicalBoolean(value);
    case 'int8':
    case 'int16':
    case 'int32':
    case 'int64':
    case 'decimal':
    case 'money':
      return canonicalNumber(value);
    case 'float64':
      return canonicalFloat(value, false);
    case 'float32':
      return canonicalFloat(value, true);
    case 'string':
      // character(n) pads with spaces on both databases, but to lengths counted differently (characters / bytes).
      return type.fixed ? value.replace(/ +$/, '') : value;
    case 'binary':
      return value.startsWith('\\x') ? value.toLowerCase() : value;
    case 'time':
    case 'timestamp':
      return trimFraction(value.replace('T', ' '));
    case 'timestamptz':
      return canonicalInstant(value);
    case 'uuid':
      return value.toLowerCase();
    default:
      return value;
  }
}

const TRUE = new Set(['t', 'true', '1', 'y', 'yes', 'on']);
const FALSE = new Set(['f', 'false', '0', 'n', 'no', 'off']);

function canonicalBoolean(value: string): string {
  const v = value.trim().toLowerCase();
  return TRUE.has(v) ? 't' : FALSE.has(v) ? 'f' : value;
}

/** An exact decimal without sign noise, leading zeros or trailing fractional zeros: `-001.500` → `-1.5`. */
export function canonicalNumber(value: string): string {
  const m = /^\s*([+-]?)(\d*)(?:\.(\d*))?\s*$/.exec(value);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) return value;
  const int = m[2]!.replace(/^0+(?=\d)/, '') || '0';
  const frac = (m[3] ?? '').replace(/0+$/, '');
  const digits = frac ? `${int}.${frac}` : int;
  return m[1] === '-' && /[1-9]/.test(digits) ? `-${digits}` : digits;
}

/**
 * The shortest text that reads back as the same double (or, for a real, the same single-precision value):
 * PostgreSQL prints shortest forms, SQL Server 17 or 9 significant digits.
 */
function canonicalFloat(value: string, single: boolean): string {
  const v = value.trim();
  if (/^[+-]?(nan)$/i.test(v)) return 'NaN';
  if (/^\+?inf(inity)?$/i.test(v)) return 'Infinity';
  if (/^-inf(inity)?$/i.test(v)) return '-Infinity';
  const n = Number(v);
  if (!Number.isFinite(n) || v === '') return value;
  if (Object.is(n, -0)) return '-0';
  if (!single) return String(n);
  const f = Math.fround(n);
  for (let p = 1; p <= 9; p++) {
    const shorter = Number(f.toPrecision(p));
    if (Math.fround(shorter) === f) return String(shorter);
  }
  return String(f);
}

/** `hh:mm:ss.500000` → `hh:mm:ss.5`, `hh:mm:ss.000` → `hh:mm:ss` (a time, or the time part of a timestamp). */
function trimFraction(value: string): string {
  return value.replace(/(\d\d:\d\d:\d\d)\.(\d*?)0*(?=$|[+-]|\s)/, (_m, time: string, digits: string) => (digits ? `${time}.${digits}` : time));
}

/**
 * A timestamp with time zone as the UTC instant it is: `2024-01-02 14:00:00.5+02:00` (SQL Server keeps offsets)
 * and `2024-01-02 12:00:00.5+00` (PostgreSQL prints UTC here) both become `2024-01-02 12:00:00.5+00`.
 */
export function canonicalInstant(value: string): string {
  // Already UTC (PostgreSQL under TimeZone UTC): only the fraction to trim.
  const utc = /^(\d{4,}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d(?:\.\d+)?) ?[+-]00(?::?00)?(?::?00)?$/.exec(value);
  if (utc) return `${utc[1]} ${trimFraction(utc[2]!)}+00`;
  const m = /^(\d{4,})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))? ?([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?$/.exec(value.trim());
  if (!m) return value;
  const [, y, mo, d, h, mi, s, frac = '', sign, oh, om = '00', os = '00'] = m;
  const offsetSeconds = (sign === '-' ? -1 : 1) * (Number(oh) * 3600 + Number(om) * 60 + Number(os));
  const at = new Date(0);
  at.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  at.setUTCHours(Number(h), Number(mi), Number(s) - offsetSeconds);
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  const digits = frac.replace(/0+$/, '');
  const date = `${pad(at.getUTCFullYear(), 4)}-${pad(at.getUTCMonth() + 1)}-${pad(at.getUTCDate())}`;
  const time = `${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}:${pad(at.getUTCSeconds())}${digits ? `.${digits}` : ''}`;
  return `${date} ${time}+00`;
}

/** The canonical texts of a row's fields (`types[i]` is the logical type of field i). */
export function canonicalFields(types: readonly LogicalType[], fields: readonly (string | null)[]): (string | null)[] {
  return types.map((t, i) => canonicalField(t, fields[i] ?? null));
}

/**
 * The signed 64-bit hash of a row's canonical fields, each length-prefixed (so no value can pass for a separator
 * or a NULL). The hash is not cryptographic: it tells rows apart (a difference goes unseen with a chance of about
 * 2^-64), it does not resist someone crafting collisions, and it is pure JavaScript, so every machine computes it
 * alike. A cryptographic hash per row cost three times the rest of the work.
 */
export function canonicalRowHash(types: readonly LogicalType[], fields: readonly (string | null)[]): bigint {
  let text = '';
  for (let i = 0; i < types.length; i++) {
    const v = canonicalField(types[i]!, fields[i] ?? null);
    text += v === null ? '-;' : `${v.length}:${v};`;
  }
  return hash64(text);
}

/**
 * Two 32-bit lanes over the UTF-16 code units, mixed as cyrb53 mixes them (public domain, by bryc), kept to 64 bits.
 */
export function hash64(text: string): bigint {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return BigInt.asIntN(64, (BigInt(h2 >>> 0) << 32n) | BigInt(h1 >>> 0));
}

/** Sums row hashes into a RangeDigest. */
export class DigestAccumulator {
  private rows = 0;
  private sum = 0n;

  add(hash: bigint): void {
    this.rows++;
    this.sum += hash;
  }

  digest(): RangeDigest {
    return { rows: this.rows, sum: this.sum.toString() };
  }
}
