/** `pgwarden policy apply|show|history` failing before the network (the happy path: test/e2e/policy-reload). */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCommand } from '../fixtures/run-command.ts';

const cli = (env: Record<string, string>, ...args: string[]) =>
  runCommand('npx', ['tsx', 'scripts/pgwarden.ts', 'policy', ...args], {
    env: { PGWARDEN_API_URL: 'http://127.0.0.1:1', PGWARDEN_TOKEN: '', ...env },
    timeoutMs: 60_000,
  });

describe('pgwarden policy apply', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgwarden-cli-policy-'));

  it('validates locally first: an invalid file is refused with its lines, without calling the API', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      'version: x\ndefault: { action: allow }\nrules:\n  - id: a\n    match: { kinds: [sleect] }\n    action: deny\n',
    );
    const out = await cli({ PGWARDEN_TOKEN: 'some-token' }, 'apply', file);
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(
      /line 5, column \d+: rules\[0\]\.match\.kinds\[0\]: unknown statement kind "sleect"/,
    );
    expect(out.stderr).not.toMatch(/cannot reach the API/);
  });

  it('asks for PGWARDEN_TOKEN, and says when the API cannot be reached', async () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(file, 'version: x\ndefault: { action: allow }\nrules: []\n');
    const noToken = await cli({}, 'apply', file);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/set PGWARDEN_TOKEN/);
    const down = await cli({ PGWARDEN_TOKEN: 'some-token' }, 'show');
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot reach the API at http:\/\/127\.0\.0\.1:1/);
  });
});
