/** `pgwarden policy ...`: check and show policy documents (apply comes with stored policies). */
import { readFileSync } from 'node:fs';
import { DEFAULT_POLICY_YAML } from '../../shared/policy/default-policy.ts';
import { checkPolicyText, formatIssue } from '../../shared/policy/parse-policy.ts';
import type { CliCommand } from './command.ts';

export const policyUsage = `  policy validate FILE   check a policy document (YAML or JSON); prints each problem with its line
  policy show-default    print the default policy pack, a starting point for your own`;

export const policyCommand: CliCommand = async ([command, file], io) => {
  if (command === 'show-default') {
    io.out(DEFAULT_POLICY_YAML);
    return 0;
  }
  if (command === 'validate' && file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      io.err(`pgwarden: cannot read ${file}: ${(error as Error).message}\n`);
      return 2;
    }
    const check = checkPolicyText(text);
    if (!check.ok) {
      io.err(`${file} is not a valid policy:\n`);
      for (const issue of check.issues) io.err(`  ${file}: ${formatIssue(issue)}\n`);
      return 1;
    }
    const { policy } = check;
    io.out(
      `${file}: valid policy version ${policy.version}, ${policy.rules.length} rules, default ${policy.default.action}\n`,
    );
    return 0;
  }
  return undefined;
};
