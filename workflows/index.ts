// The workflow bundle's entry: every workflow the worker registers.
export { tenantMirrorWorkflow } from './tenant-mirror';
