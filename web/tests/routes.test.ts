import { describe, expect, it } from 'vitest';
import { insightHash, listHash, parseRoute, sharedUrl } from '../src/routes';

describe('routes', () => {
  it('opens shared links without a key, with or without chrome', () => {
    expect(parseRoute('/shared/Ab_c-9', '', '', false)).toEqual({ page: 'shared', token: 'Ab_c-9', embed: false });
    expect(parseRoute('/shared/Ab_c-9/', '?embed', '', true)).toEqual({ page: 'shared', token: 'Ab_c-9', embed: true });
  });
  it('asks for a key first', () => {
    expect(parseRoute('/', '', '#/project/1/insight/5', false)).toEqual({ page: 'signin' });
  });
  it('reads the hash routes', () => {
    expect(parseRoute('/', '', '', true)).toEqual({ page: 'projects' });
    expect(parseRoute('/', '', '#/project/3/insight/Ab12Cd34', true)).toEqual({ page: 'insight', projectId: 3, insightId: 'Ab12Cd34' });
    expect(parseRoute('/', '', '#/project/3/new', true)).toEqual({ page: 'new', projectId: 3 });
    expect(parseRoute('/', '', '#/project/3?search=a%20b&favorited=1&page=2', true))
      .toEqual({ page: 'list', projectId: 3, search: 'a b', favorited: true, pageNo: 2 });
    expect(parseRoute('/', '', '#/project/3?page=-4', true)).toMatchObject({ pageNo: 0 });
  });
  it('round-trips the list hash', () => {
    const h = listHash(3, 'a b', true, 2);
    expect(parseRoute('/', '', h, true)).toEqual({ page: 'list', projectId: 3, search: 'a b', favorited: true, pageNo: 2 });
    expect(listHash(3, '', false, 0)).toBe('#/project/3');
    expect(insightHash(3, 9)).toBe('#/project/3/insight/9');
    expect(sharedUrl('http://h:1', 'tok', true)).toBe('http://h:1/shared/tok?embed');
  });
});
