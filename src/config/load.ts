/**
 * Loads the tenants file (TENANT_MIRROR_CONFIG, default ./tenants.yaml), substitutes ${VAR} references from the
 * environment and validates it. Every problem becomes one BadConfig error naming the tenant and the field.
 */
import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import picomatch from 'picomatch';
import { configSchema, tenantSchema, type HookConfig, type TenantConfig } from './schema';
import type { HookEvent, HookStatement, MirrorHooks, TableFilter } from '../core/types';
import { createHash } from 'node:crypto';
import { FailureType, MirrorError, redact } from '../core/errors';

export const DEFAULT_CONFIG_PATH = './tenants.yaml';

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.TENANT_MIRROR_CONFIG || DEFAULT_CONFIG_PATH;
}

export function loadConfigFile(path = configPath(), env: NodeJS.ProcessEnv = process.env): TenantConfig[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new MirrorError(FailureType.BadConfig, `cannot read the tenants file ${path}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new MirrorError(FailureType.BadConfig, `${path} is not valid YAML: ${yamlProblem(err)}`);
  }
  return parseConfig(doc, env, path);
}

export function parseConfig(doc: unknown, env: NodeJS.ProcessEnv = process.env, origin = 'configuration'): TenantConfig[] {
  const top = configSchema.safeParse(doc);
  if (!top.success) throw new MirrorError(FailureType.BadConfig, `${origin}: ${describeIssues(top.error)}`);
  const seen = new Set<string>();
  const tenants = top.data.tenants.map((raw, index) => {
    const label = tenantLabel(raw, index);
    const substituted = substituteEnv(raw, env, `${origin}: tenant ${label}`);
    const parsed = tenantSchema.safeParse(substituted);
    if (!parsed.success) {
      throw new MirrorError(FailureType.BadConfig, `${origin}: tenant ${label}: ${describeIssues(parsed.error)}`, {
        tenant: typeof (raw as { id?: unknown })?.id === 'string' ? (raw as { id: string }).id : undefined,
      });
    }
    const tenant = parsed.data;
    if (seen.has(tenant.id)) throw new MirrorError(FailureType.BadConfig, `${origin}: tenant ${tenant.id} is defined twice`);
    seen.add(tenant.id);
    return { ...tenant, mirror: { ...tenant.mirror, schema: tenant.mirror.schema ?? defaultMirrorSchema(tenant.id) } };
  });
  assertOwnMirrorSchemas(tenants, origin);
  return tenants;
}

/**
 * Two tenants writing one mirror schema would wipe, swap and drop each other's tables: refused, naming both. The
 * mirror database is told by its server and name (credentials differ between tenants, the database does not).
 */
function assertOwnMirrorSchemas(tenants: TenantConfig[], origin: string): void {
  const owner = new Map<string, string>();
  for (const t of tenants) {
    const key = `${mirrorDatabase(t.mirror.url)}\u0000${t.mirror.kind === 'mssql' ? t.mirror.schema.toLowerCase() : t.mirror.schema}`;
    const other = owner.get(key);
    if (other !== undefined) {
      throw new MirrorError(
        FailureType.BadConfig,
        `${origin}: tenants "${other}" and "${t.id}" would share the mirror schema ${JSON.stringify(t.mirror.schema)} of one database: give one of them its own mirror.schema`,
      );
    }
    owner.set(key, t.id);
  }
}

/** host:port/database of a connection URL, without its credentials. */
function mirrorDatabase(url: string): string {
  try {
    const u = new URL(url);
    const port = u.port || (u.protocol.startsWith('postgres') ? '5432' : '1433');
    return `${u.hostname.toLowerCase()}:${port}/${decodeURIComponent(u.pathname.replace(/^\//, ''))}`;
  } catch {
    return url;
  }
}

/** A YAML parser error without the code frame it quotes: the line could hold a password. */
function yamlProblem(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const first = message.split('\n')[0] ?? message;
  return redact(first.replace(/:\s*$/, ''));
}

/**
 * The tenants file, read again only when it changed (its modification time or size): activities ask for their
 * tenant's configuration often (a sync session every cycle), and a change must apply without a restart.
 */
export function cachedConfigLoader(path = configPath(), env: NodeJS.ProcessEnv = process.env): () => TenantConfig[] {
  let cached: { stamp: string; tenants: TenantConfig[] } | null = null;
  return () => {
    let stamp: string;
    try {
      const st = statSync(path);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      stamp = 'missing';
    }
    if (cached?.stamp !== stamp) cached = { stamp, tenants: loadConfigFile(path, env) };
    return cached.tenants;
  };
}

export function findTenant(tenants: TenantConfig[], id: string): TenantConfig {
  const tenant = tenants.find((t) => t.id === id);
  if (!tenant) {
    throw new MirrorError(FailureType.BadConfig, `tenant ${id} is not in the configuration (known: ${tenants.map((t) => t.id).join(', ') || 'none'})`, { tenant: id });
  }
  return tenant;
}

/**
 * Default mirror schema: `tenant_<id>` when the id is already a plain lower-case identifier; otherwise the id made
 * one, plus a short hash of the exact id, so that two ids (`a.b`, `a-b`, `A_b`) can never share a schema.
 */
export function defaultMirrorSchema(tenantId: string): string {
  const plain = tenantId.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  if (plain === tenantId) return `tenant_${plain}`.slice(0, 63);
  const hash = createHash('sha256').update(tenantId).digest('hex').slice(0, 8);
  return `tenant_${plain.slice(0, 46)}_${hash}`;
}

/**
 * A predicate over mirror table names (`schema.table`, `public.` dropped) from include/exclude globs, with the
 * literal prefixes its include patterns start with when every one has one (`t001.*` → `t001.`): a source shared
 * by many tenants then reads only the relations that can be this tenant's.
 */
export function tableFilter(tables: TenantConfig['tables']): TableFilter {
  const include = picomatch(tables.include, { dot: true });
  const exclude = tables.exclude.length ? picomatch(tables.exclude, { dot: true }) : () => false;
  const filter: TableFilter = (name) => include(name) && !exclude(name);
  const prefixes = tables.include.map(literalPrefix);
  if (prefixes.length > 0 && prefixes.every((p) => p.length > 0)) filter.prefixes = prefixes;
  filter.key = JSON.stringify([tables.include, tables.exclude]);
  return filter;
}

/**
 * The part of a glob before its first character with a meaning to picomatch (negation, wildcards, classes,
 * escapes, quotes); none for a glob starting `./`, which picomatch strips.
 */
function literalPrefix(glob: string): string {
  if (glob.startsWith('./')) return '';
  const special = glob.search(/[*?[\]{}()!+@\\|"']/);
  return special === -1 ? glob : glob.slice(0, special);
}

/** The hooks of `mirror.hooks` that apply to a table at an event, in configuration order (labels count from 1). */
export function mirrorHooks(hooks: HookConfig[]): MirrorHooks {
  const compiled = hooks.map((h, i) => ({ ...h, index: i + 1, applies: picomatch(h.tables, { dot: true }) }));
  return (event: HookEvent, table: string): HookStatement[] =>
    compiled.flatMap((h) => {
      const sql = h[event];
      return sql !== undefined && h.applies(table) ? [{ label: `mirror.hooks[${h.index}].${event}`, sql }] : [];
    });
}

function tenantLabel(raw: unknown, index: number): string {
  const id = typeof raw === 'object' && raw !== null ? (raw as { id?: unknown }).id : undefined;
  return typeof id === 'string' && id ? `"${id}"` : `#${index + 1} (no id)`;
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length ? issue.path.join('.') : '(top level)'}: ${issue.message}`)
    .join('; ');
}

/** Replaces ${VAR} in every string value; a missing variable is an error naming it (never its value). */
function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, where: string, path = ''): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
      const resolved = env[name];
      if (resolved === undefined) {
        throw new MirrorError(FailureType.BadConfig, `${where}: ${path || 'value'}: environment variable ${name} is not set`);
      }
      return resolved;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, where, `${path}.${i}`));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substituteEnv(v, env, where, path ? `${path}.${k}` : k)]),
    );
  }
  return value;
}
