/** Sessions for the policy tests. */
import type { SessionContext } from '../../../shared/control-plane.ts';

export const ISSUER = 'https://issuer.example';

export function session(
  overrides: Partial<SessionContext> & { groups?: string[]; name?: string } = {},
): SessionContext {
  const { groups, name, ...rest } = overrides;
  return {
    sessionId: 'sess-1',
    principal: principal(name ?? 'dev@example.com', groups ?? ['engineering'], 'person'),
    role: 'developer',
    roles: ['developer'],
    database: 'app',
    applicationName: 'psql',
    ...rest,
  };
}

export const developer = session();
export const admin = session({
  name: 'admin@example.com',
  groups: ['platform'],
  role: 'admin',
  roles: ['admin'],
});
export const agent: SessionContext = {
  ...session({ name: 'cursor-agent@example.com', groups: ['agents'] }),
  principal: principal('cursor-agent@example.com', ['agents'], 'agent'),
};

/** A principal of ISSUER whose verified email is `name` (when it has an @), subject `sub|<name>`. */
export function principal(
  name: string,
  groups: string[],
  actor: 'person' | 'agent' = 'person',
): SessionContext['principal'] {
  return {
    name,
    issuer: ISSUER,
    subject: `sub|${name}`,
    ...(name.includes('@') && { email: name }),
    groups,
    actor,
  };
}
