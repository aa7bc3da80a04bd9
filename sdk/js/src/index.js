// The cocoon SDK for JavaScript and TypeScript (ESM, Node >= 18, no dependencies): boxes
// over cocoon's REST API, on a private `cocoon serve` unless given a URL. Types are in
// ../index.d.ts; docs/sdk-js.md is the guide.
export { Cocoon } from './client.js';
export { Attachment } from './attach.js';
export { Box } from './box.js';
export { Execution, ExecResult } from './exec.js';
export { CodeError, CodeExecution, Result } from './code.js';
export { Files } from './files.js';
export { Images, images } from './images.js';
export { Snapshots, snapshots } from './snapshots.js';
export { loadConfig } from './config.js';
export { Sandbox } from './sandbox.js';
export * from './errors.js';
