/**
 * The partner's hook SQL (mirror.hooks): placeholders expanded with names the adapter has quoted for its dialect,
 * and a failure of the partner's statement reported as that table's failure, naming the hook.
 */
import { FailureType, MirrorError, redact, withoutValues, type ErrorContext } from './errors';
import type { HookEvent, HookStatement } from './types';

/** `{{table}}` → the quoted, schema-qualified mirror table; `{{schema}}` → the quoted mirror schema. */
export function expandHook(template: string, quoted: { table: string; schema: string }): string {
  return template.replace(/\{\{\s*(table|schema)\s*\}\}/g, (_m, which: 'table' | 'schema') => quoted[which]);
}

/**
 * A hook that failed fails its table alone (TableFailed: the table waits with backoff, the others go on), and the
 * transaction it ran in rolls back, so the mirror is as it was before the create or swap.
 */
export function hookFailed(event: HookEvent, hook: HookStatement, err: unknown, ctx: ErrorContext): MirrorError {
  const reason = redact(withoutValues(err));
  return new MirrorError(
    FailureType.TableFailed,
    `the partner's ${event} hook ${hook.label} failed: ${reason} (nothing of this ${event === 'afterCreate' ? 'create' : 'population'} was kept; fix the hook in the tenants file)`,
    ctx,
    { cause: err },
  );
}
