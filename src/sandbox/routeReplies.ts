import { randomUUID } from 'node:crypto';
import type { RouteRequest, RouteResponse } from './routeExchange';

/** A JSON answer. */
export function json(res: RouteResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(value));
}

/** An error as Microsoft Graph answers it, dated by the tenant's clock (`nowMs`). */
export function graphError(
  nowMs: number,
  req: RouteRequest,
  res: RouteResponse,
  status: number,
  code: string,
  message: string,
): void {
  const requestId = randomUUID();
  json(res, status, {
    error: {
      code,
      message,
      ...(status === 400 ? { details: [] } : {}),
      innerError: {
        date: new Date(nowMs).toISOString().slice(0, 19),
        'request-id': requestId,
        'client-request-id': String(req.headers['client-request-id'] ?? requestId),
      },
    },
  });
}
