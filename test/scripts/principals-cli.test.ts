import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { principalsCommand } from '../../scripts/cli/principals.ts';
import type { DevIssuer } from '../../scripts/local/oidc-issuer.ts';
import { type ApiStack, startApiStack } from '../fixtures/api-stack.ts';

const audience = 'pgwarden';
const serviceToken = 'principals-cli-service-token-0123456789';
const prefix = 'pcli-';

let stack: ApiStack;
let issuer: DevIssuer;
let apiUrl = '';

beforeAll(async () => {
  stack = await startApiStack({ prefix, audience, serviceToken });
  ({ issuer, apiUrl } = stack);
}, 60_000);

afterAll(() => stack?.stop());

const token = (email: string, groups: string[]) =>
  issuer.issueToken({ email, groups, ttlSeconds: 600, audience });

async function cli(args: string[], bearer: string) {
  let out = '';
  let err = '';
  const code = await principalsCommand(args, {
    out: (text) => {
      out += text;
    },
    err: (text) => {
      err += text;
    },
    env: { PGWARDEN_API_URL: apiUrl, PGWARDEN_TOKEN: bearer },
  });
  return { code, out, err };
}

async function listApprovals(bearer: string): Promise<number> {
  return (
    await fetch(`${apiUrl}/v1/approvals?status=pending`, { headers: { authorization: `Bearer ${bearer}` } })
  ).status;
}

describe('pgwarden principals', () => {
  it('finds a person by email and disables them: their valid token is refused from then on', async () => {
    const admin = await token('root@example.com', ['admins']);
    const reviewer = await token('rita@example.com', ['reviewers']);
    expect(await listApprovals(reviewer)).toBe(200); // pgwarden learns rita from this call

    const shown = await cli(['show', '--email', 'RITA@example.com'], admin);
    expect(shown).toMatchObject({ code: 0, err: '' });
    expect(shown.out).toContain(
      `${issuer.issuerUrl}#dev|rita@example.com  rita@example.com <rita@example.com>`,
    );
    expect(shown.out).toContain('status   enabled');

    const disabled = await cli(
      [
        'disable',
        '--issuer',
        issuer.issuerUrl,
        '--subject',
        'dev|rita@example.com',
        '--reason',
        'left the team',
      ],
      admin,
    );
    expect(disabled.code).toBe(0);
    expect(disabled.out).toMatch(/status {3}disabled on .* by root@example.com: left the team/);
    expect(await listApprovals(reviewer)).toBe(401);

    await cli(['enable', '--issuer', issuer.issuerUrl, '--subject', 'dev|rita@example.com'], admin);
    expect(await listApprovals(reviewer)).toBe(200);
  });

  it('sets groups: a token issued before the change no longer carries the removed group', async () => {
    const admin = await token('root@example.com', ['admins']);
    const reviewer = await token('sam@example.com', ['reviewers']);
    expect(await listApprovals(reviewer)).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1_100)); // the change must be after the token's iat (seconds)
    const changed = await cli(
      ['groups', '--issuer', issuer.issuerUrl, '--subject', 'dev|sam@example.com', '--groups', 'engineering'],
      admin,
    );
    expect(changed.out).toContain('groups   engineering');
    expect(await listApprovals(reviewer)).toBe(403);
  });

  it('is for admins only', async () => {
    const engineer = await token('eve@example.com', ['engineering']);
    const result = await cli(
      ['disable', '--issuer', issuer.issuerUrl, '--subject', 'dev|root@example.com'],
      engineer,
    );
    expect(result.code).toBe(1);
    expect(result.err).toMatch(/refused: .*manage principals/);
  });
});
