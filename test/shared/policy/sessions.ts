/** Sessions for the policy tests. */
import type { SessionContext } from '../../../shared/control-plane.ts';

export function session(
  overrides: Partial<SessionContext> & { groups?: string[]; name?: string } = {},
): SessionContext {
  const { groups, name, ...rest } = overrides;
  return {
    sessionId: 'sess-1',
    principal: { name: name ?? 'dev@example.com', groups: groups ?? ['engineering'], actor: 'person' },
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
  principal: { name: 'cursor-agent@example.com', groups: ['agents'], actor: 'agent' },
};
