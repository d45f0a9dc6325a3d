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

  it('brings up SQL Server as source, PostgreSQL as mirror, Temporal with its UI, and the worker', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['mssql', 'mssql-init', 'postgres', 'temporal', 'worker']);
    expect(compose.services.mssql!.image).toMatch(/mssql\/server:2022/);
    expect(compose.services.temporal!.command).toEqual(expect.arrayContaining(['start-dev', '--ui-port', '8233', 'TenantId=Keyword', 'MirrorState=Keyword']));
    expect(compose.services.worker!.environment).toMatchObject({ TEMPORAL_ADDRESS: 'temporal:7233', TENANT_MIRROR_CONFIG: '/app/docker/tenants.compose.yaml', TENANT_MIRROR_METRICS: '0.0.0.0:9464' });
    expect(compose.services.worker!.depends_on).toMatchObject({ 'mssql-init': { condition: 'service_completed_successfully' } });
  });

  it("has a tenants file the worker accepts", () => {
    const tenants = loadConfigFile('docker/tenants.compose.yaml', { MSSQL_SA_PASSWORD: 'TenantMirror!2024' });
    expect(tenants.map((t) => [t.id, t.source.kind, t.mirror.kind])).toEqual([['crm', 'mssql', 'postgres']]);
  });
});
