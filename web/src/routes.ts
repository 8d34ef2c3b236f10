// The page's addresses. The signed-in page routes by the URL hash (nginx serves one index.html at
// `/`); a shared insight is the path /shared/<token> (?embed drops the chrome).

export type Route =
  | { page: 'signin' }
  | { page: 'projects' }
  | { page: 'list'; projectId: number; search: string; favorited: boolean; pageNo: number }
  | { page: 'insight'; projectId: number; insightId: string }
  | { page: 'new'; projectId: number }
  | { page: 'shared'; token: string; embed: boolean };

export function parseRoute(pathname: string, search: string, hash: string, signedIn: boolean): Route {
  const shared = /^\/shared\/([A-Za-z0-9_-]+)\/?$/.exec(pathname);
  if (shared) return { page: 'shared', token: shared[1], embed: new URLSearchParams(search).has('embed') };
  if (!signedIn) return { page: 'signin' };
  const [path, qs = ''] = hash.replace(/^#/, '').split('?');
  const q = new URLSearchParams(qs);
  let m = /^\/project\/(\d+)\/insight\/([A-Za-z0-9]+)$/.exec(path);
  if (m) return { page: 'insight', projectId: Number(m[1]), insightId: m[2] };
  m = /^\/project\/(\d+)\/new$/.exec(path);
  if (m) return { page: 'new', projectId: Number(m[1]) };
  m = /^\/project\/(\d+)$/.exec(path);
  if (m) {
    return {
      page: 'list',
      projectId: Number(m[1]),
      search: q.get('search') ?? '',
      favorited: q.get('favorited') === '1',
      pageNo: Math.max(0, Number(q.get('page') ?? 0) || 0),
    };
  }
  return { page: 'projects' };
}

export function listHash(projectId: number, search: string, favorited: boolean, pageNo: number): string {
  const q = new URLSearchParams();
  if (search) q.set('search', search);
  if (favorited) q.set('favorited', '1');
  if (pageNo > 0) q.set('page', String(pageNo));
  const s = q.toString();
  return `#/project/${projectId}${s ? `?${s}` : ''}`;
}

export function insightHash(projectId: number, insightId: number | string): string {
  return `#/project/${projectId}/insight/${insightId}`;
}

/** The public page of a sharing access token, absolute. */
export function sharedUrl(origin: string, token: string, embed = false): string {
  return `${origin}/shared/${encodeURIComponent(token)}${embed ? '?embed' : ''}`;
}
