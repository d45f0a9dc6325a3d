/**
 * Lossless value conversions between SQL Server and the row wire format (PostgreSQL COPY text fields).
 *
 * Reading: the source never lets the driver turn a value into a JS number or Date (bigint and decimal lose digits,
 * datetime2 is cut to milliseconds, datetimeoffset loses its offset). Every column is converted to a string on the
 * server (sql.ts: `readExpr`), and `mssqlToCopyField` turns that string into PostgreSQL's text input form.
 *
 * Writing: the mirror bulk-loads strings into an all-nvarchar staging table and converts them on the server
 * (sql.ts: `fromTextExpr`); `copyFieldToMssql` turns a PostgreSQL text form into the string form that conversion
 * parses regardless of the session's language and DATEFORMAT.
 */
import type { LogicalType } from '../core/types';
import { FailureType, MirrorError } from '../core/errors';
import { decimalStorage } from './types';

function bad(message: string): MirrorError {
  return new MirrorError(FailureType.MirrorWriteFailed, message);
}

function badSource(message: string): MirrorError {
  return new MirrorError(FailureType.SourceReadFailed, message);
}

const NUMBER = /^-?\d+(\.\d+)?$/;
const HEX = /^[0-9a-fA-F]*$/;

/**
 * PostgreSQL text cannot hold U+0000, and COPY would reject the whole row: NUL characters in SQL Server strings are
 * dropped (documented in docs/type-mapping.md). Every other character passes unchanged.
 */
export function stripNul(s: string): string {
  return s.includes('\u0000') ? s.replace(/\u0000/g, '') : s;
}

/** A server-side string (see sql.ts readExpr) → COPY field value. */
export function mssqlToCopyField(type: LogicalType, raw: unknown): string | null {
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== 'string') {
    throw badSource(`expected a string from SQL Server for a ${type.kind} column, got ${typeof raw}`);
  }
  switch (type.kind) {
    case 'boolean':
      if (raw === '1') return 't';
      if (raw === '0') return 'f';
      throw badSource(`unexpected bit value ${JSON.stringify(raw)}`);
    case 'int8':
    case 'int16':
    case 'int32':
    case 'int64':
    case 'decimal':
    case 'money':
      if (!NUMBER.test(raw)) throw badSource(`unexpected ${type.kind} text ${JSON.stringify(raw)}`);
      return raw;
    case 'float64': {
      // Style 3 gives 17 significant digits; JS prints the shortest string that reads back as the same double.
      const n = Number(raw);
      if (!Number.isFinite(n)) throw badSource(`unexpected float text ${JSON.stringify(raw)}`);
      return Object.is(n, -0) ? '-0' : String(n);
    }
    case 'float32': {
      // Style 3 gives 9 significant digits, enough for any real to read back as itself.
      const n = Number(raw);
      if (!Number.isFinite(n)) throw badSource(`unexpected real text ${JSON.stringify(raw)}`);
      return raw.trim();
    }
    case 'binary':
      if (!HEX.test(raw) || raw.length % 2 !== 0) throw badSource('unexpected binary hex text');
      return '\\x' + raw.toLowerCase();
    case 'timestamptz': {
      // Style 121 writes 'yyyy-mm-dd hh:mi:ss.nnnnnnn +hh:mm'; PostgreSQL takes the offset glued to the time.
      const m = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ?([+-]\d\d:\d\d)$/.exec(raw);
      if (!m) throw badSource(`unexpected datetimeoffset text ${JSON.stringify(raw)}`);
      return m[1] + m[2];
    }
    case 'uuid':
      return raw.toLowerCase();
    case 'date':
    case 'time':
    case 'timestamp':
      return raw;
    default:
      return stripNul(raw);
  }
}

/** PostgreSQL's text forms of booleans (COPY writes t/f; the rest are accepted input spellings). */
const PG_TRUE = new Set(['t', 'true', 'y', 'yes', 'on', '1']);
const PG_FALSE = new Set(['f', 'false', 'n', 'no', 'off', '0']);

/** A COPY field value → the string the mirror's server-side conversion (sql.ts fromTextExpr) parses. */
export function copyFieldToMssql(type: LogicalType, value: string | null): string | null {
  if (value === null) return null;
  switch (type.kind) {
    case 'boolean': {
      const v = value.trim().toLowerCase();
      if (PG_TRUE.has(v)) return '1';
      if (PG_FALSE.has(v)) return '0';
      throw bad(`not a boolean: ${JSON.stringify(value)}`);
    }
    case 'int8':
    case 'int16':
    case 'int32':
    case 'int64':
      if (!/^\s*[+-]?\d+\s*$/.test(value)) throw bad(`not an integer: ${JSON.stringify(value)}`);
      return value.trim();
    case 'decimal':
      if (decimalStorage(type) === null) return value;
      if (!/^\s*[+-]?(\d+\.?\d*|\.\d+)\s*$/.test(value)) {
        throw bad(`SQL Server decimal cannot hold ${JSON.stringify(value)}`);
      }
      return value.trim();
    case 'money':
      return moneyText(value);
    case 'float32':
    case 'float64':
      if (/^\s*[+-]?(nan|inf|infinity)\s*$/i.test(value)) throw bad(`SQL Server float cannot hold ${value}`);
      return value.trim();
    case 'binary':
      return byteaToMssqlHex(value);
    case 'date':
      assertFiniteDate(value);
      return value;
    case 'time':
      if (/^24:/.test(value)) throw bad(`SQL Server time cannot hold ${value}`);
      return value;
    case 'timestamp':
      assertFiniteDate(value);
      // ISO 8601 with 'T': the one form SQL Server reads the same under every SET LANGUAGE / DATEFORMAT.
      return value.replace(' ', 'T');
    case 'timestamptz':
      return timestamptzToIso(value);
    case 'xml':
      return stripXmlEncoding(value);
    default:
      return value;
  }
}

function assertFiniteDate(value: string): void {
  if (/infinity/i.test(value) || /\bBC\b/.test(value)) throw bad(`SQL Server dates cannot hold ${value}`);
  const year = /^(\d+)-/.exec(value);
  if (year && (year[1]!.length > 4 || Number(year[1]) === 0)) throw bad(`SQL Server dates cannot hold ${value}`);
}

/**
 * PostgreSQL money text is locale formatted ('$1,234.56', '-$1,234.56' under lc_monetary C or en_US). Only the sign,
 * digits and decimal point are kept; a locale with ',' as decimal separator is not supported (documented).
 */
export function moneyText(value: string): string {
  const negative = /^\s*-|\(.*\)/.test(value);
  const digits = value.replace(/[^0-9.]/g, '');
  if (!/^\d+(\.\d+)?$/.test(digits)) throw bad(`not a money amount: ${JSON.stringify(value)}`);
  return negative ? '-' + digits : digits;
}

/** bytea text (hex `\x...`, or the old escape format) → `0x...` for CONVERT(varbinary(max), s, 1). */
export function byteaToMssqlHex(value: string): string {
  if (value.startsWith('\\x')) {
    const hex = value.slice(2);
    if (!HEX.test(hex) || hex.length % 2 !== 0) throw bad('malformed bytea hex text');
    return '0x' + hex.toUpperCase();
  }
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c !== '\\') {
      const code = c.charCodeAt(0);
      if (code > 0xff) throw bad('malformed bytea escape text');
      bytes.push(code);
    } else if (value[i + 1] === '\\') {
      bytes.push(0x5c);
      i++;
    } else {
      const oct = value.slice(i + 1, i + 4);
      if (!/^[0-3][0-7]{2}$/.test(oct)) throw bad('malformed bytea escape text');
      bytes.push(parseInt(oct, 8));
      i += 3;
    }
  }
  return '0x' + Buffer.from(bytes).toString('hex').toUpperCase();
}

/**
 * timestamptz text ('2024-01-02 03:04:05.123456+02', '...-03:30', SQL Server's '... +05:30') → ISO 8601
 * 'yyyy-mm-ddThh:mm:ss.ffffff+hh:mm', which datetimeoffset reads the same under every session setting.
 * An offset with seconds (local mean time before 1900) has no datetimeoffset form.
 */
export function timestamptzToIso(value: string): string {
  assertFiniteDate(value);
  const m = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d(?:\.\d+)?) ?([+-])(\d\d)(?::?(\d\d))?(?::?(\d\d))?$/.exec(value.trim());
  if (!m) throw bad(`not a timestamp with time zone: ${JSON.stringify(value)}`);
  const [, date, time, sign, hh, mm = '00', ss = '00'] = m;
  if (ss !== '00') throw bad(`SQL Server datetimeoffset cannot hold an offset with seconds: ${value}`);
  return `${date}T${time}${sign}${hh}:${mm}`;
}

/**
 * SQL Server parses xml from nvarchar as UTF-16 and rejects a declaration naming another encoding ("unable to
 * switch the encoding"); the declaration's encoding says nothing once the text is decoded, so it is dropped.
 */
export function stripXmlEncoding(value: string): string {
  return value.replace(/^(\s*<\?xml\b[^?]*?)\s+encoding\s*=\s*(["'])[^"']*\2/, '$1');
}
