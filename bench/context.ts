/** What every measurement gets: the servers, the options, the main worker and tenants file, a logger. */
import type { BenchEnv } from './env';
import type { TenantsFile, WorkerProcess } from './tenants';

export interface BenchOptions {
  quick: boolean;
  seed: number;
  /** Rows in the data set (all four tables). */
  rows: number;
  /** Repetitions of the measurements taken as a median. */
  runs: number;
  /** Changed rows per incremental round. */
  changes: number;
  /** Row changes per second under load. */
  rate: number;
  lagSeconds: number;
  idleSeconds: number;
  overheadSeconds: number;
  /** Rows of the memory test's table at its two sizes. */
  memoryRows: [number, number];
  tenants: number;
  manySeconds: number;
}

export interface Ctx {
  env: BenchEnv;
  opts: BenchOptions;
  sourceUrl: string;
  mirrorUrl: string;
  rows: number;
  tenants: TenantsFile;
  worker: WorkerProcess;
  log(line: string): void;
}
