// Photo libraries (clipd serve --library): while a library is scanned, a
// progress bar with the files indexed, the rate and the time left; a
// library that is offline says why; files that failed are listed on
// request; "Scan now" asks for a scan. Polls GET /libraries (every second
// while a scan runs, every five seconds otherwise); hidden when there is
// nothing to show.

import { $, h, plural } from './dom.js';
import { api, apiJson, paths } from './api.js';

const FAST_MS = 1000;
const SLOW_MS = 5000;
const ERRORS_SHOWN = 50;

function duration(s) {
	if (s === null || s === undefined || !Number.isFinite(s))
		return 'estimating…';
	if (s < 60)
		return `about ${Math.max(1, Math.round(s))} s left`;
	if (s < 3600)
		return `about ${Math.round(s / 60)} min left`;
	return `about ${(s / 3600).toFixed(1)} h left`;
}

export class Libraries {
	constructor({ onScanned, onList } = {}) {
		this.onScanned = onScanned || (() => {});
		this.onList = onList || (() => {});   // each poll's list of libraries
		this.timer = null;
		this.scanning = new Set();
		this.open = new Set();   // libraries whose errors are shown
		this.fastUntil = 0;      // after a scan is asked for, poll fast until it shows
	}

	start() {
		this.poll();
	}

	async poll() {
		clearTimeout(this.timer);
		let libs = [];
		try {
			libs = (await apiJson(paths.libraries())).libraries || [];
			this.onList(libs);
		} catch {
			libs = [];   /* the results view reports errors */
		}
		const now = new Set(libs.filter((l) => l.state === 'scanning').map((l) => l.name));
		if (now.size)
			this.fastUntil = 0;
		const ended = [...this.scanning].some((n) => !now.has(n));
		this.scanning = now;
		await this.render(libs);
		if (ended)
			this.onScanned();
		this.timer = setTimeout(() => this.poll(), now.size || Date.now() < this.fastUntil ? FAST_MS / 4 : SLOW_MS);
	}

	async render(libs) {
		const shown = libs.filter((l) => l.state !== 'idle' || l.failed > 0);
		const list = $('library-list');
		const items = [];
		for (const l of shown)
			items.push(await this.item(l));
		list.replaceChildren(...items);
		$('libraries').hidden = shown.length === 0;
	}

	async item(l) {
		const li = h('li', { class: 'library', 'data-library': l.name, 'data-state': l.state });
		const title = h('p', { class: 'library-title' }, h('strong', {}, l.name), ` ${l.root}`);
		li.append(title);
		if (l.state === 'scanning') {
			const total = l.indexed_this_scan + l.failed_this_scan + l.to_index;
			const bar = h('progress', { max: String(Math.max(total, 1)), value: String(l.indexed_this_scan + l.failed_this_scan),
				'aria-label': `Scan of ${l.name}` });
			if (l.walking)
				bar.removeAttribute('value');   // indeterminate while the tree is walked
			const rate = l.rate_per_s > 0 ? `${l.rate_per_s.toFixed(1)} files/s` : '';
			const text = l.walking
				? `Looking for photos… ${plural(l.files_seen, 'file')} so far`
				: `${l.indexed_this_scan + l.failed_this_scan} of ${plural(total, 'new file')} indexed` +
				  (rate ? ` · ${rate}` : '') + ` · ${duration(l.eta_s)}`;
			li.append(bar, h('p', { class: 'library-status', 'aria-live': 'polite' }, text));
		} else if (l.state === 'queued') {
			li.append(h('p', { class: 'library-status', 'aria-live': 'polite' },
				'Queued: another node is scanning this library; this one scans after it.'));
		} else if (l.state === 'offline') {
			li.append(h('p', { class: 'library-status' },
				`Offline: ${l.offline_reason || 'the folder cannot be read'}. Nothing in it changes until it is back.`));
		}
		if (l.state !== 'scanning' && l.state !== 'queued') {
			const scan = h('button', { class: 'button small', type: 'button' }, 'Scan now');
			scan.addEventListener('click', async () => {
				scan.disabled = true;
				this.fastUntil = Date.now() + 10000;
				try {
					await api(paths.libraryScan(l.name), { method: 'POST' });
				} catch {
					/* a read-only key: the next poll shows nothing new */
				}
				this.poll();
			});
			li.append(h('p', { class: 'library-actions' }, scan));
		}
		if (l.failed > 0) {
			const shownNow = this.open.has(l.name);
			const button = h('button', { class: 'button small', type: 'button', 'aria-expanded': String(shownNow) },
				shownNow ? 'Hide' : 'Show');
			button.addEventListener('click', () => {
				if (this.open.has(l.name))
					this.open.delete(l.name);
				else
					this.open.add(l.name);
				this.poll();
			});
			li.append(h('p', { class: 'library-failed' },
				`${plural(l.failed, 'file')} could not be indexed. `, button));
			if (shownNow) {
				let errs = [];
				try {
					errs = (await apiJson(paths.libraryErrors(l.name, ERRORS_SHOWN))).items || [];
				} catch {
					errs = [];
				}
				li.append(h('ul', { class: 'library-errors' },
					...errs.map((e) => h('li', {}, h('code', {}, e.path), `: ${e.message} (${e.code})`))));
			}
		}
		return li;
	}
}
