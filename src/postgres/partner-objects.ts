/**
 * What a partner made on a mirror table, carried over when a population replaces it: the swap drops the live table
 * and renames the shadow into its place, which would otherwise take with it the partner's indexes, grants and
 * comments, and which PostgreSQL refuses while a view reads the table. So, in the swap's own transaction:
 *
 * 1. read them from the live table (its indexes other than our primary key, privileges granted to others than its
 *    owner — on the table and on its columns —, its comments, every view that depends on it, through other views
 *    too);
 * 2. build each index on the shadow under a temporary name, before the live table is locked, so readers wait for
 *    the drop and renames only, not for index builds;
 * 3. drop the dependent views (deepest first), drop the live table, rename the shadow;
 * 4. give the indexes their names back, grant again, comment again, and recreate the views (in dependency
 *    order) with their options, owner, grants and comments.
 *
 * Anything that cannot be carried fails the table (TableFailed: it waits with backoff, the others go on) and rolls
 * the swap back, rather than dropping the partner's work silently. Not carried over: constraints and the indexes
 * behind them, triggers, row-level security policies, and materialized views (a materialized view over a mirror
 * table fails its swap, naming it). Views must be the mirror user's to drop (own them, or be a member of their
 * owner role).
 */
import type { PoolClient } from 'pg';
import { FailureType, MirrorError, redact, withoutValues, type ErrorContext } from '../core/errors';
import * as sql from './mirror-sql';

interface Comment {
  column_name: string | null;
  comment: string;
}

interface DependentView {
  oid: string;
  schema: string;
  name: string;
  kind: string;
  depth: number;
  definition: string;
  options: string[] | null;
  owner: string;
  grants: sql.Grant[];
  comments: Comment[];
}

export interface CarriedObjects {
  indexes: { name: string; temp: string; create: string }[];
  grants: sql.Grant[];
  comments: Comment[];
  views: DependentView[];
  me: string;
}

/** Reads what the partner made on `relation` (null when there is no live table, e.g. its first population). */
export async function readCarried(c: PoolClient, schema: string, relation: string, shadow: string, ctx: ErrorContext): Promise<CarriedObjects | null> {
  const oid = (await c.query<{ oid: string }>(sql.RELATION_OID_SQL, [schema, relation])).rows[0]?.oid;
  if (oid === undefined) return null;
  const indexes = (await c.query<sql.PartnerIndex>(sql.PARTNER_INDEXES_SQL, [oid])).rows.map((index) => {
    const temp = sql.carriedIndexName(index.name);
    const create = sql.indexOnShadowSql(index, schema, shadow, temp);
    if (create === null) {
      throw new MirrorError(
        FailureType.TableFailed,
        `the partner's index ${JSON.stringify(index.name)} cannot be carried over to the new population (a definition of an unexpected shape); drop it, or recreate it from a mirror.hooks afterPopulate hook`,
        ctx,
      );
    }
    return { name: index.name, temp, create };
  });
  const views: DependentView[] = [];
  for (const v of (await c.query<Omit<DependentView, 'grants' | 'comments'>>(sql.DEPENDENT_VIEWS_SQL, [oid])).rows) {
    if (v.kind !== 'v') {
      throw new MirrorError(
        FailureType.TableFailed,
        `the materialized view ${JSON.stringify(`${v.schema}.${v.name}`)} reads this mirror table, and PostgreSQL cannot move it to a new population; drop it, or make it a plain view`,
        ctx,
      );
    }
    views.push({ ...v, grants: await grantsOf(c, v.oid), comments: await commentsOf(c, v.oid) });
  }
  const me = (await c.query<{ me: string }>('SELECT current_user::text AS me')).rows[0]?.me ?? '';
  return { indexes, grants: await grantsOf(c, oid), comments: await commentsOf(c, oid), views, me };
}

/** Step 2: the partner's indexes, built on the shadow under temporary names. */
export async function buildOnShadow(c: PoolClient, carried: CarriedObjects, ctx: ErrorContext): Promise<void> {
  for (const index of carried.indexes) await step(c, `index ${JSON.stringify(index.name)}`, index.create, ctx);
}

/** Step 3, first half: the views reading the live table go (deepest first), so it can be dropped. */
export async function dropDependentViews(c: PoolClient, carried: CarriedObjects, ctx: ErrorContext): Promise<void> {
  for (const v of [...carried.views].reverse()) await step(c, `view ${JSON.stringify(`${v.schema}.${v.name}`)}`, sql.dropViewSql(v.schema, v.name), ctx);
}

/** Step 4: names, grants and comments back on the new live table, then the views over it. */
export async function restoreOnLive(c: PoolClient, schema: string, live: string, carried: CarriedObjects, ctx: ErrorContext): Promise<void> {
  for (const index of carried.indexes) await step(c, `index ${JSON.stringify(index.name)}`, sql.renameIndexSql(schema, index.temp, index.name), ctx);
  await grantAndComment(c, schema, live, carried, 'TABLE', ctx);
  for (const v of carried.views) {
    const what = `view ${JSON.stringify(`${v.schema}.${v.name}`)}`;
    await step(c, what, sql.createViewSql(v.schema, v.name, v.definition, v.options), ctx);
    if (v.owner !== carried.me) await step(c, what, sql.alterViewOwnerSql(v.schema, v.name, v.owner), ctx);
    await grantAndComment(c, v.schema, v.name, { grants: v.grants, comments: v.comments }, 'VIEW', ctx);
  }
}

async function grantAndComment(
  c: PoolClient,
  schema: string,
  relation: string,
  objects: Pick<CarriedObjects, 'grants' | 'comments'>,
  kind: 'TABLE' | 'VIEW',
  ctx: ErrorContext,
): Promise<void> {
  const what = `${kind === 'TABLE' ? 'grant on the table' : `grant on the view ${JSON.stringify(relation)}`}`;
  for (const g of objects.grants) await step(c, what, sql.grantSql(schema, relation, g), ctx);
  for (const k of objects.comments) {
    const text =
      k.column_name !== null
        ? sql.commentOnColumnSql(schema, relation, k.column_name, k.comment)
        : kind === 'TABLE'
          ? sql.commentOnTableSql(schema, relation, k.comment)
          : sql.commentOnViewSql(schema, relation, k.comment);
    await step(c, 'comment', text, ctx);
  }
}

async function grantsOf(c: PoolClient, oid: string): Promise<sql.Grant[]> {
  return (await c.query<sql.Grant>(sql.GRANTS_SQL, [oid])).rows;
}

async function commentsOf(c: PoolClient, oid: string): Promise<Comment[]> {
  return (await c.query<Comment>(sql.COMMENTS_SQL, [oid])).rows;
}

/** One statement of the carry-over; its failure names what was being carried and fails the table alone. */
async function step(c: PoolClient, what: string, text: string, ctx: ErrorContext): Promise<void> {
  try {
    await c.query(text);
  } catch (err) {
    throw new MirrorError(
      FailureType.TableFailed,
      `carrying the partner's ${what} over to the new population failed: ${redact(withoutValues(err))} (the population was not swapped in)`,
      ctx,
      { cause: err },
    );
  }
}
