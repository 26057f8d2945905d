// clipd web front-end: the entry point. Wires the search box, the results
// grid, uploads, the detail dialog and the API-key dialog together.

import { $, h, debounce, plural } from './dom.js';
import { apiJson, paths, setKeyPrompt, setKey, currentKey, onKeyChange } from './api.js';
import { Results } from './grid.js';
import { Uploader } from './upload.js';
import { Detail } from './detail.js';
import { Libraries } from './library.js';

const SEARCH_DELAY_MS = 250;

// --- the API-key dialog --------------------------------------------------

let keyResolve = null;

function openKeyDialog({ rejected = false, manage = false } = {}) {
	const dialog = $('key-dialog');
	$('key-title').textContent = manage ? 'API key' : 'API key required';
	$('key-error').textContent = rejected ? 'The server did not accept that key. Check it and try again.' : '';
	$('key-forget').hidden = !manage || !currentKey();
	$('key-input').value = manage ? currentKey() : '';
	if (!dialog.open)
		dialog.showModal();
	$('key-input').focus();
	return new Promise((resolve) => { keyResolve = resolve; });
}

function finishKeyDialog(key) {
	const resolve = keyResolve;
	keyResolve = null;
	if ($('key-dialog').open)
		$('key-dialog').close();
	if (resolve)
		resolve(key);
}

$('key-form').addEventListener('submit', (e) => {
	e.preventDefault();
	const key = $('key-input').value.trim();
	if (!key) {
		$('key-error').textContent = 'Enter a key.';
		$('key-input').focus();
		return;
	}
	finishKeyDialog(key);
});
$('key-cancel').addEventListener('click', () => finishKeyDialog(null));
$('key-dialog').addEventListener('cancel', (e) => {
	e.preventDefault();
	finishKeyDialog(null);
});
$('key-forget').addEventListener('click', () => {
	setKey('');
	finishKeyDialog(null);
	reload();
});
$('key-button').addEventListener('click', async () => {
	const key = await openKeyDialog({ manage: true });
	if (key && key !== currentKey()) {
		setKey(key);
		reload();
	}
	$('key-button').focus();
});
setKeyPrompt(({ rejected }) => openKeyDialog({ rejected }));
onKeyChange((key) => { $('key-button').hidden = !key; });
$('key-button').hidden = !currentKey();

// --- the error banner ----------------------------------------------------

let bannerRetry = null;
function showError(message, retry) {
	if (!message) {
		$('banner').hidden = true;
		bannerRetry = null;
		return;
	}
	$('banner-text').textContent = message;
	bannerRetry = retry || null;
	$('banner-retry').hidden = !retry;
	$('banner').hidden = false;
}
$('banner-retry').addEventListener('click', () => {
	const retry = bannerRetry;
	showError(null);
	if (retry)
		retry();
});

// --- server info in the footer --------------------------------------------

function imageCount(info) {
	for (const v of [info.images, info.image_count, info.count, info.counts && info.counts.images])
		if (typeof v === 'number')
			return v;
	return null;
}

async function loadInfo() {
	try {
		const info = await apiJson(paths.info());
		const m = info.model && typeof info.model === 'object' ? info.model : { name: info.model };
		const parts = [`clipd ${info.version || ''}`.trim()];
		const dim = m.dim || info.dimension;
		if (m.name)
			parts.push(`model ${m.name}${dim ? ` (${dim}-d)` : ''}`);
		const n = imageCount(info);
		if (n !== null)
			parts.push(plural(n, 'image'));
		const index = info.index && typeof info.index === 'object' ? info.index.type : info.index;
		if (index)
			parts.push(`${index} index`);
		$('server-info').textContent = parts.join(' · ');
		// The server's own warning, e.g. a test model whose results mean nothing.
		$('notice-text').textContent = info.warning ? String(info.warning) : '';
		$('notice').hidden = !info.warning;
		uploader.limits = info.limits || {};
		if (info.limits && info.limits.max_k)
			results.maxK = info.limits.max_k;
		if (info.limits && info.limits.max_labels)
			detail.maxLabels = info.limits.max_labels;
		results.setTotal(n);
	} catch {
		/* the results view reports errors; the footer just stays short */
	}
}

// --- results, uploads, detail --------------------------------------------

const results = new Results({
	onOpen: (img) => openImage(img),
	onError: showError,
	onUpload: () => $('file-input').click(),
});

const detail = new Detail({
	onDeleted: (img) => {
		// The focus goes to the tile that takes the deleted one's place.
		const tile = $('grid').querySelector(`[data-id="${CSS.escape(String(img.id))}"]`);
		const next = tile && (tile.nextElementSibling || tile.previousElementSibling);
		results.remove(img.id);
		loadInfo();
		if (next && next.isConnected && next.dataset.id)
			results.focusTile(next.dataset.id);
		else
			$('results').focus();
	},
	onUpdated: (img) => results.update(img),
	onOpen: (img) => openImage(img),
	onClose: () => leaveImageRoute(),
});

const uploader = new Uploader({
	onDone: (c) => {
		if (c.added)
			results.refresh();
		loadInfo();
	},
});

const search = $('q');
const runSearch = debounce(() => {
	const q = search.value.trim();
	if (q === results.query)
		return;
	history.replaceState(null, '', resultsHash(q));
	results.show(q);
}, SEARCH_DELAY_MS);

search.addEventListener('input', runSearch);
$('search-form').addEventListener('submit', (e) => {
	e.preventDefault();
	runSearch();
	runSearch.cancel();
	const q = search.value.trim();
	history.replaceState(null, '', resultsHash(q));
	results.show(q);
});
document.addEventListener('keydown', (e) => {
	const t = e.target;
	const typing = t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
	if (e.key === '/' && !typing && !document.querySelector('dialog[open]')) {
		e.preventDefault();
		search.focus();
		search.select();
	}
});

document.querySelector('.brand').addEventListener('click', (e) => {
	e.preventDefault();
	search.value = '';
	runSearch.cancel();
	history.replaceState(null, '', resultsHash(''));
	results.show('');
	search.focus();
});

$('upload-button').addEventListener('click', () => $('file-input').click());
$('file-input').addEventListener('change', (e) => {
	uploader.add(e.target.files);
	e.target.value = '';
});

// Drag and drop anywhere on the page.
let dragDepth = 0;
const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes('Files');
window.addEventListener('dragenter', (e) => {
	if (!hasFiles(e))
		return;
	e.preventDefault();
	dragDepth++;
	$('drop-overlay').hidden = false;
});
window.addEventListener('dragover', (e) => {
	if (!hasFiles(e))
		return;
	e.preventDefault();
	e.dataTransfer.dropEffect = 'copy';
});
window.addEventListener('dragleave', (e) => {
	if (!hasFiles(e))
		return;
	dragDepth = Math.max(0, dragDepth - 1);
	if (!dragDepth)
		$('drop-overlay').hidden = true;
});
window.addEventListener('drop', (e) => {
	if (!hasFiles(e))
		return;
	e.preventDefault();
	dragDepth = 0;
	$('drop-overlay').hidden = true;
	const files = Array.from(e.dataTransfer.files).filter((f) => !f.type || f.type.startsWith('image/') || /\.(jpe?g|png|gif|bmp|webp|hei[cf]|avif|tiff?)$/i.test(f.name));
	uploader.add(files);
});

// --- addresses --------------------------------------------------------------
//
// #q=TEXT&filter.KEY=VALUE&taken_from=DAY&taken_until=DAY&library=NAME is a
// view of the results: the search text (none: the newest images) and the
// filter bar's chips, days and library, so a reload, back and forward and a shared address keep
// them; #/images/ID is an image's detail view. Opening an image pushes its
// address (history.state.depth counts the detail views pushed since the
// results); closing the dialog goes back that many entries, so back/forward
// move between the results and the images.

const IMAGE_ROUTE = /^#\/images\/(\d{1,18})$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
const MAX_ADDRESS_CHIPS = 32;   // the API's filters per request
const LIBRARY_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

function hashOf({ q, chips: cs, from, to, library }) {
	const pairs = [];
	if (q)
		pairs.push(['q', q]);
	for (const c of cs)
		pairs.push([`filter.${c.key}`, c.value]);
	if (from)
		pairs.push(['taken_from', from]);
	if (to)
		pairs.push(['taken_until', to]);
	if (library)
		pairs.push(['library', library]);
	const text = pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
	return text ? `#${text}` : location.pathname + location.search;
}

// The results' address for query q under the filter bar as it stands.
function resultsHash(q = results.query) {
	return hashOf({ q, chips, from: $('taken-from').value, to: $('taken-to').value, library: $('filter-library').value });
}

// What a results address asks for (anything else in it is ignored).
function readAddress() {
	const p = new URLSearchParams(IMAGE_ROUTE.test(location.hash) ? '' : location.hash.slice(1));
	const out = { q: (p.get('q') || '').trim(), chips: [], from: '', to: '', library: '' };
	for (const [k, v] of p) {
		const key = k.startsWith('filter.') ? k.slice(7).trim() : '', value = v.trim();
		if (key && value && out.chips.length < MAX_ADDRESS_CHIPS &&
		    !out.chips.some((c) => c.key === key && c.value === value))
			out.chips.push({ key, value });
	}
	out.from = DAY.test(p.get('taken_from') || '') ? p.get('taken_from') : '';
	out.to = DAY.test(p.get('taken_until') || '') ? p.get('taken_until') : '';
	out.library = LIBRARY_NAME.test(p.get('library') || '') ? p.get('library') : '';
	return out;
}

// Put an address's search text and filters into the page (not shown yet).
function takeAddress(a) {
	search.value = a.q;
	runSearch.cancel();
	chips.splice(0, chips.length, ...a.chips);
	renderChips();
	$('taken-from').value = a.from;
	$('taken-to').value = a.to;
	setLibraryOptions(null, a.library);
	setFilters();
}

// While closing the dialog goes back in history (asynchronously), an image
// opened meanwhile waits for that to finish, so the going back does not
// close it again.
let goingBack = null;

function openImage(img) {
	if (goingBack) {
		goingBack.then(() => openImage(img));
		return;
	}
	const target = `#/images/${img.id}`;
	if (location.hash !== target) {
		const depth = IMAGE_ROUTE.test(location.hash) ? ((history.state && history.state.depth) || 0) + 1 : 1;
		history.pushState({ depth }, '', target);
	}
	detail.open(img);
}

function route() {
	const m = IMAGE_ROUTE.exec(location.hash);
	if (m) {
		if (!$('detail').open || String(detail.img && detail.img.id) !== m[1]) {
			const known = results.items.find((i) => String(i.id) === m[1]);
			detail.open(known || { id: Number(m[1]) });
		}
		return;
	}
	if ($('detail').open)
		detail.close();
	const a = readAddress();
	if (hashOf(a) !== resultsHash()) {
		takeAddress(a);
		results.show(a.q);
	}
}
window.addEventListener('popstate', route);
window.addEventListener('hashchange', route);

function leaveImageRoute() {
	if (!IMAGE_ROUTE.test(location.hash) || goingBack)
		return;     // closed by back/forward: the address is already right
	const depth = (history.state && history.state.depth) || 0;
	if (depth > 0) {
		goingBack = new Promise((resolve) => {
			const done = () => {
				window.removeEventListener('popstate', done);
				clearTimeout(timer);
				goingBack = null;
				resolve();
			};
			const timer = setTimeout(done, 2000);
			window.addEventListener('popstate', done);
		});
		history.go(-depth);
	} else
		history.replaceState(null, '', resultsHash());
}


// --- the filter bar -------------------------------------------------------

const chips = [];

function filterStatus(text, kind = '') {
	$('filter-status').textContent = text;
	$('filter-status').className = `form-status ${kind}`.trim();
}

// A day from an <input type=date> as the exclusive RFC 3339 bounds the API
// takes: "from D" is after the last second of the day before, "until D"
// before the first second of the day after.
function dayBound(day, edge) {
	if (!/^\d{4}-\d{2}-\d{2}$/.test(day))
		return '';
	const t = Date.parse(`${day}T00:00:00Z`);
	if (isNaN(t))
		return '';
	const at = edge === 'from' ? t - 1000 : t + 86400000;
	return new Date(at).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// The filter bar into the results' filters: false (and said) when the
// days are the wrong way round.
function setFilters() {
	const from = $('taken-from').value, to = $('taken-to').value;
	if (from && to && from > to) {
		filterStatus('“Taken from” is after “Taken until”.', 'error');
		return false;
	}
	const library = $('filter-library').value;
	results.filters = {
		chips: chips.map((c) => ({ ...c })),
		takenAfter: dayBound(from, 'from'),
		takenBefore: dayBound(to, 'until'),
		library,
	};
	const n = chips.length + (from ? 1 : 0) + (to ? 1 : 0) + (library ? 1 : 0);
	filterStatus(n ? `${plural(n, 'filter')} applied` : 'No filters');
	return true;
}

function applyFilters() {
	if (!setFilters())
		return;
	const q = search.value.trim();
	history.replaceState(null, '', resultsHash(q));
	results.show(q);
}

function renderChips() {
	$('filter-chips').replaceChildren(...chips.map((c, i) => {
		const text = `${c.key} = ${c.value}`;
		return h('li', { class: 'chip', dataset: { key: c.key, value: c.value } },
			h('span', { class: 'chip-text', text }),
			h('button', {
				class: 'button icon small', type: 'button', 'aria-label': `Remove filter ${text}`, title: 'Remove filter',
				onclick: () => {
					chips.splice(i, 1);
					renderChips();
					const left = $('filter-chips').querySelectorAll('button');
					(left[Math.min(i, left.length - 1)] || $('filter-key')).focus();
					applyFilters();
				},
			}, '×'));
	}));
}

$('filter-form').addEventListener('submit', (e) => {
	e.preventDefault();
	const key = $('filter-key').value.trim(), value = $('filter-value').value.trim();
	if (!key || !value) {
		filterStatus('A filter needs a key and a value.', 'error');
		(key ? $('filter-value') : $('filter-key')).focus();
		return;
	}
	if (!chips.some((c) => c.key === key && c.value === value))
		chips.push({ key, value });
	$('filter-key').value = '';
	$('filter-value').value = '';
	renderChips();
	applyFilters();
});
$('taken-from').addEventListener('change', applyFilters);
$('taken-to').addEventListener('change', applyFilters);
$('filter-library').addEventListener('change', applyFilters);

// The library choice: "All images" and each library GET /libraries lists
// (libs; null: as they are), with selected (undefined: the current
// choice) kept even when it is not listed (an address naming it: the
// server says whether it exists). Shown once there is a library.
let libraryNames = [];
function setLibraryOptions(libs, selected) {
	const sel = $('filter-library');
	const want = selected === undefined ? sel.value : selected;
	if (libs)
		libraryNames = libs.map((l) => l.name).sort();
	const names = want && !libraryNames.includes(want) ? [...libraryNames, want] : libraryNames;
	if ([...sel.options].slice(1).map((o) => o.value).join('/') !== names.join('/'))
		sel.replaceChildren(sel.options[0], ...names.map((n) => h('option', { value: n, text: n })));
	sel.value = want;
	$('library-field').hidden = names.length === 0;
}

function reload() {
	results.show(search.value);
	loadInfo();
}

// --- start ----------------------------------------------------------------

const initial = readAddress();
takeAddress(initial);
results.show(initial.q).then(loadInfo);
// A scan that ends brings new images: show them when the view is the newest.
new Libraries({ onScanned: () => { if (!search.value) reload(); }, onList: (libs) => setLibraryOptions(libs) }).start();
if (IMAGE_ROUTE.test(location.hash))
	route();
