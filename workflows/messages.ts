/**
 * The workflow's message handlers. Each only records the operator's intent on the tenant's state and wakes the
 * workflow (`wake` cancels the activity now running); the phases act on the intent.
 */
import { setHandler } from '@temporalio/workflow';
import { forceWipeUpdate, pauseSignal, resumeSignal, statusQuery, syncNowSignal, type ForceWipeAck, type ForceWipeRequest } from '../contract/messages';
import { requestPause, requestResume, requestWipe, statusOf, type TenantState } from './state';

export function registerHandlers(s: TenantState, wake: () => void): void {
  setHandler(statusQuery, () => statusOf(s));
  setHandler(pauseSignal, (why) => {
    requestPause(s, why);
    wake();
  });
  setHandler(resumeSignal, () => {
    requestResume(s);
    wake();
  });
  setHandler(syncNowSignal, wake);
  setHandler(
    forceWipeUpdate,
    (request): ForceWipeAck => {
      const ack: ForceWipeAck = { accepted: true, tables: requestWipe(s, request?.tables), state: s.published ?? 'bootstrapping' };
      wake();
      return ack;
    },
    { validator: validateWipeRequest },
  );
}

export function validateWipeRequest(request: ForceWipeRequest | undefined): void {
  const list = request?.tables;
  if (list !== undefined && (!Array.isArray(list) || list.some((t) => typeof t !== 'string' || t.length === 0))) {
    throw new Error('forceWipe: tables must be a list of table names');
  }
}
