/** `npm run tools`: makes sure the Temporal CLI and test server are available (installing them into .tools/ if not). */
import { temporalCliPath, temporalTestServerPath } from './binaries';

const cli = temporalCliPath();
const testServer = temporalTestServerPath();
console.log(`temporal CLI: ${cli ?? 'not found (the SDK will try to download it)'}`);
console.log(`temporal test server: ${testServer ?? 'not found (the SDK will try to download it)'}`);
