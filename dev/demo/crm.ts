/**
 * The demo's source: a small CRM (accounts, contacts, leads, deals, quotes, invoices, ...) and a seeded generator
 * for its rows. The same seed always yields the same rows, so a demo run or a test can be reproduced exactly.
 *
 * Rows are produced as PostgreSQL COPY text (see src/core/copy-text.ts) and loaded with COPY FROM STDIN, which
 * is what makes 100,000 rows take about a second. Values deliberately include NULLs, non-ASCII text, tabs,
 * newlines and backslashes, so the demo exercises the mirror's escaping and not only the happy path.
 *
 * There are no foreign key constraints: the reference columns point at existing ids when generated, but the
 * live-change loop deletes rows freely, as the mirror neither needs nor copies constraints.
 */
import { once } from 'node:events';
import type { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { encodeLine } from '../../src/core/copy-text';
import { quotePg } from '../../src/core/identifiers';

export type CrmTableName =
  | 'users'
  | 'accounts'
  | 'contacts'
  | 'leads'
  | 'products'
  | 'price_books'
  | 'price_book_entries'
  | 'opportunities'
  | 'quotes'
  | 'quote_lines'
  | 'invoices'
  | 'activities'
  | 'notes'
  | 'audit_log';

/** Load order; also the order the progress display lists them. */
export const CRM_TABLES: readonly CrmTableName[] = [
  'users',
  'accounts',
  'contacts',
  'leads',
  'products',
  'price_books',
  'price_book_entries',
  'opportunities',
  'quotes',
  'quote_lines',
  'invoices',
  'activities',
  'notes',
  'audit_log',
];

/** The one table without a primary key or unique key: the product mirrors it by periodic refresh (a full copy swapped in). */
export const REFRESHED_TABLE: CrmTableName = 'audit_log';

export const MIN_DEMO_ROWS = 500;
export const DEFAULT_SEED = 42;

export type RowCounts = Record<CrmTableName, number>;

const PRICE_BOOKS = 3;
/** Share of the total per table; `activities` takes the remainder, `price_book_entries` is books × products. */
const SHARES: Partial<Record<CrmTableName, number>> = {
  users: 0.005,
  accounts: 0.05,
  contacts: 0.12,
  leads: 0.08,
  products: 0.005,
  opportunities: 0.06,
  quotes: 0.04,
  quote_lines: 0.12,
  invoices: 0.03,
  notes: 0.12,
  audit_log: 0.1,
};
const MIN_COUNT = 5;

/** Row count per table, summing exactly to `total`. */
export function planCounts(total: number): RowCounts {
  if (!Number.isInteger(total) || total < MIN_DEMO_ROWS) {
    throw new RangeError(`the demo needs a whole number of at least ${MIN_DEMO_ROWS} rows (got ${total})`);
  }
  const counts = {} as RowCounts;
  for (const table of CRM_TABLES) counts[table] = Math.max(MIN_COUNT, Math.round(total * (SHARES[table] ?? 0)));
  counts.price_books = PRICE_BOOKS;
  counts.price_book_entries = PRICE_BOOKS * counts.products;
  counts.activities = 0;
  const others = CRM_TABLES.reduce((sum, t) => sum + counts[t], 0);
  counts.activities = total - others;
  return counts;
}

// ---------------------------------------------------------------- schema

const ENUMS = [
  `CREATE TYPE deal_stage AS ENUM ('prospecting', 'qualification', 'proposal', 'negotiation', 'closed_won', 'closed_lost')`,
  `CREATE TYPE activity_kind AS ENUM ('call', 'email', 'meeting', 'task')`,
];

/** Column names in COPY order, and the table's DDL. */
export const TABLE_DEFS: Record<CrmTableName, { columns: string[]; ddl: string }> = {
  users: {
    columns: ['id', 'email', 'full_name', 'role', 'active', 'avatar', 'created_at', 'updated_at'],
    ddl: `id integer PRIMARY KEY, email varchar(120) NOT NULL, full_name text NOT NULL, role varchar(20) NOT NULL,
          active boolean NOT NULL, avatar bytea, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL`,
  },
  accounts: {
    columns: ['id', 'name', 'industry', 'website', 'annual_revenue', 'employees', 'owner_id', 'tags', 'address', 'created_at', 'updated_at'],
    ddl: `id bigint PRIMARY KEY, name text NOT NULL, industry varchar(40), website varchar(200), annual_revenue numeric(14,2),
          employees integer, owner_id integer, tags text[], address jsonb, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL`,
  },
  contacts: {
    columns: ['id', 'account_id', 'first_name', 'last_name', 'email', 'phone', 'title', 'do_not_call', 'birthday', 'external_id', 'created_at', 'updated_at'],
    ddl: `id bigint PRIMARY KEY, account_id bigint, first_name varchar(60) NOT NULL, last_name varchar(60) NOT NULL,
          email varchar(200), phone varchar(30), title text, do_not_call boolean NOT NULL, birthday date, external_id uuid NOT NULL,
          created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL`,
  },
  leads: {
    columns: ['id', 'first_name', 'last_name', 'company', 'email', 'status', 'score', 'source', 'converted', 'created_at', 'updated_at'],
    ddl: `id bigint PRIMARY KEY, first_name varchar(60) NOT NULL, last_name varchar(60) NOT NULL, company text, email varchar(200),
          status varchar(20) NOT NULL, score smallint, source varchar(30), converted boolean NOT NULL,
          created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL`,
  },
  products: {
    columns: ['id', 'sku', 'name', 'description', 'list_price', 'active', 'attributes', 'created_at', 'updated_at'],
    ddl: `id integer PRIMARY KEY, sku varchar(32) NOT NULL UNIQUE, name text NOT NULL, description text, list_price numeric(12,2) NOT NULL,
          active boolean NOT NULL, attributes jsonb, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL`,
  },
  price_books: {
    columns: ['id', 'name', 'currency', 'is_standard', 'valid_from', 'valid_to', 'updated_at'],
    ddl: `id integer PRIMARY KEY, name text NOT NULL, currency char(3) NOT NULL, is_standard boolean NOT NULL, valid_from date NOT NULL,
          valid_to date, updated_at timestamptz NOT NULL`,
  },
  price_book_entries: {
    columns: ['price_book_id', 'product_id', 'unit_price', 'updated_at'],
    ddl: `price_book_id integer NOT NULL, product_id integer NOT NULL, unit_price numeric(12,2) NOT NULL, updated_at timestamptz NOT NULL,
          PRIMARY KEY (price_book_id, product_id)`,
  },
  opportunities: {
    columns: ['id', 'account_id', 'owner_id', 'name', 'stage', 'amount', 'probability', 'close_date', 'created_at', 'updated_at'],
    ddl: `id bigint PRIMARY KEY, account_id bigint NOT NULL, owner_id integer, name text NOT NULL, stage deal_stage NOT NULL,
          amount numeric(12,2), probability smallint, close_date date, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL`,
  },
  quotes: {
    columns: ['id', 'opportunity_id', 'quote_number', 'status', 'valid_until', 'discount', 'created_at', 'updated_at'],
    ddl: `id bigint PRIMARY KEY, opportunity_id bigint NOT NULL, quote_number varchar(20) NOT NULL, status varchar(20) NOT NULL,
          valid_until date, discount numeric(5,2), created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL`,
  },
  quote_lines: {
    columns: ['quote_id', 'line_no', 'product_id', 'quantity', 'unit_price', 'line_total', 'updated_at'],
    ddl: `quote_id bigint NOT NULL, line_no integer NOT NULL, product_id integer NOT NULL, quantity integer NOT NULL,
          unit_price numeric(12,2) NOT NULL, line_total numeric(14,2) NOT NULL, updated_at timestamptz NOT NULL,
          PRIMARY KEY (quote_id, line_no)`,
  },
  invoices: {
    columns: ['id', 'account_id', 'quote_id', 'invoice_number', 'issued_on', 'due_on', 'total', 'paid', 'pdf', 'metadata', 'created_at', 'updated_at'],
    ddl: `id bigint PRIMARY KEY, account_id bigint NOT NULL, quote_id bigint, invoice_number varchar(20) NOT NULL, issued_on date NOT NULL,
          due_on date NOT NULL, total numeric(12,2) NOT NULL, paid boolean NOT NULL, pdf bytea, metadata jsonb,
          created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL`,
  },
  activities: {
    columns: ['id', 'kind', 'subject', 'contact_id', 'account_id', 'owner_id', 'due_at', 'done', 'duration_minutes', 'created_at', 'updated_at'],
    ddl: `id bigint PRIMARY KEY, kind activity_kind NOT NULL, subject text NOT NULL, contact_id bigint, account_id bigint, owner_id integer,
          due_at timestamptz, done boolean NOT NULL, duration_minutes integer, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL`,
  },
  notes: {
    columns: ['id', 'parent_type', 'parent_id', 'author_id', 'body', 'created_at', 'updated_at'],
    ddl: `id bigint PRIMARY KEY, parent_type varchar(20) NOT NULL, parent_id bigint NOT NULL, author_id integer, body text NOT NULL,
          created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL`,
  },
  audit_log: {
    columns: ['at', 'actor_id', 'action', 'entity', 'entity_id', 'details'],
    ddl: `at timestamptz NOT NULL, actor_id integer, action text NOT NULL, entity text NOT NULL, entity_id bigint, details jsonb`,
  },
};

/** Primary key columns (empty for the keyless, refreshed table). */
export function primaryKeyOf(table: CrmTableName): string[] {
  if (table === 'price_book_entries') return ['price_book_id', 'product_id'];
  if (table === 'quote_lines') return ['quote_id', 'line_no'];
  if (table === REFRESHED_TABLE) return [];
  return ['id'];
}

export function createSchemaSql(): string[] {
  return [
    ...ENUMS,
    ...CRM_TABLES.map((t) => `CREATE TABLE ${quotePg(t)} (${TABLE_DEFS[t].ddl})`),
    `CREATE INDEX ON ${quotePg('contacts')} (account_id)`,
    `CREATE INDEX ON ${quotePg('activities')} (contact_id)`,
  ];
}

// ---------------------------------------------------------------- random values

/** A small, fast, seedable PRNG (sfc32) seeded from a string: deterministic across platforms. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: string) {
    // cyrb128 spreads the seed string over four 32-bit words.
    let h1 = 1779033703;
    let h2 = 3144134277;
    let h3 = 1013904242;
    let h4 = 2773480762;
    for (let i = 0; i < seed.length; i++) {
      const k = seed.charCodeAt(i);
      h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
      h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
      h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
      h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
    }
    h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
    h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
    h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
    h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
    this.a = (h1 ^ h2 ^ h3 ^ h4) >>> 0;
    this.b = (h2 ^ h1) >>> 0;
    this.c = (h3 ^ h1) >>> 0;
    this.d = (h4 ^ h1) >>> 0;
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)] as T;
  }

  money(min: number, max: number): string {
    return (min + this.next() * (max - min)).toFixed(2);
  }

  hex(bytes: number): string {
    let out = '';
    for (let i = 0; i < bytes; i++) out += this.int(0, 255).toString(16).padStart(2, '0');
    return out;
  }

  uuid(): string {
    const h = this.hex(16);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${'89ab'[this.int(0, 3)]}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  }
}

const EPOCH = Date.UTC(2022, 0, 1);
const SPAN_MS = 3 * 365 * 24 * 3600 * 1000;

function timestamp(rng: Rng): string {
  return new Date(EPOCH + Math.floor(rng.next() * SPAN_MS)).toISOString();
}

function date(rng: Rng, offsetDays = 0): string {
  return new Date(EPOCH + Math.floor(rng.next() * SPAN_MS) + offsetDays * 86_400_000).toISOString().slice(0, 10);
}

function maybe<T>(rng: Rng, p: number, value: () => T): T | null {
  return rng.chance(p) ? value() : null;
}

const FIRST = ['Ana', 'Ben', 'Chloé', 'David', 'Eva', 'Farid', 'Greta', 'Hiro', 'Inès', 'Jonas', 'Kai', 'Léa', 'Mateo', 'Nora', 'Olga', 'Pablo', 'Quinn', 'Rosa', 'Sven', 'Tanja', 'Uma', 'Vikram', 'Wen', 'Yusuf', 'Zoë'];
const LAST = ['Andersen', 'Bauer', "O'Brien", 'Costa', 'Dubois', 'Eriksson', 'Fischer', 'García', 'Hoffmann', 'Ito', 'Jansen', 'Kowalski', 'Lindqvist', 'Müller', 'Nakamura', 'Okafor', 'Petrov', 'Rossi', 'Schmidt', 'Tanaka', 'Urban', 'Van Dijk', 'Weber', 'Yilmaz', 'Zhang'];
const COMPANY_A = ['Acme', 'Globex', 'Initech', 'Umbrella', 'Stark', 'Wayne', 'Tyrell', 'Soylent', 'Hooli', 'Vandelay', 'Nordlicht', 'Kōgyō', 'Blue Sky', 'Oceanic', 'Pied Piper'];
const COMPANY_B = ['Industries', 'Systems', 'GmbH', 'Labs', 'Holdings', 'Logistics', 'Partners', 'AG', 'Ltd', '& Sons', 'Group', 'Solutions'];
const INDUSTRIES = ['Software', 'Manufacturing', 'Retail', 'Healthcare', 'Finance', 'Energy', 'Education', 'Logistics', 'Media', 'Public sector'];
const TAGS = ['enterprise', 'smb', 'vip', 'churn-risk', 'partner', 'reseller', 'emea', 'apac', 'amer', 'renewal'];
const CITIES = ['Berlin', 'São Paulo', 'Zürich', 'Osaka', 'Lyon', 'Toronto', 'Kraków', 'Austin', 'Dublin', 'Nairobi'];
const STAGES = ['prospecting', 'qualification', 'proposal', 'negotiation', 'closed_won', 'closed_lost'] as const;
const KINDS = ['call', 'email', 'meeting', 'task'] as const;
const WORDS = ['follow up', 'pricing', 'renewal', 'demo', 'contract', 'onboarding', 'escalation', 'kick-off', 'QBR', 'security review', 'invoice', 'training'];
const LEAD_STATUS = ['new', 'working', 'nurturing', 'qualified', 'unqualified'];
const LEAD_SOURCE = ['web', 'referral', 'event', 'cold call', 'partner', 'ads'];
const QUOTE_STATUS = ['draft', 'sent', 'accepted', 'rejected', 'expired'];
const ROLES = ['admin', 'sales', 'support', 'manager'];

function person(rng: Rng): [string, string] {
  return [rng.pick(FIRST), rng.pick(LAST)];
}

function emailOf(first: string, last: string, n: number): string {
  const local = `${first}.${last}`.toLowerCase().normalize('NFD').replace(/[^a-z.]/g, '');
  return `${local}${n}@example.com`;
}

function company(rng: Rng): string {
  return `${rng.pick(COMPANY_A)} ${rng.pick(COMPANY_B)}`;
}

/** A note body: several lines, sometimes a tab, a backslash or quotes — the characters COPY must escape. */
function noteBody(rng: Rng): string {
  const lines: string[] = [];
  const n = rng.int(1, 4);
  for (let i = 0; i < n; i++) {
    let line = `${rng.pick(WORDS)}: talked to ${rng.pick(FIRST)} about ${rng.pick(WORDS)}`;
    if (rng.chance(0.1)) line += '\tprio:\thigh';
    if (rng.chance(0.05)) line += ' path C:\\shared\\deals';
    if (rng.chance(0.05)) line += ' — “quoted” ✓';
    lines.push(line);
  }
  return lines.join(rng.chance(0.2) ? '\r\n' : '\n');
}

// ---------------------------------------------------------------- rows

/** Values of one row as COPY text fields (null = NULL), in TABLE_DEFS column order. */
export type RowValues = (string | null)[];

/**
 * The row with ordinal `i` (1-based) of a table. Reference columns point into the counts' id ranges. `at`
 * overrides the timestamps (the live-change loop writes "now").
 */
export function generateRow(table: CrmTableName, i: number, rng: Rng, counts: RowCounts, at?: string): RowValues {
  const created = at ?? timestamp(rng);
  const updated = at ?? created;
  const id = String(i);
  switch (table) {
    case 'users': {
      const [first, last] = person(rng);
      return [id, emailOf(first, last, i), `${first} ${last}`, rng.pick(ROLES), String(rng.chance(0.9)), maybe(rng, 0.3, () => `\\x${rng.hex(rng.int(4, 24))}`), created, updated];
    }
    case 'accounts': {
      const tags = Array.from({ length: rng.int(0, 3) }, () => rng.pick(TAGS));
      const address = { street: `${rng.int(1, 250)} ${rng.pick(LAST)} Street`, city: rng.pick(CITIES), zip: String(rng.int(10000, 99999)) };
      return [
        id,
        company(rng),
        maybe(rng, 0.9, () => rng.pick(INDUSTRIES)),
        maybe(rng, 0.7, () => `https://www.example.com/a${i}`),
        maybe(rng, 0.8, () => rng.money(50_000, 500_000_000)),
        maybe(rng, 0.8, () => String(rng.int(1, 50_000))),
        String(rng.int(1, counts.users)),
        maybe(rng, 0.85, () => `{${tags.join(',')}}`),
        maybe(rng, 0.9, () => JSON.stringify(address)),
        created,
        updated,
      ];
    }
    case 'contacts': {
      const [first, last] = person(rng);
      return [
        id,
        maybe(rng, 0.95, () => String(rng.int(1, counts.accounts))),
        first,
        last,
        maybe(rng, 0.9, () => emailOf(first, last, i)),
        maybe(rng, 0.6, () => `+49 30 ${rng.int(1000000, 9999999)}`),
        maybe(rng, 0.5, () => rng.pick(['CEO', 'CTO', 'Head of Sales', 'Buyer', 'Engineer', 'Office Manager'])),
        String(rng.chance(0.05)),
        maybe(rng, 0.3, () => date(rng, -365 * 40)),
        rng.uuid(),
        created,
        updated,
      ];
    }
    case 'leads': {
      const [first, last] = person(rng);
      return [
        id,
        first,
        last,
        maybe(rng, 0.8, () => company(rng)),
        maybe(rng, 0.85, () => emailOf(first, last, i)),
        rng.pick(LEAD_STATUS),
        maybe(rng, 0.7, () => String(rng.int(0, 100))),
        maybe(rng, 0.9, () => rng.pick(LEAD_SOURCE)),
        String(rng.chance(0.15)),
        created,
        updated,
      ];
    }
    case 'products': {
      const attributes = { color: rng.pick(['red', 'blue', 'black']), weightKg: Number((rng.next() * 20).toFixed(3)), seats: rng.int(1, 500) };
      return [
        id,
        `SKU-${String(i).padStart(6, '0')}`,
        `${rng.pick(['Cloud', 'On-prem', 'Pro', 'Team', 'Edge'])} ${rng.pick(['Suite', 'License', 'Support', 'Add-on', 'Appliance'])} ${i}`,
        maybe(rng, 0.6, () => `Includes ${rng.pick(WORDS)} and ${rng.pick(WORDS)}.`),
        rng.money(5, 25_000),
        String(rng.chance(0.9)),
        maybe(rng, 0.8, () => JSON.stringify(attributes)),
        created,
        updated,
      ];
    }
    case 'price_books': {
      const currency = ['EUR', 'USD', 'JPY'][(i - 1) % 3] as string;
      return [id, `${currency} list ${i}`, currency, String(i === 1), date(rng), maybe(rng, 0.5, () => date(rng, 365)), updated];
    }
    case 'price_book_entries': {
      // Entries enumerate every (book, product) pair: ordinal i ↦ book, product.
      const book = Math.floor((i - 1) / counts.products) + 1;
      const product = ((i - 1) % counts.products) + 1;
      return [String(book), String(product), rng.money(5, 25_000), updated];
    }
    case 'opportunities':
      return [
        id,
        String(rng.int(1, counts.accounts)),
        maybe(rng, 0.95, () => String(rng.int(1, counts.users))),
        `${rng.pick(WORDS)} — ${company(rng)}`,
        rng.pick(STAGES),
        maybe(rng, 0.9, () => rng.money(1_000, 2_000_000)),
        maybe(rng, 0.8, () => String(rng.int(0, 100))),
        maybe(rng, 0.9, () => date(rng, 90)),
        created,
        updated,
      ];
    case 'quotes':
      return [
        id,
        String(rng.int(1, counts.opportunities)),
        `Q-${String(i).padStart(8, '0')}`,
        rng.pick(QUOTE_STATUS),
        maybe(rng, 0.8, () => date(rng, 30)),
        maybe(rng, 0.4, () => rng.money(0, 30)),
        created,
        updated,
      ];
    case 'quote_lines': {
      // Lines are dealt round-robin over the quotes: ordinal i ↦ (quote, line number), always unique.
      const quote = ((i - 1) % counts.quotes) + 1;
      const lineNo = Math.floor((i - 1) / counts.quotes) + 1;
      const quantity = rng.int(1, 50);
      const price = rng.money(5, 25_000);
      return [String(quote), String(lineNo), String(rng.int(1, counts.products)), String(quantity), price, (quantity * Number(price)).toFixed(2), updated];
    }
    case 'invoices':
      return [
        id,
        String(rng.int(1, counts.accounts)),
        maybe(rng, 0.7, () => String(rng.int(1, counts.quotes))),
        `INV-${String(i).padStart(8, '0')}`,
        date(rng),
        date(rng, 30),
        rng.money(10, 1_000_000),
        String(rng.chance(0.7)),
        maybe(rng, 0.2, () => `\\x25504446${rng.hex(rng.int(16, 96))}`),
        maybe(rng, 0.5, () => JSON.stringify({ po: `PO-${rng.int(1000, 99999)}`, terms: rng.pick(['net 30', 'net 60', 'prepaid']), lines: rng.int(1, 9) })),
        created,
        updated,
      ];
    case 'activities':
      return [
        id,
        rng.pick(KINDS),
        `${rng.pick(WORDS)} with ${rng.pick(FIRST)}`,
        maybe(rng, 0.8, () => String(rng.int(1, counts.contacts))),
        maybe(rng, 0.7, () => String(rng.int(1, counts.accounts))),
        maybe(rng, 0.95, () => String(rng.int(1, counts.users))),
        maybe(rng, 0.6, () => timestamp(rng)),
        String(rng.chance(0.6)),
        maybe(rng, 0.5, () => String(rng.int(5, 240))),
        created,
        updated,
      ];
    case 'notes': {
      const parent = rng.pick(['account', 'contact', 'opportunity'] as const);
      const parentCount = parent === 'account' ? counts.accounts : parent === 'contact' ? counts.contacts : counts.opportunities;
      return [id, parent, String(rng.int(1, parentCount)), maybe(rng, 0.9, () => String(rng.int(1, counts.users))), noteBody(rng), created, updated];
    }
    case 'audit_log': {
      const entity = rng.pick(['account', 'contact', 'opportunity', 'invoice'] as const);
      return [
        created,
        maybe(rng, 0.9, () => String(rng.int(1, counts.users))),
        rng.pick(['create', 'update', 'delete', 'export', 'login']),
        entity,
        maybe(rng, 0.95, () => String(rng.int(1, counts.accounts))),
        maybe(rng, 0.5, () => JSON.stringify({ ip: `10.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}`, ua: 'crm-web/4.2' })),
      ];
    }
  }
}

/** The random stream of one table: independent per table, so tables can be generated in any order. */
export function tableRng(seed: number, table: CrmTableName): Rng {
  return new Rng(`tenant-mirror-demo:${seed}:${table}`);
}

/** Every row of a table as COPY text, in chunks of about `chunkRows` lines. */
export function* copyText(table: CrmTableName, counts: RowCounts, seed: number, chunkRows = 2_000): Generator<string> {
  const rng = tableRng(seed, table);
  let chunk = '';
  for (let i = 1; i <= counts[table]; i++) {
    chunk += encodeLine(generateRow(table, i, rng, counts));
    if (i % chunkRows === 0) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}

// ---------------------------------------------------------------- loading

export interface CrmLoadResult {
  counts: RowCounts;
  ms: number;
}

/**
 * Creates the schema and loads every table with COPY, a few tables at a time (one connection each), then
 * ANALYZEs so the product's row estimates are right. `connect` opens a fresh connection to the source database.
 */
export async function loadCrm(connect: () => Promise<Client>, totalRows: number, seed = DEFAULT_SEED, parallel = 4): Promise<CrmLoadResult> {
  const started = Date.now();
  const counts = planCounts(totalRows);
  const ddl = await connect();
  try {
    for (const sql of createSchemaSql()) await ddl.query(sql);
  } finally {
    await ddl.end();
  }
  const queue = [...CRM_TABLES];
  const workers = Array.from({ length: Math.min(parallel, queue.length) }, async () => {
    const client = await connect();
    try {
      for (let table = queue.shift(); table; table = queue.shift()) await copyTable(client, table, counts, seed);
    } finally {
      await client.end();
    }
  });
  await Promise.all(workers);
  const analyze = await connect();
  try {
    await analyze.query('ANALYZE');
  } finally {
    await analyze.end();
  }
  return { counts, ms: Date.now() - started };
}

async function copyTable(client: Client, table: CrmTableName, counts: RowCounts, seed: number): Promise<void> {
  const columns = TABLE_DEFS[table].columns.map(quotePg).join(', ');
  const stream = client.query(copyFrom(`COPY ${quotePg(table)} (${columns}) FROM STDIN`));
  const done = new Promise<void>((resolve, reject) => {
    stream.on('finish', resolve);
    stream.on('error', reject);
  });
  for (const chunk of copyText(table, counts, seed)) {
    if (!stream.write(chunk)) await Promise.race([once(stream, 'drain'), done]);
  }
  stream.end();
  await done;
}
