/** The checkout's root, where dev/ keeps its tools (.tools/) and data (.data/). */
import { resolve } from 'node:path';

export const PROJECT_ROOT = resolve(__dirname, '..');
