/**
 * Read-only preflight checks of a PostgreSQL side (tenant-mirror check): catalog queries and has_*_privilege /
 * pg_has_role only, never a statement that changes anything.
 *
 * Source: the server version (tracking needs xid8, PostgreSQL 13+), the tracking schema (to create, or to use), and
 * per tracked table the right to install tracking. CREATE TRIGGER needs the TRIGGER privilege, and the
 * `ENABLE ALWAYS TRIGGER` that keeps tracking on for replication writers needs the table's owner (or a member of
 * the owning role), of every partition too. wal_level is reported but not needed: tracking is trigger-based.
 *
 * Mirror: the schema, its owner and the right to create tables in it, `_mirror_state`'s registry, and per table
 * whether its mirror table is ours (registered), a partner's table holding its name, or yet to be created.
 */
import type { Finding, PreflightTables, TableSchema } from '../core/types';
import { quotePg } from '../core/identifiers';
import { TRACKING_SCHEMA, type Queryable } from './catalog';
import * as sql from './mirror-sql';
import { isUsable, qualifiedTable, readTracking } from './tracking';

/** The server and the role: version, wal_level, whether it is a superuser, whether it may create schemas. */
export const SERVER_FACTS_SQL = `SELECT pg_catalog.current_setting('server_version') AS version,
  pg_catalog.current_setting('server_version_num')::int AS version_num,
  current_user::text AS role, pg_catalog.current_database()::text AS database,
  pg_catalog.current_setting('wal_level') AS wal_level,
  coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user), false) AS superuser,
  pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE') AS may_create_schema`;

/** $1 schema: its owner and this role's USAGE and CREATE on it (no row: it does not exist). */
export const SCHEMA_FACTS_SQL = `SELECT pg_catalog.pg_get_userbyid(n.nspowner)::text AS owner,
  pg_catalog.has_schema_privilege(n.oid, 'USAGE') AS may_use, pg_catalog.has_schema_privilege(n.oid, 'CREATE') AS may_create
FROM pg_catalog.pg_namespace n WHERE n.nspname = $1`;

/**
 * $1 schema, $2 table: owner, the TRIGGER privilege, and whether this role owns the table and every partition
 * (pg_has_role USAGE: owner, member of the owner's role with its privileges, or superuser). pg_partition_tree has
 * no rows for a table that is not partitioned.
 */
export const TABLE_RIGHTS_SQL = `SELECT pg_catalog.pg_get_userbyid(c.relowner)::text AS owner,
  pg_catalog.has_table_privilege(c.oid, 'TRIGGER') AS may_trigger,
  coalesce((SELECT bool_and(pg_catalog.pg_has_role(p.relowner, 'USAGE')) FROM pg_catalog.pg_partition_tree(c.oid) pt
              JOIN pg_catalog.pg_class p ON p.oid = pt.relid),
           pg_catalog.pg_has_role(c.relowner, 'USAGE')) AS owns
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`;

/** $1 schema: its tables, their owners, whether this role owns each, and whether each carries the key name our tables get. */
export const SCHEMA_TABLES_SQL = `SELECT c.relname::text AS name, pg_catalog.pg_get_userbyid(c.relowner)::text AS owner,
  pg_catalog.pg_has_role(c.relowner, 'USAGE') AS owned,
  (SELECT k.conname::text FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') AS key_name
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1`;

interface ServerFacts {
  version: string;
  version_num: number;
  role: string;
  database: string;
  wal_level: string;
  superuser: boolean;
  may_create_schema: boolean;
}

interface SchemaFacts {
  owner: string;
  may_use: boolean;
  may_create: boolean;
}

async function serverFacts(db: Queryable): Promise<ServerFacts> {
  const row = (await db.query<ServerFacts>(SERVER_FACTS_SQL)).rows[0];
  if (!row) throw new Error('the server did not describe itself');
  return row;
}

async function schemaFacts(db: Queryable, schema: string): Promise<SchemaFacts | null> {
  return (await db.query<SchemaFacts>(SCHEMA_FACTS_SQL, [schema])).rows[0] ?? null;
}

function connected(side: 'source' | 'mirror', s: ServerFacts): Finding {
  return { level: 'ok', subject: side, message: `PostgreSQL ${s.version}, database ${JSON.stringify(s.database)}, role ${JSON.stringify(s.role)}${s.superuser ? ' (superuser)' : ''}` };
}

const tableSubject = (t: TableSchema): string => `table ${t.name}`;

export async function sourcePreflight(db: Queryable, plan: PreflightTables): Promise<Finding[]> {
  const server = await serverFacts(db);
  const findings: Finding[] = [connected('source', server)];
  if (server.version_num < 130000) {
    findings.push({ level: 'blocker', subject: 'source', message: `change tracking needs PostgreSQL 13 or later (xid8, pg_current_xact_id); this is ${server.version}` });
    return findings;
  }
  findings.push({ level: 'ok', subject: 'source', message: `wal_level is ${server.wal_level}: not needed (change tracking uses triggers, not logical decoding)` });

  const tracked = plan.tables.filter((t) => t.primaryKey.length > 0);
  if (tracked.length) findings.push(await trackingSchemaFinding(db, server));
  for (const table of tracked) findings.push(await trackingRights(db, table, server.role));
  return findings;
}

async function trackingSchemaFinding(db: Queryable, server: ServerFacts): Promise<Finding> {
  const schema = await schemaFacts(db, TRACKING_SCHEMA);
  const name = quotePg(TRACKING_SCHEMA);
  if (!schema) {
    return server.may_create_schema
      ? { level: 'ok', subject: 'source', message: `tracking schema ${name} will be created at the first start` }
      : {
          level: 'blocker',
          subject: 'source',
          message: `role ${quotePg(server.role)} may not create the tracking schema ${name}: GRANT CREATE ON DATABASE ${quotePg(server.database)} TO ${quotePg(server.role)} (or create the schema for it)`,
        };
  }
  if (schema.may_use && schema.may_create) return { level: 'ok', subject: 'source', message: `tracking schema ${name} exists (owner ${quotePg(schema.owner)})` };
  return {
    level: 'blocker',
    subject: 'source',
    message: `role ${quotePg(server.role)} may not use the tracking schema ${name} (owner ${quotePg(schema.owner)}): GRANT USAGE, CREATE ON SCHEMA ${name} TO ${quotePg(server.role)}`,
  };
}

interface TableRights {
  owner: string;
  may_trigger: boolean;
  owns: boolean | null;
}

/** Whether tracking is installed and usable, and whether this role could install it (again, after the tenant's DDL). */
async function trackingRights(db: Queryable, table: TableSchema, role: string): Promise<Finding> {
  const rights = (await db.query<TableRights>(TABLE_RIGHTS_SQL, [table.source.schema, table.source.table])).rows[0];
  const { state, key } = await readTracking(db, table);
  const installed = isUsable(state, key);
  const missing: string[] = [];
  if (rights && !rights.may_trigger) missing.push(`has no TRIGGER privilege on ${qualifiedTable(table)}`);
  if (rights && !rights.owns) missing.push(`does not own it (owner ${quotePg(rights.owner)}; ENABLE ALWAYS TRIGGER needs the owner of the table and of its partitions, or a member of the owning role)`);
  const who = `role ${quotePg(role)}`;
  if (missing.length === 0) {
    return { level: 'ok', subject: tableSubject(table), message: installed ? 'change tracking is installed' : 'change tracking will be installed (triggers, and a side table in the tracking schema)' };
  }
  if (installed) {
    return {
      level: 'warn',
      subject: tableSubject(table),
      message: `change tracking is installed, but ${who} could not install it again (after DDL on the table it must be): it ${missing.join(' and ')}`,
    };
  }
  return { level: 'blocker', subject: tableSubject(table), message: `cannot install change tracking: ${who} ${missing.join(' and ')}` };
}

interface RelationFacts {
  name: string;
  owner: string;
  owned: boolean;
  key_name: string | null;
}

/** `plan`: the tables the tenant will mirror, so that a partner's table holding one's name is found. */
export async function mirrorPreflight(db: Queryable, schema: string, plan: PreflightTables): Promise<Finding[]> {
  const server = await serverFacts(db);
  const findings: Finding[] = [connected('mirror', server)];
  const facts = await schemaFacts(db, schema);
  const name = quotePg(schema);
  const role = quotePg(server.role);
  if (!facts) {
    findings.push(
      server.may_create_schema
        ? { level: 'ok', subject: 'mirror', message: `schema ${name} will be created at the first start (owner ${role})` }
        : { level: 'blocker', subject: 'mirror', message: `schema ${name} does not exist and role ${role} may not create it: GRANT CREATE ON DATABASE ${quotePg(server.database)} TO ${role}, or create the schema for it` },
    );
    for (const t of plan.tables) findings.push({ level: 'ok', subject: tableSubject(t), message: 'its mirror table will be created' });
    return findings;
  }
  findings.push(
    facts.may_use && facts.may_create
      ? { level: 'ok', subject: 'mirror', message: `schema ${name} exists (owner ${quotePg(facts.owner)}); role ${role} may create tables in it` }
      : { level: 'blocker', subject: 'mirror', message: `role ${role} may not create tables in schema ${name} (owner ${quotePg(facts.owner)}): GRANT USAGE, CREATE ON SCHEMA ${name} TO ${role}` },
  );

  const relations = new Map((await db.query<RelationFacts>(SCHEMA_TABLES_SQL, [schema])).rows.map((r) => [r.name, r]));
  const registry = await registered(db, schema, relations);
  if (registry) {
    const state = relations.get(sql.STATE_TABLE);
    if (state && !state.owned) {
      findings.push({ level: 'blocker', subject: 'mirror', message: `${sql.STATE_TABLE} belongs to ${quotePg(state.owner)}: role ${role} cannot keep the mirror's state in it` });
    }
  }
  const ours = new Set(registry?.relations ?? []);
  const taken = new Set<string>();
  for (const table of plan.tables) {
    const relation = sql.mirrorRelation(table.name);
    taken.add(relation);
    findings.push(mirrorTableFinding(table, relation, relations.get(relation), ours.has(relation), server.role));
  }
  const own = new Set([sql.STATE_TABLE, sql.FENCE_TABLE, sql.LOG_TABLE]);
  const partners = [...relations.keys()].filter((r) => !ours.has(r) && !own.has(r) && !taken.has(r) && !(registry?.shadows ?? []).includes(r));
  if (partners.length) {
    const shown = partners.slice(0, 5).map((r) => JSON.stringify(r)).join(', ');
    findings.push({ level: 'ok', subject: 'mirror', message: `${partners.length} table(s) of the partner's own in schema ${name} are left alone: ${shown}${partners.length > 5 ? ', …' : ''}` });
  }
  return findings;
}

function mirrorTableFinding(table: TableSchema, relation: string, existing: RelationFacts | undefined, registered: boolean, role: string): Finding {
  const subject = tableSubject(table);
  if (!existing) return { level: 'ok', subject, message: 'its mirror table will be created' };
  if (registered) {
    return existing.owned
      ? { level: 'ok', subject, message: 'its mirror table exists and is registered in _mirror_state' }
      : { level: 'blocker', subject, message: `its mirror table is registered but belongs to ${quotePg(existing.owner)}: role ${quotePg(role)} cannot alter, swap or drop it` };
  }
  // A table of the first layout (registered only once populated) is recognised by the key name our tables get.
  if (existing.key_name === sql.pkConstraintName(relation)) return { level: 'ok', subject, message: 'its mirror table exists (created by an earlier version; it will be registered)' };
  return {
    level: 'blocker',
    subject,
    message: `a table named ${JSON.stringify(relation)} already exists in the mirror schema and was not created by tenant-mirror (the partner's): this table fails until it is renamed, or the source table excluded`,
  };
}

/** What `_mirror_state` registers (live tables and shadows), or null when there is no state table yet. */
async function registered(db: Queryable, schema: string, relations: Map<string, RelationFacts>): Promise<{ relations: string[]; shadows: string[] } | null> {
  if (!relations.has(sql.STATE_TABLE)) return null;
  const { rows } = await db.query<{ table_name: string; relation: string | null; shadow: string | null }>(sql.allOwnedRelationsSql(schema));
  return {
    relations: rows.map((r) => r.relation ?? safeRelation(r.table_name)).filter((r): r is string => r !== null),
    shadows: rows.map((r) => r.shadow).filter((r): r is string => r !== null),
  };
}

function safeRelation(table: string): string | null {
  try {
    return sql.mirrorRelation(table);
  } catch {
    return null;
  }
}

