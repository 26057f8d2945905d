// The clipd HTTP API, as documented in /openapi.json: a fetch wrapper that
// adds the API key, turns error bodies into ApiError, and asks the user for a
// key when the server answers 401.

const KEY_STORAGE = 'clipd.apiKey';

export class ApiError extends Error {
	constructor(status, code, message) {
		super(message);
		this.status = status;
		this.code = code;
	}
}

export function getKey() {
	try {
		return localStorage.getItem(KEY_STORAGE) || '';
	} catch {
		return '';
	}
}

export function setKey(key) {
	try {
		if (key)
			localStorage.setItem(KEY_STORAGE, key);
		else
			localStorage.removeItem(KEY_STORAGE);
	} catch {
		/* storage disabled: the key lives for this page only */
	}
	memoryKey = key || '';
	for (const fn of keyListeners)
		fn(memoryKey);
}

let memoryKey = getKey();
const keyListeners = new Set();
export function onKeyChange(fn) { keyListeners.add(fn); }
export function currentKey() { return memoryKey; }

// The UI registers a function that shows the key dialog:
// ({rejected}) => Promise<string|null> (null: the user cancelled).
let keyPrompt = null;
let pendingPrompt = null;
export function setKeyPrompt(fn) { keyPrompt = fn; }

// One dialog for any number of requests that got 401 at the same time.
export function requestKey(rejected) {
	if (!keyPrompt)
		return Promise.resolve(false);
	if (!pendingPrompt) {
		pendingPrompt = keyPrompt({ rejected }).then((key) => {
			pendingPrompt = null;
			if (key)
				setKey(key);
			return !!key;
		});
	}
	return pendingPrompt;
}

export function authHeaders(headers = {}) {
	const h = new Headers(headers);
	if (memoryKey)
		h.set('Authorization', `Bearer ${memoryKey}`);
	return h;
}

export async function errorFrom(res) {
	let code = 'http_' + res.status, message = `${res.status} ${res.statusText || 'error'}`;
	try {
		const body = await res.json();
		if (body && body.error) {
			code = body.error.code || code;
			message = body.error.message || message;
		}
	} catch {
		/* not JSON */
	}
	return new ApiError(res.status, code, message);
}

// fetch() with the key; on 401 asks for a key and tries again. Resolves with
// the Response when it is 2xx, rejects with ApiError otherwise.
export async function api(path, { method = 'GET', json, body, headers, signal } = {}) {
	for (let attempt = 0; ; attempt++) {
		const h = authHeaders(headers);
		let payload = body;
		if (json !== undefined) {
			payload = JSON.stringify(json);
			if (!h.has('Content-Type'))
				h.set('Content-Type', 'application/json');
		}
		const sentKey = memoryKey;
		let res;
		try {
			res = await fetch(path, { method, headers: h, body: payload, signal, cache: 'no-cache' });
		} catch (e) {
			if (e.name === 'AbortError')
				throw e;
			throw new ApiError(0, 'network', 'Cannot reach the clipd server.');
		}
		if (res.status === 401 && attempt < 5) {
			// Another request may have got a key meanwhile.
			if (memoryKey && memoryKey !== sentKey)
				continue;
			if (await requestKey(!!sentKey))
				continue;
		}
		if (!res.ok)
			throw await errorFrom(res);
		return res;
	}
}

export async function apiJson(path, opts) {
	const res = await api(path, opts);
	if (res.status === 204)
		return null;
	return res.json();
}

// params: an object (one value per name) and, optionally, a list of
// [name, value] pairs appended after it (repeated names: filters, not=).
export const query = (params, pairs = []) => {
	const q = new URLSearchParams();
	for (const [k, v] of Object.entries(params))
		if (v !== undefined && v !== null && v !== '')
			q.set(k, String(v));
	for (const [k, v] of pairs)
		q.append(k, String(v));
	const s = q.toString();
	return s ? `?${s}` : '';
};

// The filter bar's state as query pairs: filter.KEY=VALUE for each chip
// (KEY as the API reads it: dots walk into nested objects), then
// taken_after/taken_before for the date range and library=NAME.
export function filterPairs(filters) {
	if (!filters)
		return [];
	const out = (filters.chips || []).map(({ key, value }) =>
		[`filter.${key}`, value]);
	if (filters.takenAfter)
		out.push(['taken_after', filters.takenAfter]);
	if (filters.takenBefore)
		out.push(['taken_before', filters.takenBefore]);
	if (filters.library)
		out.push(['library', filters.library]);
	return out;
}

export const paths = {
	info: () => '/info',
	list: (limit, cursor, filters) => `/images${query({ limit, cursor }, filterPairs(filters))}`,
	image: (id) => `/images/${encodeURIComponent(id)}`,
	file: (id) => `/images/${encodeURIComponent(id)}/file`,
	thumb: (id, size = 256) => `/images/${encodeURIComponent(id)}/thumbnail?size=${size}`,
	similar: (id, k) => `/images/${encodeURIComponent(id)}/similar${query({ k })}`,
	search: (q, k, filters, nots = []) =>
		`/search${query({ q, k }, [...nots.map((t) => ['not', t]), ...filterPairs(filters)])}`,
	upload: (filename) => `/images${query({ filename })}`,
	classify: () => '/classify',
	libraries: () => '/libraries',
	libraryScan: (name) => `/libraries/${encodeURIComponent(name)}/scan`,
	libraryErrors: (name, limit) => `/libraries/${encodeURIComponent(name)}/errors${query({ limit })}`,
};

// Images for <img> elements. Without a key an <img src> loads the URL
// directly (the browser caches by ETag); with a key the bytes are fetched
// with the Authorization header and shown through a blob: URL, since an
// <img> cannot send headers. One ImageLoader per view: clear() revokes its
// blob: URLs and cancels fetches still running.
export class ImageLoader {
	constructor() {
		this.urls = new Set();
		this.ctrl = new AbortController();
		this.observer = null;
	}

	load(img, path, { lazy = true } = {}) {
		img.classList.remove('failed');
		img.addEventListener('error', () => img.classList.add('failed'), { once: true });
		if (!memoryKey) {
			if (lazy)
				img.loading = 'lazy';
			img.src = path;
			return;
		}
		img.dataset.path = path;
		if (lazy && 'IntersectionObserver' in window) {
			if (!this.observer) {
				this.observer = new IntersectionObserver((entries) => {
					for (const e of entries) {
						if (!e.isIntersecting)
							continue;
						this.observer.unobserve(e.target);
						this.fetchInto(e.target, e.target.dataset.path);
					}
				}, { rootMargin: '1200px' });
			}
			this.observer.observe(img);
		} else {
			this.fetchInto(img, path);
		}
	}

	async fetchInto(img, path) {
		const signal = this.ctrl.signal;
		try {
			const res = await api(path, { signal });
			const blob = await res.blob();
			if (signal.aborted)
				return;
			const url = URL.createObjectURL(blob);
			this.urls.add(url);
			img.src = url;
		} catch (e) {
			if (e.name !== 'AbortError')
				img.classList.add('failed');
		}
	}

	clear() {
		this.ctrl.abort();
		this.ctrl = new AbortController();
		if (this.observer)
			this.observer.disconnect();
		this.observer = null;
		for (const u of this.urls)
			URL.revokeObjectURL(u);
		this.urls.clear();
	}
}
