/**
 * Reads the first messages of a connection (startup packet, password) before the session
 * exists. Bytes beyond what was asked for are kept and handed on, so nothing the client sent
 * early is lost, and the socket is paused when the reader lets go of it.
 *
 * Nothing is buffered without bound before the session opens: once `maxBuffered` bytes wait
 * unread (a client sending megabytes after its password while the token is checked), the socket
 * is paused and TCP pushes back on the client. Every message read here is refused long before
 * that size, so a paused reader never waits for bytes it cannot get.
 */
import type net from 'node:net';
import { PgWardenError } from '../shared/errors.ts';

type Parse<T> = (data: Buffer) => { value: T; size: number } | null;

export class SetupReader {
  private buffered: Buffer = Buffer.alloc(0);
  private waiter:
    | { parse: Parse<unknown>; resolve: (v: unknown) => void; reject: (e: unknown) => void }
    | undefined;
  private failure: Error | undefined;
  private paused = false;
  private readonly onData = (chunk: Buffer) => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    this.tryResolve();
    if (this.buffered.length >= this.maxBuffered && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  };
  private readonly onEnd = () =>
    this.fail(new PgWardenError('AUTH_TOKEN_MISSING', 'the client closed the connection'));
  private readonly onError = (error: Error) => this.fail(error);

  constructor(
    private readonly socket: net.Socket,
    private readonly maxBuffered: number,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  read<T>(parse: Parse<T>): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.waiter = { parse, resolve: resolve as (v: unknown) => void, reject };
      this.tryResolve();
      if (this.paused && this.buffered.length < this.maxBuffered) {
        this.paused = false;
        this.socket.resume();
      }
    });
  }

  /** Bytes received and not read yet. */
  get leftover(): Buffer {
    return this.buffered;
  }

  /** Stops listening, pauses the socket and returns unread bytes. */
  detach(): Buffer {
    this.socket.pause();
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('close', this.onEnd);
    this.socket.removeListener('error', this.onError);
    const rest = this.buffered;
    this.buffered = Buffer.alloc(0);
    return rest;
  }

  private tryResolve(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    try {
      const result = waiter.parse(this.buffered);
      if (!result) return;
      this.buffered = this.buffered.subarray(result.size);
      this.waiter = undefined;
      waiter.resolve(result.value);
    } catch (error) {
      this.fail(error as Error);
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(error);
  }
}
