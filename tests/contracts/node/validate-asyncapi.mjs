// Parse an AsyncAPI document with the official parser and print every diagnostic.
// Usage: node validate-asyncapi.mjs <asyncapi.json|yaml> [--allow-warnings]
// Exit status: 0 clean, 1 errors (or warnings unless --allow-warnings), 2 usage or I/O.
import { resolve } from 'node:path';
import { DiagnosticSeverity, Parser, fromFile } from '@asyncapi/parser';

const args = process.argv.slice(2);
const allowWarnings = args.includes('--allow-warnings');
const files = args.filter((a) => !a.startsWith('--'));
if (files.length !== 1) {
  console.error('usage: node validate-asyncapi.mjs <document> [--allow-warnings]');
  process.exit(2);
}
const path = resolve(files[0]);
const names = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

let output;
try {
  output = await fromFile(new Parser(), path, 'utf8').parse();
} catch (err) {
  console.error(`cannot read or parse ${path}: ${err?.message ?? err}`);
  process.exit(2);
}
const { document, diagnostics } = output;
const counts = { error: 0, warning: 0, info: 0, hint: 0 };
for (const d of diagnostics) {
  const severity = names[d.severity] ?? String(d.severity);
  counts[severity] = (counts[severity] ?? 0) + 1;
  const where = d.path?.length ? d.path.join('.') : '(document)';
  const line = d.range ? `:${d.range.start.line + 1}` : '';
  console.log(`${severity} ${d.code} @ ${where}${line}: ${d.message}`);
}
const version = document?.version?.() ?? 'unparsed';
console.log(
  `${path}: AsyncAPI ${version}; ${counts.error} error(s), ${counts.warning} warning(s), ` +
    `${counts.info} info, ${counts.hint} hint(s)`,
);
if (document === undefined || counts.error > 0 || (!allowWarnings && counts.warning > 0)) {
  process.exit(1);
}
