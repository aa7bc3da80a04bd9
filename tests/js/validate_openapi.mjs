// Validates an OpenAPI document (docs/openapi.yaml) with @apidevtools/swagger-parser:
// the OpenAPI 3.1 schema, every $ref resolving, unique operationIds and path parameters
// that match their templates. Run by tests/integration/test_openapi.py.
// Usage: node validate_openapi.mjs NODE_MODULES_DIR DOCUMENT
// Exit 0 when valid (prints a one-line summary), 1 with the parser's message when not.
import { createRequire } from "node:module";
import path from "node:path";

const [nodeModules, document] = process.argv.slice(2);
if (!nodeModules || !document) {
  console.error("usage: node validate_openapi.mjs NODE_MODULES_DIR DOCUMENT");
  process.exit(2);
}
// The packages live in scripts/npm-deps' cache, not beside this script.
const require = createRequire(path.join(path.resolve(nodeModules), "resolve-from-here.js"));
const SwaggerParser = require("@apidevtools/swagger-parser");

try {
  const api = await SwaggerParser.validate(path.resolve(document));
  let operations = 0;
  for (const item of Object.values(api.paths ?? {}))
    for (const method of ["get", "head", "post", "put", "delete", "patch", "options", "trace"])
      if (item[method]) operations++;
  console.log(`valid: ${api.info.title} ${api.info.version} (OpenAPI ${api.openapi}), ` +
              `${Object.keys(api.paths ?? {}).length} paths, ${operations} operations`);
} catch (err) {
  console.error(`invalid: ${err.message}`);
  process.exit(1);
}
