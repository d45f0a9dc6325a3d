import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WORKER_NODE_FLAGS } from '../../src/worker';

describe('bin/tenant-mirror.js', () => {
  it('starts Node with the flags the worker is measured with', () => {
    const shebang = readFileSync('bin/tenant-mirror.js', 'utf8').split('\n')[0]!;
    expect(shebang.startsWith('#!/usr/bin/env -S node')).toBe(true);
    for (const flag of WORKER_NODE_FLAGS) expect(shebang.split(' ')).toContain(flag);
  });
});
