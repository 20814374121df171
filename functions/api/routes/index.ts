/**
 * The API's route groups beyond the proxy's own (sessions, decisions, events): audit queries,
 * policies, approvals, Slack. One list, used by the Lambda handler and by local mode alike, so both
 * serve the same routes. Each group applies its own auth per route (see ../auth.ts).
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { Hono } from 'hono';
import type { ControlPlane } from '../../../shared/control-plane.ts';
import type { Logger } from '../../../shared/logger.ts';
import type { TokenVerifier } from '../../../shared/ports.ts';
import type { AccessGroups } from '../auth.ts';

export interface RouteContext {
  /** verifies people's OIDC tokens (the same issuer and audience the proxy accepts) */
  verifier: TokenVerifier;
  dynamodb: DynamoDBClient;
  tablePrefix: string;
  access: AccessGroups;
  /** the proxy's service token, for routes the proxy calls */
  serviceToken: string;
  controlPlane: ControlPlane;
  now: () => Date;
  newId: () => string;
  logger: Logger;
}

export type RouteGroup = (app: Hono) => void;

export function apiRoutes(_ctx: RouteContext): RouteGroup[] {
  return [];
}
