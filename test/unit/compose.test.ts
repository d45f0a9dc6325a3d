/**
 * The compose stack cannot start here (no Docker engine), so this checks what can be checked: the file parses,
 * has the services the README promises, and its tenants file is valid configuration for the worker it runs.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfigFile } from '../../src/config/load';

interface Service {
  image?: string;
  environment?: Record<string, string>;
  command?: string[];
  depends_on?: Record<string, { condition: string }>;
}

describe('docker-compose.yml', () => {
  const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as { services: Record<string, Service> };

  it('brings up SQL Server as source, PostgreSQL as mirror, Temporal on its own PostgreSQL with its UI, and two workers', () => {
    expect(Object.keys(compose.services).sort()).toEqual([
      'deps',
      'mssql',
      'mssql-init',
      'postgres',
      'temporal',
      'temporal-namespace',
      'temporal-postgres',
      'temporal-schema',
      'temporal-ui',
      'worker-1',
      'worker-2',
    ]);
    expect(compose.services.mssql!.image).toMatch(/mssql\/server:2022/);
    // The real server, not the dev server: PostgreSQL persistence, worker heartbeats on (the fleet's liveness signal).
    expect(compose.services.temporal!.image).toMatch(/^temporalio\/server:/);
    expect(compose.services.temporal!.environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'temporal-postgres' });
    expect(readFileSync('docker/temporal/dynamicconfig.yaml', 'utf8')).toMatch(/frontend\.WorkerHeartbeatsEnabled:\n\s+- value: true/);
    expect(compose.services.temporal!.depends_on).toMatchObject({ 'temporal-schema': { condition: 'service_completed_successfully' } });
    const ids = new Set<string>();
    for (const name of ['worker-1', 'worker-2']) {
      const worker = compose.services[name]!;
      expect(worker.environment).toMatchObject({ TEMPORAL_ADDRESS: 'temporal:7233', TENANT_MIRROR_CONFIG: '/app/docker/tenants.compose.yaml', TENANT_MIRROR_METRICS: '0.0.0.0:9464' });
      expect(worker.depends_on).toMatchObject({ 'mssql-init': { condition: 'service_completed_successfully' }, deps: { condition: 'service_completed_successfully' } });
      ids.add(worker.environment!.TENANT_MIRROR_WORKER_ID!);
    }
    // Stable identities, one per worker: each reclaims its own sessions after a restart, never the other's.
    expect([...ids].sort()).toEqual(['worker-1', 'worker-2']);
  });

  it("has a tenants file the worker accepts", () => {
    const tenants = loadConfigFile('docker/tenants.compose.yaml', { MSSQL_SA_PASSWORD: 'TenantMirror!2024' });
    expect(tenants.map((t) => [t.id, t.source.kind, t.mirror.kind])).toEqual([['crm', 'mssql', 'postgres']]);
  });
});
