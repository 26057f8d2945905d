// Small DOM and formatting helpers. Text always goes in through textContent,
// never innerHTML: filenames and metadata come from clients.

export const $ = (id) => document.getElementById(id);

// h('li', {class: 'tile', dataset: {id: 3}}, child, 'text', ...)
export function h(tag, attrs = {}, ...children) {
	const el = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs)) {
		if (v === undefined || v === null || v === false)
			continue;
		if (k === 'class')
			el.className = v;
		else if (k === 'dataset')
			Object.assign(el.dataset, v);
		else if (k === 'text')
			el.textContent = v;
		else if (k.startsWith('on'))
			el.addEventListener(k.slice(2), v);
		else if (k in el && typeof v !== 'string')
			el[k] = v;
		else
			el.setAttribute(k, v === true ? '' : String(v));
	}
	for (const c of children.flat()) {
		if (c === null || c === undefined || c === false)
			continue;
		el.append(c instanceof Node ? c : document.createTextNode(String(c)));
	}
	return el;
}

export function formatBytes(n) {
	if (typeof n !== 'number' || !isFinite(n))
		return '';
	if (n < 1024)
		return `${n} B`;
	if (n < 1024 * 1024)
		return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
	return `${(n / 1048576).toFixed(1)} MB`;
}

export function formatDate(s) {
	const d = new Date(s);
	if (isNaN(d))
		return s || '';
	return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

// A capture time as the camera's clock showed it ("2023-06-17 14:03"), with
// its UTC offset when the file states one ("-00:00": none stated).
export function formatTaken(s) {
	const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.exec(s || '');
	if (!m)
		return s || '';
	const offset = m[3] === '-00:00' ? '' : m[3] === 'Z' ? ' UTC' : ` UTC${m[3]}`;
	return `${m[1]} ${m[2]}${offset}`;
}

export function formatAge(s) {
	const d = new Date(s);
	if (isNaN(d))
		return '';
	const sec = Math.max(0, (Date.now() - d.getTime()) / 1000);
	if (sec < 60)
		return 'just now';
	if (sec < 3600)
		return `${Math.floor(sec / 60)} min ago`;
	if (sec < 86400)
		return `${Math.floor(sec / 3600)} h ago`;
	return d.toLocaleDateString(undefined, { dateStyle: 'medium' });
}

export function formatScore(s) {
	return typeof s === 'number' ? s.toFixed(3) : '';
}

export function formatMs(ms) {
	return `${ms < 10 ? Math.round(ms * 10) / 10 : Math.round(ms)} ms`;
}

export function plural(n, one, many = one + 's') {
	return `${n} ${n === 1 ? one : many}`;
}

// What a screen reader and a broken image show: a caption from the metadata
// when there is one, else the filename, else the id.
export function altText(img) {
	const m = img && img.metadata && typeof img.metadata === 'object' ? img.metadata : {};
	for (const k of ['alt', 'description', 'caption', 'title'])
		if (typeof m[k] === 'string' && m[k].trim())
			return m[k].trim();
	if (img && img.filename)
		return img.filename;
	return `Image ${img ? img.id : ''}`.trim();
}

export function displayName(img) {
	return (img && img.filename) || `Image #${img ? img.id : '?'}`;
}

const announcer = () => $('announcer');

// Tells screen readers what just happened (a polite live region).
export function announce(text) {
	const el = announcer();
	if (!el)
		return;
	el.textContent = '';
	requestAnimationFrame(() => { el.textContent = text; });
}

// Marks a button busy without disabling it: a disabled button drops the
// keyboard focus. Handlers check isBusy() first.
export function busy(button, on) {
	if (on)
		button.setAttribute('aria-disabled', 'true');
	else
		button.removeAttribute('aria-disabled');
}

export function isBusy(button) {
	return button.getAttribute('aria-disabled') === 'true';
}

export function debounce(fn, ms) {
	let t = 0;
	const d = (...args) => {
		clearTimeout(t);
		t = setTimeout(() => fn(...args), ms);
	};
	d.cancel = () => clearTimeout(t);
	return d;
}
