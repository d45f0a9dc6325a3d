/**
 * The tenant as one value. The workflow holds a TenantState, moves it through its phases (workflows/phases.ts)
 * with the small pure functions below, and carries it whole across continue-as-new. Message handlers only
 * record an operator's intent here and wake the workflow (see workflows/messages.ts); the phases act on it.
 *
 * Pure: no workflow API, no clock (callers pass `now`), so every transition is a plain function of its inputs.
 */
import { DEFAULT_POLICY } from '../contract/payloads';
import type {
  MirrorState,
  PopulateResult,
  SessionResult,
  TablePlan,
  TableStatus,
  TenantPlan,
  TenantPolicy,
  TenantStatus,
} from '../contract/payloads';

export type WipeScope = string[] | 'all';

export interface TenantState {
  tenantId: string;
  /** The tenant's policy as last read, so a new run's first activities already retry within its retention. */
  policy: TenantPolicy;
  /** The state last published as the MirrorState search attribute in this run; null until the run publishes one. */
  published: MirrorState | null;
  /** The FailedTables search attribute as last published in this run; null (or absent) until the run publishes it. */
  publishedFailed?: number | null;
  /** Why the tenant is in its state, or what the last failure was. */
  reason: string | null;
  /** Set while the tenant is paused. `byRestore`: the restore policy paused it (resuming it means repopulate). */
  pause: { reason: string; byRestore: boolean } | null;
  /** An operator resumed a restore pause: the next bootstrap repopulates instead of pausing again. */
  restoreAccepted: boolean;
  pendingWipe: WipeScope | null;
  /** Epoch ms of the last successful sync or population: the 7-day rule counts from it. */
  lastSuccessAt: number | null;
  tables: TableStatus[];
  /** Tables that gained a column in place and still need their rows again (the new column's values). */
  backfill: string[];
  /** An operator's message wants the workflow's attention now: the running activity is cancelled. */
  wake: boolean;
  /** Messages the workflow could not act on, newest last (at most MAX_NOTICES). */
  notices: string[];
  /** Wipes in a row that failed for want of credentials or configuration (they wait longer each time). */
  wipeFailures?: number;
  /** Tables an operator paused on their own (pauseTables), with the reason shown in status; absent in older runs. */
  pausedTables?: { name: string; reason: string }[];
}

const MAX_NOTICES = 20;

/** What continue-as-new carried before TenantState existed; a run started from it converts it once. */
export interface LegacyCarriedState {
  paused: boolean;
  pauseReason: string | null;
  pendingWipe: WipeScope | null;
  lastSuccessAt: number | null;
  tables: TableStatus[];
  pausedByRestore?: boolean;
  restoreAccepted?: boolean;
  backfill?: string[];
  policy?: TenantPolicy;
}

/** Workflow input. Carries no secret: activities resolve connections from configuration by tenant id. */
export interface TenantWorkflowInput {
  tenantId: string;
  /** The state carried across continue-as-new. */
  state?: TenantState;
  /** @deprecated the carried state of runs started before TenantState; read, never written. */
  carried?: LegacyCarriedState;
}

export function initialState(input: TenantWorkflowInput): TenantState {
  // Each run publishes its state once, whatever the previous run published.
  if (input.state) return { ...input.state, published: null, publishedFailed: null, wake: false, notices: input.state.notices ?? [] };
  const legacy = input.carried;
  return {
    tenantId: input.tenantId,
    policy: legacy?.policy ?? { ...DEFAULT_POLICY },
    published: null,
    reason: null,
    pause: legacy?.paused ? { reason: legacy.pauseReason ?? 'paused by operator', byRestore: legacy.pausedByRestore ?? false } : null,
    restoreAccepted: legacy?.restoreAccepted ?? false,
    pendingWipe: legacy?.pendingWipe ?? null,
    lastSuccessAt: legacy?.lastSuccessAt ?? null,
    tables: legacy?.tables ?? [],
    backfill: legacy?.backfill ?? [],
    wake: false,
    notices: [],
  };
}

// ---- operator intent (message handlers) ----

export function requestPause(s: TenantState, why: string | undefined): void {
  s.pause = { reason: why ?? 'paused by operator', byRestore: false };
}

export function requestResume(s: TenantState): void {
  // Resuming a restore pause is the operator's go-ahead to repopulate: without it the restore evidence, still
  // there at the next bootstrap, would pause the tenant again at once.
  if (s.pause?.byRestore) s.restoreAccepted = true;
  s.pause = null;
}

export function requestWipe(s: TenantState, tables: string[] | undefined): WipeScope {
  const requested: WipeScope = tables?.length ? tables : 'all';
  s.pendingWipe = mergeWipe(s.pendingWipe, requested);
  // A resync is a request to have the table back: a wiped table left paused would stay empty.
  if (s.pausedTables?.length) s.pausedTables = requested === 'all' ? [] : s.pausedTables.filter((p) => !requested.includes(p.name));
  return requested;
}

/** This table alone stops: bootstrap leaves it alone and the session no longer syncs it; its tracking keeps the changes. */
export function requestTablePause(s: TenantState, tables: string[], why: string | undefined): void {
  const reason = why ?? 'paused by operator';
  s.pausedTables = [...(s.pausedTables ?? []).filter((p) => !tables.includes(p.name)), ...tables.map((name) => ({ name, reason }))];
  for (const name of tables) Object.assign(tableStatus(s, name), { state: 'paused', error: reason });
}

/** The tables go back to the next bootstrap, which catches them up from their LSN (or repopulates, if it expired). */
export function requestTableResume(s: TenantState, tables: string[]): void {
  s.pausedTables = (s.pausedTables ?? []).filter((p) => !tables.includes(p.name));
  for (const name of tables) Object.assign(tableStatus(s, name), { state: 'pending', error: null });
}

export function pausedTableNames(s: TenantState): string[] {
  return (s.pausedTables ?? []).map((p) => p.name);
}

/** Why a pauseTables/resumeTables request cannot be carried out, or null: at least one table, each one the tenant mirrors (and, to resume, paused). */
export function tablesRequestProblem(s: TenantState, tables: unknown, resume: boolean): string | null {
  if (!Array.isArray(tables) || tables.length === 0) return 'tables must be a non-empty list of table names';
  const problem = wipeRequestProblem(s, tables);
  if (problem || !resume) return problem;
  const paused = new Set(pausedTableNames(s));
  const notPaused = (tables as string[]).filter((t) => !paused.has(t));
  return notPaused.length ? `table ${notPaused.map((t) => JSON.stringify(t)).join(', ')} is not paused` : null;
}

/**
 * Why a wipe request cannot be carried out, or null. Tables must be ones the tenant mirrors: a name the workflow
 * does not know (a typo, a table of another tenant, the mirror's own state table) or a skipped table would
 * otherwise wait in pendingWipe for ever.
 */
export function wipeRequestProblem(s: TenantState, tables: unknown): string | null {
  if (tables === undefined) return null;
  if (!Array.isArray(tables) || tables.some((t) => typeof t !== 'string' || t.length === 0)) return 'tables must be a list of table names';
  const known = new Map(s.tables.map((t) => [t.name, t]));
  const unknown = tables.filter((t) => !known.has(t));
  if (unknown.length) {
    const names = s.tables.filter((t) => t.state !== 'skipped').map((t) => t.name);
    return `unknown table ${unknown.map((t) => JSON.stringify(t)).join(', ')} (the tenant mirrors: ${names.join(', ') || 'none yet'})`;
  }
  const skipped = tables.filter((t) => known.get(t)?.state === 'skipped');
  if (skipped.length) return `table ${skipped.map((t) => JSON.stringify(t)).join(', ')} is not mirrored (skipped: ${known.get(skipped[0]!)?.error ?? 'no reason'})`;
  return null;
}

/** Records something the workflow could not act on, for status. `at` is the workflow's clock. */
export function addNotice(s: TenantState, text: string, at: number): void {
  s.notices = [...s.notices, `${new Date(at).toISOString()} ${text}`].slice(-MAX_NOTICES);
}

export function mergeWipe(current: WipeScope | null, requested: WipeScope): WipeScope {
  if (current === 'all' || requested === 'all') return 'all';
  return [...new Set([...(current ?? []), ...requested])];
}

// ---- the 7-day rule ----

export function retentionExpired(s: TenantState, now: number): boolean {
  return s.lastSuccessAt !== null && now - s.lastSuccessAt > s.policy.retentionMs;
}

export function noteSuccess(s: TenantState, at: number | null): void {
  if (at !== null && (s.lastSuccessAt === null || at > s.lastSuccessAt)) s.lastSuccessAt = at;
}

/** How long a blocked tenant waits before looking again: at most `recheckMs`, and never past its retention. */
/** A wipe the operator must unblock (AuthFailed, BadConfig) waits 10 s, 20 s, 40 s … at most `maxMs`, or until resumed. */
export function wipeBackoffMs(failures: number, maxMs: number): number {
  return Math.min(maxMs, 10_000 * 2 ** Math.max(0, Math.min(failures - 1, 20)));
}

export function blockedWaitMs(s: TenantState, now: number, recheckMs: number): number {
  if (s.lastSuccessAt === null) return recheckMs;
  return Math.min(recheckMs, Math.max(0, s.lastSuccessAt + s.policy.retentionMs - now) + 1);
}

// ---- tables ----

export function tableStatus(s: TenantState, name: string): TableStatus {
  let status = s.tables.find((t) => t.name === name);
  if (!status) {
    status = { name, state: 'pending', lsn: null, rows: null, lastSyncAt: null, error: null };
    s.tables.push(status);
  }
  return status;
}

/** After a wipe of `wiped`: what remains pending, and the wiped tables start from nothing. */
export function recordWiped(s: TenantState, wiped: WipeScope): void {
  const pending = s.pendingWipe;
  if (pending === wiped) s.pendingWipe = null;
  else if (pending !== null && pending !== 'all' && Array.isArray(wiped)) s.pendingWipe = pending.filter((t) => !wiped.includes(t));
  for (const t of s.tables) {
    if (wiped === 'all' || wiped.includes(t.name)) Object.assign(t, { state: 'pending', lsn: null, rows: null, lastSyncAt: null });
  }
  if (wiped === 'all') s.lastSuccessAt = null;
}

/** A column added in place during a session: the rows already mirrored need its values, so the table is repopulated. */
export function withBackfill(s: TenantState, tables: TablePlan[]): TablePlan[] {
  const planned = new Set(tables.map((t) => t.name));
  s.backfill = s.backfill.filter((name) => planned.has(name));
  return tables.map((t) =>
    t.action === 'mirror' && s.backfill.includes(t.name)
      ? { name: t.name, action: 'populate', reason: 'column added', detail: 'backfill the added column' }
      : t,
  );
}

/**
 * Status follows the plan: tables gone from the source leave it, planned ones are pending or mirroring, failed
 * ones wait out their backoff, waiting ones stay as they are.
 */
export function reconcileTables(s: TenantState, plan: TenantPlan, now: number): void {
  const known = new Set([...plan.tables.map((t) => t.name), ...plan.skipped.map((t) => t.name)]);
  s.tables = s.tables.filter((t) => known.has(t.name));
  // A paused table the source no longer has (dropped, renamed) is no longer paused.
  if (s.pausedTables?.length) s.pausedTables = s.pausedTables.filter((p) => known.has(p.name));
  const paused = new Map((s.pausedTables ?? []).map((p) => [p.name, p.reason]));
  for (const t of plan.tables) {
    if (paused.has(t.name) && t.action === 'wait') {
      Object.assign(tableStatus(s, t.name), { state: 'paused', error: paused.get(t.name) });
      continue;
    }
    const status = tableStatus(s, t.name);
    if (t.mode) status.mode = t.mode;
    if (t.notes) status.notes = t.notes;
    if (t.action === 'failed') recordTableFailure(s, t.name, t.failure?.type ?? 'TableFailed', t.failure?.message ?? 'table set-up failed', now);
    else if (t.action === 'populate') Object.assign(status, { state: 'pending', error: t.detail ?? t.reason ?? null });
    else if (t.action === 'mirror' && status.state !== 'mirroring') status.state = 'mirroring';
  }
  for (const skipped of plan.skipped) Object.assign(tableStatus(s, skipped.name), { state: 'skipped', error: skipped.reason, failure: null });
}

/** The populations a plan asks for, largest first, so parallel lanes finish together. */
export function populationQueue(plan: TablePlan[]): TablePlan[] {
  return plan.filter((t) => t.action === 'populate').sort((a, b) => (b.estimatedRows ?? 0) - (a.estimatedRows ?? 0));
}

// ---- one table, one failure domain ----

/** A failed table is tried again after 15 s, then 30 s, 1 min, … at most every 30 minutes. */
export function tableBackoffMs(attempts: number): number {
  return Math.min(30 * 60_000, 15_000 * 2 ** Math.max(0, attempts - 1));
}

/** One table failed (TableFailed, or its set-up): it alone waits; the tenant's other tables go on. */
export function recordTableFailure(s: TenantState, table: string, type: string, message: string, now: number): void {
  const status = tableStatus(s, table);
  const attempts = (status.failure?.attempts ?? 0) + 1;
  status.state = 'failed';
  status.error = message;
  status.failure = {
    type,
    message,
    attempts,
    since: status.failure?.since ?? new Date(now).toISOString(),
    retryAt: new Date(now + tableBackoffMs(attempts)).toISOString(),
  };
}

/** Tables bootstrap leaves alone: failed ones whose backoff has not run out, and the ones an operator paused. */
export function waitingTables(s: TenantState, now: number): string[] {
  const failed = s.tables.filter((t) => t.state === 'failed' && t.failure && Date.parse(t.failure.retryAt) > now).map((t) => t.name);
  return [...new Set([...failed, ...pausedTableNames(s)])];
}

/** When the workflow must look again without being asked: the next retry of a failed table, or a refresh due. */
export function nextWakeAt(s: TenantState, plan: TablePlan[]): number | null {
  const times = [
    ...s.tables.flatMap((t) => (t.state === 'failed' && t.failure ? [Date.parse(t.failure.retryAt)] : [])),
    ...plan.flatMap((t) => (t.refreshDueAt !== undefined ? [t.refreshDueAt] : [])),
  ];
  return times.length ? Math.min(...times) : null;
}

export function recordPopulating(s: TenantState, table: TablePlan): void {
  const status = Object.assign(tableStatus(s, table.name), { state: 'populating', error: null });
  if (table.estimatedRows !== undefined) status.estimatedRows = table.estimatedRows;
}

export function recordPopulated(s: TenantState, result: PopulateResult, now: number): void {
  const status = tableStatus(s, result.table);
  delete status.estimatedRows;
  Object.assign(status, {
    state: 'mirroring',
    lsn: result.lsn,
    rows: result.rows,
    lastSyncAt: new Date(now).toISOString(),
    error: null,
    failure: null,
  });
  s.backfill = s.backfill.filter((name) => name !== result.table);
  noteSuccess(s, now);
}

export function recordTableFailed(s: TenantState, table: string, message: string): void {
  Object.assign(tableStatus(s, table), { state: 'failed', error: message });
}

/**
 * The tables a session keeps up to date from their change tracking (every planned one that is tracked and did not
 * fail), and the others it only needs to know are there (refreshed, failed, waiting).
 */
export function sessionTables(s: TenantState, plan: TablePlan[]): { tables: string[]; others: string[] } {
  const synced = (t: TablePlan): boolean => t.mode !== 'refresh' && (t.action === 'mirror' || t.action === 'populate') && tableStatus(s, t.name).state !== 'failed';
  // Skipped tables are listed by the source too (a name collision, a reserved name): their presence is no news either.
  const skipped = s.tables.filter((t) => t.state === 'skipped').map((t) => t.name);
  return { tables: plan.filter(synced).map((t) => t.name), others: [...plan.filter((t) => !synced(t)).map((t) => t.name), ...skipped] };
}

export function recordSession(s: TenantState, result: SessionResult): void {
  noteSuccess(s, result.lastSuccessAt);
  for (const figures of result.tableStatus) Object.assign(tableStatus(s, figures.name), figures, { state: 'mirroring', error: null, failure: null });
  if (result.reason === 'schemaChanged') s.backfill = [...new Set([...s.backfill, ...result.tables])];
}

export function failedTableCount(s: TenantState): number {
  return s.tables.filter((t) => t.state === 'failed').length;
}

export function pauseForRestore(s: TenantState, evidence: string): void {
  s.pause = { reason: `source restored: ${evidence} (policy onSourceRestore=pause: resume to repopulate)`, byRestore: true };
}

/** The workflow's answer to the `status` query. */
export function statusOf(s: TenantState): TenantStatus {
  return {
    tenantId: s.tenantId,
    state: s.published ?? 'bootstrapping',
    reason: s.reason,
    tables: s.tables,
    lastSuccessAt: s.lastSuccessAt === null ? null : new Date(s.lastSuccessAt).toISOString(),
    pendingWipe: s.pendingWipe,
    notices: s.notices,
  };
}
