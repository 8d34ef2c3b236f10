// The page's only way to the data: PostHog's REST API on the same origin, with the personal API
// key in the Authorization header (never in a URL). Errors carry PostHog's `detail` in words.

export type Params = Record<string, string | number | boolean | null | undefined>;

export class ApiError extends Error {
  constructor(
    public status: number,
    public body: unknown,
  ) {
    super(errorMessage(status, body));
  }
}

/** PostHog's error body {type, code, detail, attr} → one sentence for the user. */
export function errorMessage(status: number, body: unknown): string {
  if (body && typeof body === 'object') {
    const b = body as Record<string, unknown>;
    if (typeof b.detail === 'string' && b.detail) {
      return typeof b.attr === 'string' && b.attr ? `${b.attr}: ${b.detail}` : b.detail;
    }
  }
  if (status === 0) return 'The server could not be reached.';
  return `The server answered HTTP ${status}.`;
}

/** path + query string; null/undefined/'' parameters are left out. */
export function buildUrl(path: string, params: Params = {}): string {
  const q = Object.entries(params)
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
  return q ? `${path}${path.includes('?') ? '&' : '?'}${q}` : path;
}

/** A JSON answer; null for an empty one (201 of insights/:id/viewed/). */
async function json<T>(res: Response): Promise<T> {
  const text = await res.text();
  return (text ? JSON.parse(text) : null) as T;
}

export type FetchFn = (url: string, init: RequestInit) => Promise<Response>;

export class Api {
  constructor(
    private key: string | null,
    private fetchFn: FetchFn = (u, i) => fetch(u, i),
  ) {}

  private async request(method: string, url: string, body?: unknown, accept = 'application/json'): Promise<Response> {
    const headers: Record<string, string> = { Accept: accept };
    if (this.key) headers.Authorization = `Bearer ${this.key}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await this.fetchFn(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      throw new ApiError(0, null);
    }
    if (!res.ok) {
      let parsed: unknown = null;
      try {
        parsed = await res.json();
      } catch {
        parsed = null;
      }
      throw new ApiError(res.status, parsed);
    }
    return res;
  }

  async get<T>(path: string, params?: Params): Promise<T> {
    return json<T>(await this.request('GET', buildUrl(path, params)));
  }

  async post<T>(path: string, body: unknown, params?: Params): Promise<T> {
    return json<T>(await this.request('POST', buildUrl(path, params), body));
  }

  async patch<T>(path: string, body: unknown): Promise<T> {
    return json<T>(await this.request('PATCH', path, body));
  }

  /** A CSV export (?format=csv) as text. */
  async postText(path: string, body: unknown, params?: Params): Promise<string> {
    return (await this.request('POST', buildUrl(path, params), body, 'text/csv')).text();
  }
}

/** The API paths of one project. */
export function projectPath(projectId: number | string, rest: string): string {
  return `/api/projects/${encodeURIComponent(String(projectId))}/${rest}`;
}
