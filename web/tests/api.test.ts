import { describe, expect, it } from 'vitest';
import { Api, ApiError, buildUrl, errorMessage, projectPath } from '../src/api';

describe('errorMessage', () => {
  it("shows PostHog's detail", () => {
    const body = { type: 'authentication_error', code: 'authentication_failed', detail: 'Personal API key found in request Authorization header is invalid.', attr: null };
    expect(errorMessage(401, body)).toBe('Personal API key found in request Authorization header is invalid.');
  });
  it('names the field of a validation error', () => {
    expect(errorMessage(400, { type: 'validation_error', code: 'invalid_input', detail: 'A valid integer is required.', attr: 'limit' }))
      .toBe('limit: A valid integer is required.');
  });
  it('falls back to the status without a body, and to unreachable for status 0', () => {
    expect(errorMessage(502, null)).toBe('The server answered HTTP 502.');
    expect(errorMessage(0, null)).toBe('The server could not be reached.');
  });
});

describe('buildUrl', () => {
  it('encodes values and drops empty ones', () => {
    expect(buildUrl('/api/projects/1/insights/', { search: 'a&b c', favorited: 'true', offset: 0, x: '', y: null }))
      .toBe('/api/projects/1/insights/?search=a%26b%20c&favorited=true&offset=0');
    expect(buildUrl('/p/?a=1', { b: 2 })).toBe('/p/?a=1&b=2');
    expect(buildUrl('/p/')).toBe('/p/');
  });
  it('builds project paths', () => {
    expect(projectPath(7, 'insights/12/')).toBe('/api/projects/7/insights/12/');
  });
});

describe('Api', () => {
  const calls: { url: string; init: RequestInit }[] = [];
  const fake = (status: number, body: unknown) => async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
  };
  it('sends the key only in the Authorization header', async () => {
    calls.length = 0;
    const api = new Api('phx_secret', fake(200, { count: 0 }));
    await api.get('/api/projects/', { limit: 5 });
    expect(calls[0].url).toBe('/api/projects/?limit=5');
    expect((calls[0].init.headers as Record<string, string>).Authorization).toBe('Bearer phx_secret');
    expect(calls[0].url).not.toContain('phx_secret');
  });
  it('posts JSON bodies', async () => {
    calls.length = 0;
    await new Api('k', fake(200, { result: [] })).post('/x/', { date_from: '-7d' });
    expect(calls[0].init.method).toBe('POST');
    expect(JSON.parse(calls[0].init.body as string)).toEqual({ date_from: '-7d' });
  });
  it('answers null for an empty body (201 without content)', async () => {
    const api = new Api('k', async () => new Response('', { status: 201 }));
    expect(await api.post('/api/projects/1/insights/2/viewed/', {})).toBeNull();
  });
  it('sends no Authorization without a key (shared links)', async () => {
    calls.length = 0;
    await new Api(null, fake(200, {})).get('/shared/abc.json');
    expect((calls[0].init.headers as Record<string, string>).Authorization).toBeUndefined();
  });
  it('raises ApiError with the detail', async () => {
    const api = new Api('bad', fake(403, { type: 'authentication_error', code: 'permission_denied', detail: "API key missing required scope 'insight:read'", attr: null }));
    await expect(api.get('/x/')).rejects.toThrow("API key missing required scope 'insight:read'");
    await expect(api.get('/x/')).rejects.toBeInstanceOf(ApiError);
  });
  it('turns a network failure into status 0', async () => {
    const api = new Api('k', async () => { throw new TypeError('fetch failed'); });
    await expect(api.get('/x/')).rejects.toMatchObject({ status: 0, message: 'The server could not be reached.' });
  });
});
