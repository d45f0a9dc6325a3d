/**
 * The tenants file, validated. Durations ("5s", "7d") and sizes ("8MB") are parsed here, so the rest of the
 * code sees milliseconds and bytes.
 */
import { z } from 'zod';
import ms from 'ms';
import bytes from 'bytes';
import { DEFAULT_POLICY } from '../../contract/payloads';

const duration = z.union([z.number().int().positive(), z.string()]).transform((value, ctx) => {
  const parsed = typeof value === 'number' ? value : ms(value as ms.StringValue);
  if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed <= 0) {
    ctx.addIssue({ code: 'custom', message: `not a duration: ${JSON.stringify(value)} (use e.g. 500ms, 5s, 10m, 7d)` });
    return z.NEVER;
  }
  return parsed;
});

const size = z.union([z.number().int().positive(), z.string()]).transform((value, ctx) => {
  const parsed = typeof value === 'number' ? value : bytes.parse(value);
  if (parsed === null || !Number.isFinite(parsed) || parsed <= 0) {
    ctx.addIssue({ code: 'custom', message: `not a size: ${JSON.stringify(value)} (use e.g. 512KB, 8MB)` });
    return z.NEVER;
  }
  return parsed;
});

const connectionUrl = z.string().min(1).refine((v) => /^(postgres(ql)?|mssql|sqlserver):\/\//.test(v), {
  message: 'must be a postgres://, postgresql://, mssql:// or sqlserver:// URL',
});

const identifier = z.string().min(1).max(63);

const endpoint = z.object({
  kind: z.enum(['postgres', 'mssql']),
  url: connectionUrl,
});

/** `{{table}}` and `{{schema}}` are the only placeholders: anything else in braces is a typo, caught at load. */
const hookSql = z
  .string()
  .min(1)
  .refine((text) => unknownPlaceholders(text).length === 0, {
    message: 'unknown placeholder (use {{table}} for the quoted, schema-qualified mirror table and {{schema}} for the quoted mirror schema)',
  });

/**
 * The partner's SQL, run in the mirror as the mirror's user, inside the mirror's own transaction: `afterCreate` when
 * the mirror creates a table (first time, after a wipe, after an incompatible schema change replaced it), and
 * `afterPopulate` after each population or refresh is swapped in. `tables` selects the tables (globs over mirror
 * names, like `tables.include`); a failing hook fails that table alone (TableFailed) and changes nothing.
 */
const hook = z
  .object({
    tables: z.array(z.string().min(1)).min(1).default(['*']),
    afterCreate: hookSql.optional(),
    afterPopulate: hookSql.optional(),
  })
  .strict()
  .refine((h) => h.afterCreate !== undefined || h.afterPopulate !== undefined, { message: 'a hook needs afterCreate or afterPopulate' });

export type HookConfig = z.output<typeof hook>;

export function unknownPlaceholders(text: string): string[] {
  return [...text.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)].map((m) => m[1] ?? '').filter((name) => name !== 'table' && name !== 'schema');
}

/**
 * How a PostgreSQL source's changes are recorded: row triggers (default; works everywhere) or logical decoding
 * (needs wal_level = logical and a role with REPLICATION; nothing runs in the tenant's transactions). SQL Server
 * has Change Tracking built in: no choice to make.
 */
const source = endpoint
  .extend({ tracking: z.enum(['trigger', 'logical']).optional() })
  .strict()
  .superRefine((value, ctx) => {
    if (value.tracking !== undefined && value.kind !== 'postgres') {
      ctx.addIssue({ code: 'custom', path: ['tracking'], message: 'applies to PostgreSQL sources only (SQL Server has Change Tracking built in)' });
    }
  })
  .transform((value) => ({ ...value, tracking: value.tracking ?? 'trigger' }));

export const tenantSchema = z
  .object({
    id: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'letters, digits, "_", "." and "-", starting with a letter or digit'),
    source,
    mirror: endpoint
      .extend({
        schema: identifier.optional(),
        hooks: z.array(hook).default([]),
        /** How long `_mirror_log` keeps its rows (pruned at each bootstrap). */
        logRetention: duration.default(30 * 24 * 3600 * 1000),
      })
      .strict(),
    tables: z
      .object({ include: z.array(z.string().min(1)).default(['*']), exclude: z.array(z.string().min(1)).default([]) })
      .strict()
      .default({ include: ['*'], exclude: [] }),
    pollInterval: duration.default(DEFAULT_POLICY.pollIntervalMs),
    /**
     * Between two polls, how often an idle session asks the source whether a cycle would find committed changes
     * (one small query; PostgreSQL sources with trigger tracking), and starts its cycle at once when it would.
     * `off`: the session waits out the poll interval.
     */
    wakeCheck: z.union([z.literal('off'), duration]).default(250).transform((v) => (v === 'off' ? 0 : v)),
    batchBytes: size.default(8 * 1024 * 1024),
    /**
     * How many connections (on each side) one large table's population is copied over at once, each taking a key
     * range; 1 copies every table in one stream. Only tables of at least `splitRows` rows (the planner's estimate)
     * are split: below that, the sample and the extra connections cost more than they save.
     */
    populateStreams: z.number().int().min(1).max(8).default(2),
    splitRows: z.number().int().min(1).default(1_000_000),
    /**
     * How many tables of one cycle are applied at once, each on its own pair of connections reading one exported
     * snapshot; 1 applies them one after another. Only a backlog worth it is spread: at least `parallelApplyChanges`
     * tracked changes beyond the largest table's (which one lane takes anyway). Below that, the export and the
     * extra connections cost more than they save, and an ordinary cycle opens nothing more.
     */
    applyStreams: z.number().int().min(1).max(8).default(2),
    parallelApplyChanges: z.number().int().min(1).default(5_000),
    retention: duration.default(DEFAULT_POLICY.retentionMs),
    onSourceRestore: z.enum(['repopulate', 'pause']).default(DEFAULT_POLICY.onSourceRestore),
    /** A table with neither a primary key nor a unique index over NOT NULL columns: refreshed whole, or skipped. */
    keyless: z.enum(['refresh', 'skip']).default('refresh'),
    /** How often a keyless table is refreshed (copied into a shadow and swapped in). */
    refreshInterval: duration.default(60 * 60 * 1000),
  })
  .strict();

export const configSchema = z
  .object({ tenants: z.array(z.unknown()).min(1, 'at least one tenant is required') })
  .strict();

export type TenantConfigInput = z.input<typeof tenantSchema>;
export type TenantConfig = z.output<typeof tenantSchema> & { mirror: { schema: string } };
