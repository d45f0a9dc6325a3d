#!/usr/bin/env node
// The package's command: runs the TypeScript CLI through tsx (no build step to forget).
require('tsx/cjs');
require('../src/cli/main.ts');
