// The results view: the newest images (cursor pagination, infinite scroll)
// when the search box is empty, text search results as the user types
// ("More results" asks again with a larger k, up to the server's max_k).
// The filter bar's chips and date range apply to both.

import { $, h, altText, displayName, formatScore, formatAge, formatMs, plural, announce, busy } from './dom.js';
import { apiJson, paths, ImageLoader } from './api.js';

const params = new URLSearchParams(location.search);
const clampInt = (v, lo, hi, def) => {
	const n = parseInt(v, 10);
	return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : def;
};
// ?limit= and ?k= tune the page size and the number of search results.
export const PAGE_SIZE = clampInt(params.get('limit'), 1, 200, 30);
export const SEARCH_K = clampInt(params.get('k'), 1, 1000, 48);
const SKELETONS = 8;
export const MAX_K_DEFAULT = 1000;   // the server's --max-k default; GET /info's limits.max_k when known
const SCROLL_MARGIN = 600;

// One tile: <li class="tile" data-id="ID"> with a button around the
// thumbnail (the image's alt text names the button) and a caption.
export function renderTile(img, { loader, onOpen, score, showAge = false }) {
	const picture = h('img', { alt: altText(img), width: 256, height: 256, decoding: 'async' });
	loader.load(picture, paths.thumb(img.id, 256));
	const caption = h('div', { class: 'caption' },
		h('span', { class: 'name', title: displayName(img), text: displayName(img) }));
	if (typeof score === 'number')
		caption.append(h('span', { class: 'score', title: 'cosine similarity', text: formatScore(score) }));
	else if (showAge && img.created_at)
		caption.append(h('span', { class: 'when', text: formatAge(img.created_at) }));
	return h('li', { class: 'tile', dataset: { id: img.id } },
		h('button', { class: 'thumb', type: 'button', onclick: () => onOpen(img) }, picture),
		caption);
}

// The search box's text: words written -word (or -"two words") are
// negative terms, sent as not=; the rest is the query.
export function parseQuery(input) {
	const nots = [];
	const text = (input || '').replace(/(^|\s)-(?:"([^"]*)"|(\S+))/g, (all, lead, quoted, word) => {
		const t = (quoted !== undefined ? quoted : word).trim();
		if (t)
			nots.push(t);
		return lead;
	}).replace(/\s+/g, ' ').trim();
	return { text, nots };
}

function skeletonTiles(n) {
	const out = [];
	for (let i = 0; i < n; i++)
		out.push(h('li', { class: 'tile skeleton', 'aria-hidden': 'true' },
			h('div', { class: 'thumb' }), h('div', { class: 'caption' })));
	return out;
}

export class Results {
	constructor({ onOpen, onError, onUpload }) {
		this.onOpen = onOpen;
		this.onError = onError;       // (message, retry) or (null) to clear
		this.onUpload = onUpload;     // the empty state's "Choose images" button
		this.grid = $('grid');
		this.loader = new ImageLoader();
		this.query = '';
		this.items = [];
		this.next = null;
		this.gen = 0;
		this.ctrl = null;
		this.loadingMore = false;
		this.total = null;
		this.filters = { chips: [], takenAfter: '', takenBefore: '', library: '' };
		this.k = SEARCH_K;
		this.maxK = MAX_K_DEFAULT;
		this.more = false;

		$('load-more').addEventListener('click', () => this.loadMore());
		$('empty-action').addEventListener('click', () => this.emptyAction && this.emptyAction());
		// Infinite scroll: load the next page when the end of the grid comes
		// near the viewport (after scrolling, or right after a page was
		// added and the end is still in view).
		if ('IntersectionObserver' in window) {
			new IntersectionObserver((entries) => {
				if (entries.some((e) => e.isIntersecting) && this.mode === 'newest')
					this.loadMore();
			}, { rootMargin: `${SCROLL_MARGIN}px` }).observe($('more'));
		}
	}

	nearEnd() {
		return $('more').getBoundingClientRect().top < window.innerHeight + SCROLL_MARGIN;
	}

	autoMore() {
		requestAnimationFrame(() => {
			if (this.mode === 'newest' && this.next && this.nearEnd())
				this.loadMore();
		});
	}

	setTotal(n) {
		this.total = typeof n === 'number' ? n : null;
		this.renderMeta();
	}

	hasFilters() {
		const f = this.filters;
		return f.chips.length > 0 || !!f.takenAfter || !!f.takenBefore || !!f.library;
	}

	// Starts a new view: the newest images for an empty query, a search
	// otherwise, both under the filters. Older requests still running are
	// cancelled.
	async show(query) {
		this.query = (query || '').trim();
		const parsed = parseQuery(this.query);
		const gen = ++this.gen;
		this.k = Math.min(SEARCH_K, this.maxK);
		this.more = false;
		if (this.ctrl)
			this.ctrl.abort();
		this.ctrl = new AbortController();
		const signal = this.ctrl.signal;
		this.loadingMore = false;
		this.setBusy(true);
		$('results-title').textContent = this.query ? `Results for “${this.query}”` : 'Newest images';
		$('results-meta').textContent = this.query ? 'Searching…' : 'Loading…';
		if (!this.grid.children.length || this.grid.querySelector('.skeleton'))
			this.grid.replaceChildren(...skeletonTiles(SKELETONS));
		else
			this.grid.classList.add('stale');   // old results stay, dimmed, until the new ones come
		$('empty').hidden = true;
		$('load-more').hidden = true;
		try {
			if (this.query && !parsed.text) {
				// Only -words: nothing to search for, nothing to ask.
				this.mode = 'search';
				this.took = undefined;
				this.items = [];
				this.next = null;
			} else if (this.query) {
				const r = await apiJson(paths.search(parsed.text, this.k, this.filters, parsed.nots), { signal });
				if (gen !== this.gen)
					return;
				this.mode = 'search';
				this.took = r.took_ms;
				this.items = r.results || [];
				this.next = null;
				// A full page may have more behind it.
				this.more = this.items.length >= this.k && this.k < this.maxK;
				// The catalog's database out of reach: ids and scores only.
				this.degraded = !!r.catalog_unavailable;
			} else {
				const r = await apiJson(paths.list(PAGE_SIZE, undefined, this.filters), { signal });
				if (gen !== this.gen)
					return;
				this.mode = 'newest';
				this.items = r.items || [];
				this.next = r.next_cursor || null;
			}
			this.onError(this.mode === 'search' && this.degraded
				? 'The catalog database cannot be reached: these results come from this server\'s index alone, ' +
				  'without their details; uploads and edits wait until it is back.' : null);
			this.render();
			this.autoMore();
		} catch (e) {
			if (e.name === 'AbortError' || gen !== this.gen)
				return;
			this.items = [];
			this.next = null;
			this.loader.clear();
			this.grid.replaceChildren();
			$('results-meta').textContent = '';
			this.onError(null);
			this.showEmpty(this.query ? 'Search failed' : 'Images could not be loaded', e.message,
				{ error: true, action: 'Try again', onAction: () => this.show(this.query) });
		} finally {
			if (gen === this.gen) {
				this.setBusy(false);
				this.grid.classList.remove('stale');
			}
		}
	}

	refresh() {
		return this.show(this.query);
	}

	hasMore() {
		return this.mode === 'newest' ? !!this.next : this.mode === 'search' && this.more;
	}

	// The next page: the cursor's for the newest images; for a search the
	// same query again with k doubled (at most max_k), of which the results
	// not yet shown are appended.
	async loadMore() {
		if (!this.hasMore() || this.loadingMore)
			return;
		const gen = this.gen, cursor = this.next, mode = this.mode;
		this.loadingMore = true;
		this.setBusy(true);
		busy($('load-more'), true);
		try {
			let got;
			if (mode === 'search') {
				const k = Math.min(this.maxK, this.k * 2);
				const parsed = parseQuery(this.query);
				const r = await apiJson(paths.search(parsed.text, k, this.filters, parsed.nots), { signal: this.ctrl.signal });
				if (gen !== this.gen)
					return;
				got = r.results || [];
				this.k = k;
				this.took = r.took_ms;
				this.more = got.length >= k && k < this.maxK;
			} else {
				const r = await apiJson(paths.list(PAGE_SIZE, cursor, this.filters), { signal: this.ctrl.signal });
				if (gen !== this.gen)
					return;
				got = r.items || [];
				this.next = r.next_cursor || null;
			}
			const known = new Set(this.items.map((i) => String(i.id)));
			const fresh = got.filter((i) => !known.has(String(i.id)));
			this.items.push(...fresh);
			this.grid.append(...fresh.map((img) => this.tile(img)));
			this.renderMeta();
			$('load-more').hidden = !this.hasMore();
			announce(`Loaded ${plural(fresh.length, mode === 'search' ? 'more result' : 'more image')}`);
			this.autoMore();
		} catch (e) {
			if (e.name !== 'AbortError' && gen === this.gen)
				this.onError(`Could not load more images: ${e.message}`, () => this.loadMore());
		} finally {
			if (gen === this.gen) {
				this.loadingMore = false;
				this.setBusy(false);
				busy($('load-more'), false);
			}
		}
	}

	tile(img) {
		return renderTile(img, {
			loader: this.loader,
			onOpen: this.onOpen,
			score: this.mode === 'search' ? img.score : undefined,
			showAge: this.mode === 'newest',
		});
	}

	render() {
		this.loader.clear();
		this.grid.replaceChildren(...this.items.map((img) => this.tile(img)));
		this.renderMeta();
		$('load-more').hidden = !this.hasMore();
		if (!this.items.length) {
			if (this.mode === 'search' && !parseQuery(this.query).text)
				this.showEmpty('Nothing to search for', 'Words written -word leave out what they name; type what to look for too.');
			else if (this.mode === 'search')
				this.showEmpty(`No images match “${this.query}”`, 'Try other words, or upload more images.');
			else if (this.hasFilters())
				this.showEmpty('No images match the filters', 'Remove a filter or change the dates.');
			else
				this.showEmpty('No images yet', 'Drop images anywhere on this page, or choose some to upload.',
					{ action: 'Choose images…', onAction: this.onUpload });
		} else {
			$('empty').hidden = true;
		}
	}

	renderMeta() {
		const meta = $('results-meta');
		if (this.mode === 'search') {
			const n = this.items.length;
			meta.textContent = `${plural(n, 'result')}` +
				(typeof this.took === 'number' ? ` · ${formatMs(this.took)}` : '');
		} else if (this.mode === 'newest') {
			const n = this.items.length;
			meta.textContent = this.total !== null && this.total >= n && n && !this.hasFilters()
				? `${n} of ${plural(this.total, 'image')}`
				: plural(n, 'image');
		}
	}

	// The empty state, or (error: true) the error state, of the results area.
	showEmpty(title, text, { error = false, action = null, onAction = null } = {}) {
		$('empty-title').textContent = title;
		$('empty-text').textContent = text;
		$('empty').classList.toggle('error', error);
		$('empty').setAttribute('role', error ? 'alert' : 'status');
		$('empty-action').textContent = action || '';
		$('empty-action').hidden = !action;
		this.emptyAction = onAction;
		$('empty').hidden = false;
	}

	setBusy(busy) {
		this.grid.setAttribute('aria-busy', busy ? 'true' : 'false');
	}

	// After a delete: the tile goes away without reloading the view.
	remove(id) {
		const before = this.items.length;
		this.items = this.items.filter((i) => String(i.id) !== String(id));
		const el = this.grid.querySelector(`[data-id="${CSS.escape(String(id))}"]`);
		if (el)
			el.remove();
		if (this.total !== null && before !== this.items.length)
			this.total = Math.max(0, this.total - 1);
		if (!this.items.length)
			this.render();
		else
			this.renderMeta();
	}

	// After a metadata edit: the tile's alt text may change.
	update(img) {
		const i = this.items.findIndex((x) => String(x.id) === String(img.id));
		if (i < 0)
			return;
		this.items[i] = { ...this.items[i], ...img, score: this.items[i].score };
		const el = this.grid.querySelector(`[data-id="${CSS.escape(String(img.id))}"] img`);
		if (el)
			el.alt = altText(this.items[i]);
	}

	focusTile(id) {
		const b = this.grid.querySelector(`[data-id="${CSS.escape(String(id))}"] .thumb`);
		if (b) {
			b.focus();
			return true;
		}
		return false;
	}
}
