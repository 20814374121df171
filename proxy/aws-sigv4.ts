/**
 * The proxy's calls to the control-plane API, signed with AWS Signature Version 4 (service
 * `execute-api`) under the task's AWS identity. In AWS, API Gateway's IAM authorizer checks the
 * signature and the API accepts only the proxy's task role; locally the API checks the same
 * signature itself against a local key pair (functions/api/proxy-auth.ts), so the same code path
 * runs everywhere and no bearer token is needed or accepted.
 *
 * The signature covers the method, path, query, the host and x-amz-date headers, the content type
 * and the SHA-256 of the body: another body, path or time makes it invalid, and a signature older
 * than five minutes is refused (API Gateway, and the local verifier).
 */
import { randomUUID } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import {
  LOCAL_ACCESS_KEY_ID,
  LOCAL_SIGNING_REGION,
  NONCE_HEADER,
  NodeSha256,
  SIGNING_SERVICE,
} from '../shared/sigv4.ts';

/** The fetch the HTTP clients take (the same shape as the global fetch, Request inputs included). */
export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface SigningOptions {
  credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  region: string;
  /** the transport (default: the global fetch; local mode passes the API app's own) */
  fetch?: FetchLike;
  /** the signing time (tests) */
  now?: () => Date;
}

export function newSigner(credentials: SigningOptions['credentials'], region: string): SignatureV4 {
  // applyChecksum false: no x-amz-content-sha256 header; the body's hash is computed from the body
  // on both ends, so a header cannot claim the hash of another body.
  return new SignatureV4({
    credentials,
    region,
    service: SIGNING_SERVICE,
    sha256: NodeSha256,
    applyChecksum: false,
  });
}

/** A fetch that signs every request before sending it. */
export function signingFetch(options: SigningOptions): FetchLike {
  const signer = newSigner(options.credentials, options.region);
  const send: FetchLike = options.fetch ?? ((input, init) => fetch(input, init));
  return async (input, init) => {
    const request = input instanceof Request && init === undefined ? input : new Request(input, init);
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
    const url = new URL(request.url);
    const body = request.method === 'GET' || request.method === 'HEAD' ? undefined : await request.text();
    // A signed nonce makes every request unique, so the local verifier can refuse a replay without
    // refusing two honest requests that happen to be identical within a second.
    const headers: Record<string, string> = { host: url.host, [NONCE_HEADER]: randomUUID() };
    request.headers.forEach((value, name) => {
      headers[name] = value;
    });
    const query: Record<string, string | string[]> = {};
    for (const [name, value] of url.searchParams) {
      const seen = query[name];
      query[name] = seen === undefined ? value : [...[seen].flat(), value];
    }
    const signed = await signer.sign(
      {
        method: request.method,
        protocol: url.protocol,
        hostname: url.hostname,
        ...(url.port === '' ? {} : { port: Number(url.port) }),
        path: url.pathname,
        query,
        headers,
        ...(body === undefined ? {} : { body }),
      },
      options.now ? { signingDate: options.now() } : {},
    );
    const { host: _host, ...sendHeaders } = signed.headers as Record<string, string>;
    signal?.throwIfAborted(); // aborted while signing: do not send
    return send(url, {
      method: request.method,
      headers: sendHeaders,
      ...(body === undefined ? {} : { body }),
      // the caller's own signal: a Request's derived signal is held weakly and may never fire
      ...(signal ? { signal } : {}),
    });
  };
}

/** Local mode and tests: the proxy's calls signed with the local key pair. */
export function localSigningFetch(secret: string, transport?: FetchLike): FetchLike {
  return signingFetch({
    credentials: { accessKeyId: LOCAL_ACCESS_KEY_ID, secretAccessKey: secret },
    region: LOCAL_SIGNING_REGION,
    ...(transport && { fetch: transport }),
  });
}
