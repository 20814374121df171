/**
 * `npm run -s pgwarden -- <command>`: the operator's command line. Composition root: reads argv and
 * files. Today: `policy validate FILE` (and `policy show-default`); audit and approval commands
 * come with their capabilities.
 */
import { readFileSync } from 'node:fs';
import { DEFAULT_POLICY_YAML } from '../shared/policy/default-policy.ts';
import { checkPolicyText, formatIssue } from '../shared/policy/parse-policy.ts';

const usage = `usage: npm run -s pgwarden -- policy validate FILE
       npm run -s pgwarden -- policy show-default

  policy validate FILE   check a policy document (YAML or JSON); prints each problem with its line
  policy show-default    print the default policy pack, a starting point for your own`;

function main(argv: string[]): number {
  const [area, command, file] = argv;
  if (area === 'policy' && command === 'show-default') {
    process.stdout.write(DEFAULT_POLICY_YAML);
    return 0;
  }
  if (area === 'policy' && command === 'validate' && file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      process.stderr.write(`pgwarden: cannot read ${file}: ${(error as Error).message}\n`);
      return 2;
    }
    const check = checkPolicyText(text);
    if (!check.ok) {
      process.stderr.write(`${file} is not a valid policy:\n`);
      for (const issue of check.issues) process.stderr.write(`  ${file}: ${formatIssue(issue)}\n`);
      return 1;
    }
    const { policy } = check;
    process.stdout.write(
      `${file}: valid policy version ${policy.version}, ${policy.rules.length} rules, default ${policy.default.action}\n`,
    );
    return 0;
  }
  process.stderr.write(`${usage}\n`);
  return argv.includes('--help') || argv.includes('-h') ? 0 : 2;
}

process.exitCode = main(process.argv.slice(2));
