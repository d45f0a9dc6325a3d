// Filled in with the shared Temporal dev server (one per test run).
export default async function setup(): Promise<() => Promise<void>> {
  return async () => undefined;
}
