/**
 * `status <tenant> --watch`: the tenant's report redrawn every few seconds. A populating table gets a progress bar
 * (rows committed of the source's estimate, the rate since the last frame, the time left at that rate); a
 * mirroring one its lag and what its last cycle that changed something did. The frame is a pure function of two
 * reports, so that what an operator sees is tested without a terminal.
 */
import { Format } from 'cli-progress';
import type { Client } from '@temporalio/client';
import type { TableStatus } from '../../contract';
import type { TenantConfig } from '../config/schema';
import { tenantReport, type TenantReport } from '../status';

const BAR_SIZE = 24;
const BAR = { barsize: BAR_SIZE, barCompleteString: '█'.repeat(BAR_SIZE), barIncompleteString: '░'.repeat(BAR_SIZE), barGlue: '', autopaddingChar: ' ' };

/** Rows committed per populating table at one frame: the next frame's rate is measured against it. */
export interface WatchSample {
  at: number;
  rows: Map<string, number>;
}

export function formatWatchFrame(report: TenantReport, previous: WatchSample | null, now: number): { text: string; sample: WatchSample } {
  const sample: WatchSample = { at: now, rows: new Map() };
  const reason = report.stale ? ` (${report.stale.why})` : report.reason ? ` (${report.reason})` : '';
  const lines = [`${report.tenantId}: ${report.state}${reason}   ${new Date(now).toISOString().replace('T', ' ').slice(0, 19)} UTC`];
  if (report.activityError) lines.push(`  retrying: ${report.activityError}`);
  const width = Math.max(5, ...report.tables.map((t) => t.name.length));
  for (const t of report.tables) {
    if (t.state === 'populating' && t.rows !== null) sample.rows.set(t.name, t.rows);
    lines.push(`  ${t.name.padEnd(width)}  ${tableLine(t, previous, now)}`);
  }
  return { text: lines.join('\n'), sample };
}

function tableLine(t: TableStatus, previous: WatchSample | null, now: number): string {
  if (t.state === 'populating') return populatingLine(t, previous, now);
  if (t.state === 'mirroring') {
    const mode = t.mode === 'refresh' ? 'mirroring (refresh)' : 'mirroring';
    const lag = t.lagSeconds === null || t.lagSeconds === undefined ? '-' : `${t.lagSeconds}s`;
    const cycle = t.lastCycle ? `last cycle +${count(t.lastCycle.inserts)} ~${count(t.lastCycle.updates)} -${count(t.lastCycle.deletes)} at ${t.lastCycle.at.slice(11, 19)}` : 'no change in the last day';
    return `${mode.padEnd(20)} lag ${lag.padStart(5)}   ${cycle}`;
  }
  if (t.state === 'failed' && t.failure) return `failed: ${t.failure.type} (attempt ${t.failure.attempts}): ${t.failure.message}`;
  return t.error ? `${t.state}: ${t.error}` : t.state;
}

function populatingLine(t: TableStatus, previous: WatchSample | null, now: number): string {
  const rows = t.rows ?? 0;
  const estimate = t.estimatedRows && t.estimatedRows > 0 ? Math.max(t.estimatedRows, rows) : null;
  const bar = estimate ? Format.BarFormat(rows / estimate, BAR) : '░'.repeat(BAR_SIZE);
  const before = previous?.rows.get(t.name);
  const rate = before !== undefined && now > previous!.at && rows >= before ? ((rows - before) * 1000) / (now - previous!.at) : null;
  const eta = rate && estimate ? Format.TimeFormat(Math.round((estimate - rows) / rate), BAR, 1) : '-';
  const of = estimate ? ` / ${count(estimate)}` : '';
  return `${bar} ${count(rows)}${of} rows   ${rate === null ? '-' : count(Math.round(rate))} rows/s   ETA ${eta.trim()}`;
}

function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** Redraws until interrupted: in place on a terminal, one frame after the other anywhere else. */
export async function watchStatus(client: Client, tenantId: string, tenant: TenantConfig | undefined, intervalMs: number, out: NodeJS.WriteStream = process.stdout): Promise<never> {
  let previous: WatchSample | null = null;
  for (;;) {
    const { text, sample } = formatWatchFrame(await tenantReport(client, tenantId, tenant), previous, Date.now());
    previous = sample;
    out.write(out.isTTY ? `\x1b[H\x1b[2J${text}\n` : `${text}\n\n`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
