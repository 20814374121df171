/** The operator CLI, run as a user runs it. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCommand } from '../fixtures/run-command.ts';

const cli = (...args: string[]) =>
  runCommand('npx', ['tsx', 'scripts/pgwarden.ts', ...args], { timeoutMs: 60_000 });

describe('pgwarden policy validate', () => {
  it('accepts the default pack and says what it holds', async () => {
    const out = await cli('policy', 'validate', 'shared/policy/default-policy.yaml');
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/valid policy version default-1, \d+ rules, default allow/);
  });

  it('names the line and field of each problem and exits 1', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'pgwarden-cli-')), 'bad.yaml');
    writeFileSync(
      file,
      [
        'version: "v2"',
        'default:',
        '  action: allow',
        'rules:',
        '  - id: x',
        '    match:',
        '      kinds: [nonsense]',
        '    action: deny',
        '',
      ].join('\n'),
    );
    const out = await cli('policy', 'validate', file);
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(
      /line 7, column \d+: rules\[0\]\.match\.kinds\[0\]: unknown statement kind "nonsense"/,
    );
  });

  it('prints the default pack as a starting point, and usage for anything else', async () => {
    const shown = await cli('policy', 'show-default');
    expect(shown.stdout).toContain('version: "default-1"');
    const usage = await cli('nonsense');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/usage: npm run -s pgwarden/);
  });
});
