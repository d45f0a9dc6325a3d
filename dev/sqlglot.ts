/**
 * sqlglot (PyPI), a SQL parser with a T-SQL dialect. No SQL Server engine can run on this project's machines, so
 * the unit tests parse every statement the SQL Server adapters generate with it instead.
 *
 * `npx tsx dev/sqlglot.ts` installs it into .tools/sqlglot (what .ci/run does). The version is pinned: which
 * statements the parser accepts is part of what the tests assert, and must not change under them unannounced.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from './paths';

export const SQLGLOT_VERSION = '30.30.0';
export const SQLGLOT_DIR = join(PROJECT_ROOT, '.tools', 'sqlglot');

const PYTHONS = ['python3', 'python'];

/** True when .tools/sqlglot holds the pinned version. */
export function sqlglotInstalled(dir = SQLGLOT_DIR): boolean {
  if (!existsSync(join(dir, 'sqlglot', '__init__.py'))) return false;
  return readdirSync(dir).includes(`sqlglot-${SQLGLOT_VERSION}.dist-info`);
}

export function installSqlglot(dir = SQLGLOT_DIR): void {
  if (sqlglotInstalled(dir)) return;
  let lastError: unknown = null;
  for (const python of PYTHONS) {
    try {
      execFileSync(
        python,
        ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--upgrade', '--target', dir, `sqlglot==${SQLGLOT_VERSION}`],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      if (sqlglotInstalled(dir)) return;
    } catch (err) {
      lastError = err;
    }
  }
  throw new Error(`could not install sqlglot ${SQLGLOT_VERSION} into ${dir} with pip`, { cause: lastError });
}

export interface ParseInput {
  name: string;
  sql: string;
}

export interface ParseOutcome {
  name: string;
  /** The parser's error, or null when every statement of the text parsed. */
  error: string | null;
  /**
   * Statements sqlglot did not understand but kept as an opaque `Command` (it does so for syntax it does not
   * know, e.g. ALTER DATABASE ... SET CHANGE_TRACKING): not a parse error, and not a check either.
   */
  opaque: boolean;
  /** The kinds of the parsed statements, e.g. ['Declare', 'Select']. */
  kinds: string[];
}

/**
 * One Python process for all statements: reads [{name, sql}] as JSON on stdin, prints one outcome per statement.
 * Warnings (sqlglot logs its Command fallbacks) are captured into `opaque`, not printed.
 */
const PARSE_SCRIPT = String.raw`
import json, logging, sys
import sqlglot
from sqlglot import exp

class Fallbacks(logging.Handler):
    def __init__(self):
        super().__init__()
        self.count = 0
    def emit(self, record):
        if 'Falling back to parsing as a' in record.getMessage():
            self.count += 1

handler = Fallbacks()
logger = logging.getLogger('sqlglot')
logger.addHandler(handler)
logger.propagate = False

out = []
for item in json.load(sys.stdin):
    handler.count = 0
    try:
        trees = [t for t in sqlglot.parse(item['sql'], read='tsql', error_level=sqlglot.ErrorLevel.RAISE) if t is not None]
        opaque = handler.count > 0 or any(isinstance(node, exp.Command) for tree in trees for node in tree.walk())
        out.append({'name': item['name'], 'error': None, 'opaque': opaque, 'kinds': [type(t).__name__ for t in trees]})
    except Exception as e:
        out.append({'name': item['name'], 'error': type(e).__name__ + ': ' + str(e), 'opaque': False, 'kinds': []})
json.dump(out, sys.stdout)
`;

/** Parses each text with sqlglot's tsql dialect. Throws when sqlglot is not installed (it never skips). */
export function parseTsql(inputs: ParseInput[], dir = SQLGLOT_DIR): ParseOutcome[] {
  if (!sqlglotInstalled(dir)) {
    throw new Error(`sqlglot ${SQLGLOT_VERSION} is not installed in ${dir}: run \`npx tsx dev/sqlglot.ts\` (.ci/run does)`);
  }
  const env = { ...process.env, PYTHONPATH: dir, PYTHONIOENCODING: 'utf-8' };
  let lastError: unknown = null;
  for (const python of PYTHONS) {
    try {
      const stdout = execFileSync(python, ['-c', PARSE_SCRIPT], { input: JSON.stringify(inputs), env, maxBuffer: 64 * 1024 * 1024 });
      return JSON.parse(stdout.toString('utf8')) as ParseOutcome[];
    } catch (err) {
      lastError = err;
    }
  }
  throw new Error('could not run sqlglot with python3 or python', { cause: lastError });
}

if (require.main === module) {
  installSqlglot();
  console.log(`sqlglot ${SQLGLOT_VERSION}: ${SQLGLOT_DIR}`);
}
