/**
 * A source stream handed to the mirror is read only once the mirror's copy has started. If the mirror fails
 * before that (its server is down, a fence check fails) or a cancellation destroys the stream first, the source's
 * error would be an 'error' event nobody listens to, and take the worker process down. The mirror still learns
 * of the error through its own reading (`stream.errored`); this only keeps an abandoned stream harmless.
 */
import type { Readable } from 'node:stream';

export function abandonable<T extends Readable>(stream: T): T {
  stream.on('error', () => undefined);
  return stream;
}
