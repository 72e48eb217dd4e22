// The REST API, read exactly as a BI tool reads it: bearer token, JSON rows, no private routes.

const TOKEN_KEY = 'iskpi.token';

export class AuthError extends Error {}

/** A refused request: ``status`` (403, 409, 422, …) and the API's message, shown as text. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

function url(path, params) {
  const out = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== '') out.searchParams.set(key, value);
  }
  return out.pathname + out.search;
}

function detailOf(body) {
  if (body && typeof body.detail === 'string') return body.detail;
  if (body && Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join('; ');
  if (body && body.detail && typeof body.detail.message === 'string') return body.detail.message;
  return '';
}

/** GETs of one rendering share their answers (a Map of promises, dropped on refresh). */
export class Api {
  constructor(token) {
    this.token = token;
    this.cache = new Map();
  }

  get(path, params) {
    const target = url(path, params);
    if (!this.cache.has(target)) {
      const request = this.fetchJson(target);
      request.catch(() => this.cache.delete(target));
      this.cache.set(target, request);
    }
    return this.cache.get(target);
  }

  async fetchJson(target) {
    const headers = { Accept: 'application/json' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const response = await fetch(target, { headers });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.status === 401) throw new AuthError(detailOf(body) || 'unauthorized');
    if (!response.ok) throw new Error(`${response.status} ${target}: ${detailOf(body)}`);
    return body;
  }

  /** A write (PUT, POST): its JSON answer, or an ApiError with the API's message. */
  async send(method, path, params, payload) {
    const headers = { Accept: 'application/json', 'Content-Type': 'application/json' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const response = await fetch(url(path, params), { method, headers, body: JSON.stringify(payload ?? {}) });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.status === 401) throw new AuthError(detailOf(body) || 'unauthorized');
    if (!response.ok) throw new ApiError(response.status, detailOf(body) || `${response.status}`);
    return body;
  }

  /** /v1/kpis rows. */
  async kpis(params) {
    return (await this.get('/v1/kpis', params)).data;
  }
}
