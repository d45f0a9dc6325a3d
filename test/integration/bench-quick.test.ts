/**
 * The benchmark's quick mode as a smoke test: it must run to the end and produce a number for every
 * measurement. No figure is compared with anything: timings on a shared CI machine say nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Every number in the results, by its path; strings and booleans are left out. */
function numbers(value: unknown, path = ''): [string, number][] {
  if (typeof value === 'number') return [[path, value]];
  if (Array.isArray(value)) return value.flatMap((v, i) => numbers(v, `${path}[${i}]`));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => numbers(v, path ? `${path}.${k}` : k));
  return [];
}

describe('npm run bench -- --quick', () => {
  it('produces a number for every measurement', () => {
    const dir = join(process.cwd(), '.data', 'test', 'bench-quick');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const out = join(dir, 'results.json');
    const run = spawnSync(process.execPath, ['--import', 'tsx', join('bench', 'main.ts'), '--quick', '--out', out], {
      cwd: process.cwd(),
      env: { ...process.env, BENCH_DATA_DIR: join(dir, 'servers') },
      encoding: 'utf8',
      timeout: 280_000,
    });
    expect(run.status, `${run.stdout}\n${run.stderr}`.slice(-4000)).toBe(0);
    const results = JSON.parse(readFileSync(out, 'utf8')) as Record<string, unknown>;
    expect(results.errors).toEqual({});
    const measured = ['population', 'largeTable', 'incremental', 'lag', 'memory', 'idleCost', 'overhead', 'many'] as const;
    for (const key of measured) {
      const found = numbers(results[key], key);
      expect(found.length, `${key} has figures`).toBeGreaterThan(0);
      for (const [path, n] of found) expect(Number.isFinite(n), `${path} = ${n}`).toBe(true);
    }
    const memory = results.memory as { rows: number }[];
    expect(memory.map((m) => m.rows)).toHaveLength(2);
    expect(memory[1]!.rows).toBeGreaterThanOrEqual(4 * memory[0]!.rows);
    expect((results.targets as unknown[]).length).toBeGreaterThanOrEqual(10);
  }, 300_000);
});
