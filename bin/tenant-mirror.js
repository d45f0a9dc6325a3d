#!/usr/bin/env -S node --max-semi-space-size=2
// The package's command: runs the TypeScript CLI through tsx (no build step to forget). The shebang's Node flags
// are WORKER_NODE_FLAGS (src/worker.ts), which a long-running worker is measured with; a unit test keeps the two
// in step.
require('tsx/cjs');
require('../src/cli/main.ts');
