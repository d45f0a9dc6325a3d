/**
 * Work spread over a few connections at once (a population's key ranges, a cycle's tables): each lane takes the
 * next item from one queue as soon as it is free, so a long item does not hold up the short ones behind it.
 */

/**
 * Runs `work` for every item, on `lanes.length` lanes. The first failure stops every lane from taking another
 * item and aborts the signal `work` receives (a lane may end what it is doing early, or let it finish); once every
 * lane has stopped, that first failure is thrown. `work` may instead answer 'retire': the item goes back to the
 * head of the queue for another lane and this lane stops (a lane that could not get its connection). `stopped`
 * is asked before each item: true stops the lanes without an error (a cancellation, the worker's drain).
 */
export async function inLanes<L, I>(
  lanes: readonly L[],
  items: readonly I[],
  work: (lane: L, item: I, failed: AbortSignal) => Promise<void | 'retire'>,
  stopped: () => boolean = () => false,
): Promise<void> {
  const queue = [...items];
  const failed = new AbortController();
  const errors: unknown[] = [];
  const lane = async (l: L): Promise<void> => {
    while (queue.length > 0 && !failed.signal.aborted && !stopped()) {
      const item = queue.shift() as I;
      if ((await work(l, item, failed.signal)) === 'retire') {
        queue.unshift(item);
        return;
      }
    }
  };
  await Promise.all(
    lanes.map((l) =>
      lane(l).catch((error: unknown) => {
        errors.push(error);
        failed.abort();
      }),
    ),
  );
  if (errors.length > 0) throw errors[0];
}
