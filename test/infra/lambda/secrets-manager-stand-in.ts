/**
 * A local stand-in for the Secrets Manager API (GetSecretValue only, AWS JSON 1.1 protocol) on
 * 127.0.0.1. The Lambda entry points read their secrets by ARN at cold start with the real SDK
 * client; pointing that client here (AWS_ENDPOINT_URL_SECRETS_MANAGER) lets a test run them with
 * exactly the *_SECRET_ARN variables the stack deploys.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SecretsManagerStandIn {
  endpoint: string;
  /** every SecretId asked for, in order */
  reads: string[];
  stop(): Promise<void>;
}

export async function startSecretsManager(secrets: Record<string, string>): Promise<SecretsManagerStandIn> {
  const reads: string[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => {
      body += chunk;
    });
    request.on('end', () => {
      const reply = (status: number, payload: unknown) => {
        response.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        response.end(JSON.stringify(payload));
      };
      if (request.headers['x-amz-target'] !== 'secretsmanager.GetSecretValue') {
        reply(400, { __type: 'InvalidRequestException', message: 'only GetSecretValue is served here' });
        return;
      }
      const { SecretId } = JSON.parse(body) as { SecretId: string };
      reads.push(SecretId);
      const value = secrets[SecretId];
      if (value === undefined) {
        reply(400, {
          __type: 'ResourceNotFoundException',
          message: "Secrets Manager can't find the specified secret.",
        });
        return;
      }
      reply(200, { ARN: SecretId, Name: SecretId.split(':').pop(), SecretString: value, VersionId: 'v1' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    reads,
    stop: () =>
      new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve()))),
  };
}
