/** The MirrorError a promise rejects with; any other outcome fails the test. */
import { MirrorError } from '../../src/core/errors';

export async function rejection(p: Promise<unknown>): Promise<MirrorError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof MirrorError) return err;
    throw err;
  }
  throw new Error('expected a MirrorError');
}
