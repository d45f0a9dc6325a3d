/**
 * The chaos run's short form as a test: one tenant under a steady write load taken through every fault (worker
 * SIGKILL, SIGTERM, mid-batch, mid-population, a second worker lost, mirror and source crashes, Temporal SIGKILL
 * and restart, connections cut). What is asserted is what must never happen: a row lost, a fault the mirror does
 * not recover from. Recovery times are recorded, never compared: timings on a shared CI machine say nothing
 * (exit code 3, a missed target, is accepted here and reported by `npm run chaos`).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

interface ChaosResults {
  rowsLost: number;
  lostByTable: Record<string, number>;
  results: { fault: string; recoverySeconds: number[]; notes: string[] }[];
}

describe('npm run chaos -- --short', () => {
  it('loses no row and recovers from every fault', () => {
    const dir = join(process.cwd(), '.data', 'test', 'chaos-short');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const out = join(dir, 'results.json');
    const run = spawnSync(process.execPath, ['--import', 'tsx', join('bench', 'chaos', 'main.ts'), '--short', '--out', out], {
      cwd: process.cwd(),
      env: { ...process.env, CHAOS_DATA_DIR: join(dir, 'servers') },
      encoding: 'utf8',
      timeout: 580_000,
      killSignal: 'SIGKILL',
    });
    const output = `${run.stdout}\n${run.stderr}`.slice(-4000);
    expect([0, 3], output).toContain(run.status);
    const results = JSON.parse(readFileSync(out, 'utf8')) as ChaosResults;
    expect(results.rowsLost, output).toBe(0);
    expect(Object.keys(results.lostByTable).sort()).toEqual(['accounts', 'big', 'orders', 'probe']);
    expect(results.results.map((r) => r.fault)).toHaveLength(9);
    for (const r of results.results) {
      expect(r.recoverySeconds, r.fault).toHaveLength(1);
      expect(Number.isFinite(r.recoverySeconds[0]), r.fault).toBe(true);
      expect(r.notes.join(' '), r.fault).not.toMatch(/started over/);
    }
  }, 600_000);
});
