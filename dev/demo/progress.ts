/**
 * What the demo shows while the mirror is being populated: one bar per table (rows copied of the table's rows)
 * on a terminal; on anything else (a log file, CI) one line per finished table and a summary every few seconds,
 * because redrawn bars would only fill the file with escape codes.
 */
import { MultiBar, Presets, type SingleBar } from 'cli-progress';

export type TableProgressState = 'pending' | 'populating' | 'mirrored' | 'skipped' | 'failed';

interface Row {
  name: string;
  total: number;
  copied: number;
  state: TableProgressState;
  note: string;
  bar: SingleBar | null;
}

const PLAIN_SUMMARY_MS = 5_000;

export class PopulationDisplay {
  private readonly rows = new Map<string, Row>();
  private readonly multibar: MultiBar | null;
  private lastSummary = Date.now();

  constructor(tables: { name: string; total: number }[], private readonly out: NodeJS.WriteStream = process.stdout) {
    const width = Math.max(...tables.map((t) => t.name.length));
    this.multibar = out.isTTY
      ? new MultiBar(
          {
            stream: out,
            format: ` {table} {bar} {percentage}% | {value}/{total} rows | {note}`,
            barsize: 30,
            hideCursor: true,
            clearOnComplete: false,
            stopOnComplete: false,
            autopadding: true,
            formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? v.toLocaleString('en-US') : String(v)),
          },
          Presets.shades_classic,
        )
      : null;
    for (const t of tables) {
      const row: Row = { name: t.name, total: t.total, copied: 0, state: 'pending', note: 'pending', bar: null };
      row.bar = this.multibar?.create(Math.max(1, t.total), 0, { table: t.name.padEnd(width), note: row.note }) ?? null;
      this.rows.set(t.name, row);
    }
  }

  /** Sets a table's figures; `copied` never goes backwards (heartbeats and COPY progress arrive out of step). */
  update(name: string, copied: number, state: TableProgressState, note?: string): void {
    const row = this.rows.get(name);
    if (!row) return;
    const before = row.state;
    row.copied = Math.min(Math.max(row.copied, copied), row.total);
    if (state === 'mirrored') row.copied = row.total;
    row.state = state;
    row.note = note ?? state;
    row.bar?.update(row.copied, { note: row.note });
    if (!this.multibar && before !== state && state !== 'pending' && state !== 'populating') {
      this.out.write(`  ${row.name}: ${row.note}${state === 'mirrored' ? ` (${row.total.toLocaleString('en-US')} rows)` : ''}\n`);
    }
    if (!this.multibar && Date.now() - this.lastSummary >= PLAIN_SUMMARY_MS) this.summary();
  }

  /** A line printed above the bars (or plainly). */
  log(line: string): void {
    if (this.multibar) this.multibar.log(line.endsWith('\n') ? line : `${line}\n`);
    else this.out.write(line.endsWith('\n') ? line : `${line}\n`);
  }

  copiedRows(): number {
    let sum = 0;
    for (const row of this.rows.values()) if (row.state !== 'skipped') sum += row.copied;
    return sum;
  }

  stop(): void {
    this.multibar?.stop();
  }

  private summary(): void {
    this.lastSummary = Date.now();
    const rows = [...this.rows.values()].filter((r) => r.state !== 'skipped');
    const done = rows.filter((r) => r.state === 'mirrored').length;
    const total = rows.reduce((sum, r) => sum + r.total, 0);
    const current = rows.find((r) => r.state === 'populating');
    this.out.write(
      `  populating: ${done}/${rows.length} tables, ${this.copiedRows().toLocaleString('en-US')}/${total.toLocaleString('en-US')} rows` +
        (current ? ` (now ${current.name}: ${current.copied.toLocaleString('en-US')}/${current.total.toLocaleString('en-US')})` : '') +
        '\n',
    );
  }
}
