// The image detail dialog: the full image and its facts, metadata edited as
// key/value pairs (saved as a JSON merge patch), zero-shot classification
// against the user's labels, "more like this", and delete.

import { $, h, altText, displayName, formatBytes, formatDate, formatTaken, plural, announce, busy, isBusy } from './dom.js';
import { apiJson, paths, ImageLoader } from './api.js';
import { renderTile } from './grid.js';

const SIMILAR_K = 12;

function valueText(v) {
	return typeof v === 'string' ? v : JSON.stringify(v);
}

export class Detail {
	// onOpen(img): how a "more like this" tile opens (the app gives it an
	// address); by default in this dialog directly. onClose(): called as
	// the dialog closes (the close button, the backdrop, a delete, Escape),
	// before its close event.
	constructor({ onDeleted, onUpdated, onOpen, onClose }) {
		this.onOpen = onOpen || ((img) => this.open(img));
		this.onClose = onClose || (() => {});
		this.onDeleted = onDeleted;
		this.onUpdated = onUpdated;
		this.dialog = $('detail');
		this.loader = new ImageLoader();
		this.similarLoader = new ImageLoader();
		this.img = null;
		this.gen = 0;
		this.ctrl = new AbortController();
		this.opener = null;
		this.maxLabels = 256;    // GET /info's limits.max_labels, when known

		$('detail-close').addEventListener('click', () => this.close());
		this.dialog.addEventListener('close', () => this.closed());
		this.dialog.addEventListener('cancel', () => this.onClose());
		// A click on the backdrop (outside the dialog's box) closes it.
		this.dialog.addEventListener('click', (e) => {
			if (e.target !== this.dialog)
				return;
			const r = this.dialog.getBoundingClientRect();
			if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom)
				this.close();
		});
		$('detail-image').addEventListener('load', () => {
			$('detail-figure').classList.remove('loading');
			// With an API key the image came through a blob: URL (a link
			// cannot send the key); the link opens those same bytes.
			const src = $('detail-image').src;
			if (src.startsWith('blob:'))
				$('detail-original').href = src;
		});
		$('detail-image').addEventListener('error', () => $('detail-figure').classList.remove('loading'));
		$('meta-add').addEventListener('click', () => {
			const row = this.metaRow('', '');
			$('meta-rows').append(row);
			$('meta-empty').hidden = true;
			row.querySelector('input').focus();
		});
		$('meta-form').addEventListener('submit', (e) => {
			e.preventDefault();
			this.saveMetadata();
		});
		$('classify-form').addEventListener('submit', (e) => {
			e.preventDefault();
			this.classify();
		});
		$('labels').addEventListener('keydown', (e) => {
			if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
				e.preventDefault();
				this.classify();
			}
		});
		$('delete-ask').addEventListener('click', () => {
			$('delete-confirm').hidden = false;
			$('delete-ask').hidden = true;
			$('delete-no').focus();
		});
		$('delete-no').addEventListener('click', () => {
			$('delete-confirm').hidden = true;
			$('delete-ask').hidden = false;
			$('delete-ask').focus();
		});
		$('delete-yes').addEventListener('click', () => this.remove());
	}

	// Opens the dialog on an image object (from a list or search result);
	// the full object is fetched again so the metadata is current.
	open(img, opener) {
		if (!this.dialog.open) {
			this.opener = opener || document.activeElement;
			this.dialog.showModal();
		}
		this.show(img);
		this.refetch(img.id);
	}

	show(img) {
		const gen = ++this.gen;
		this.ctrl.abort();
		this.ctrl = new AbortController();
		this.img = img;
		this.dialog.dataset.id = img.id;
		this.dialog.scrollTop = 0;
		$('detail-title').textContent = displayName(img);
		this.renderImage(img);
		this.renderFacts(img);
		this.renderMetadata(img.metadata || {});
		$('meta-status').textContent = '';
		$('bars').replaceChildren();
		$('classify-status').textContent = '';
		$('classify-status').className = 'form-status';
		$('delete-confirm').hidden = true;
		$('delete-ask').hidden = false;
		$('delete-status').textContent = '';
		$('delete-question').textContent = img.source
			? `Remove “${displayName(img)}” from clipd? Its file stays in library ${img.source.library}, and later scans leave it out.`
			: `Delete “${displayName(img)}” permanently?`;
		this.loadSimilar(img.id, gen);
	}

	async refetch(id) {
		const gen = this.gen;
		try {
			const fresh = await apiJson(paths.image(id), { signal: this.ctrl.signal });
			if (gen !== this.gen)
				return;
			this.img = { ...fresh, score: this.img.score };
			$('detail-title').textContent = displayName(fresh);
			$('detail-image').alt = altText(fresh);
			this.renderFacts(fresh);
			this.renderMetadata(fresh.metadata || {});
		} catch (e) {
			if (e.name === 'AbortError' || gen !== this.gen)
				return;
			this.status('meta-status', `Could not load this image: ${e.message}`, 'error');
		}
	}

	renderImage(img) {
		const el = $('detail-image');
		$('detail-figure').classList.add('loading');
		this.loader.clear();
		el.removeAttribute('src');
		el.alt = altText(img);
		$('detail-original').href = paths.file(img.id);
		this.loader.load(el, paths.file(img.id), { lazy: false });
	}

	renderFacts(img) {
		const rows = [];
		const add = (k, v, cls) => {
			if (v === undefined || v === null || v === '')
				return;
			rows.push(h('dt', { text: k }), h('dd', { class: cls, text: String(v) }));
		};
		add('ID', img.id);
		if (img.width && img.height)
			add('Size', `${img.width} × ${img.height} px`);
		add('File', [img.mime, formatBytes(img.bytes)].filter(Boolean).join(' · '));
		add('Taken', img.taken_at ? formatTaken(img.taken_at) : '');
		add('Added', img.created_at ? formatDate(img.created_at) : '');
		if (img.source)
			add('Library', `${img.source.library}: ${img.source.path}`);
		if (typeof img.score === 'number')
			add('Score', img.score.toFixed(4));
		add('SHA-256', img.sha256, 'mono');
		$('detail-facts').replaceChildren(...rows);
	}

	metaRow(key, value) {
		const n = $('meta-rows').children.length + 1;
		const k = h('input', { type: 'text', class: 'meta-key', value: key, 'aria-label': `Field ${n} name`,
			placeholder: 'name', autocomplete: 'off', spellcheck: 'false' });
		const v = h('input', { type: 'text', class: 'meta-value', value, 'aria-label': `Field ${n} value`,
			placeholder: 'value', autocomplete: 'off' });
		const row = h('li', { class: 'meta-row' }, k, v);
		row.append(h('button', {
			class: 'button icon small', type: 'button', 'aria-label': `Remove field ${n}`, title: 'Remove field',
			onclick: () => {
				const next = row.nextElementSibling || row.previousElementSibling;
				row.remove();
				$('meta-empty').hidden = $('meta-rows').children.length > 0;
				(next ? next.querySelector('input') : $('meta-add')).focus();
			},
		}, '×'));
		return row;
	}

	renderMetadata(meta) {
		this.original = meta && typeof meta === 'object' ? meta : {};
		const rows = Object.entries(this.original).map(([k, v]) => this.metaRow(k, valueText(v)));
		$('meta-rows').replaceChildren(...rows);
		// renumber the labels now that the rows are in place
		[...$('meta-rows').children].forEach((row, i) => {
			const [k, v, b] = row.children;
			k.setAttribute('aria-label', `Field ${i + 1} name`);
			v.setAttribute('aria-label', `Field ${i + 1} value`);
			b.setAttribute('aria-label', `Remove field ${i + 1}`);
		});
		$('meta-empty').hidden = rows.length > 0;
	}

	// The rows as an RFC 7396 merge patch against the metadata we showed:
	// removed keys become null; a value whose original was not a string is
	// read back as JSON when it parses, everything else is a string.
	buildPatch() {
		const patch = {};
		const seen = new Set();
		for (const row of $('meta-rows').children) {
			const key = row.querySelector('.meta-key').value.trim();
			const text = row.querySelector('.meta-value').value;
			if (!key) {
				if (text.trim())
					throw new Error('Every value needs a field name.');
				continue;
			}
			if (seen.has(key))
				throw new Error(`The field “${key}” appears twice.`);
			seen.add(key);
			let value = text;
			const old = this.original[key];
			if (old !== undefined && typeof old !== 'string') {
				try {
					value = JSON.parse(text);
				} catch {
					value = text;
				}
			}
			if (JSON.stringify(old) !== JSON.stringify(value))
				patch[key] = value;
		}
		for (const key of Object.keys(this.original))
			if (!seen.has(key))
				patch[key] = null;
		return patch;
	}

	async saveMetadata() {
		if (isBusy($('meta-save')))
			return;
		const img = this.img, gen = this.gen;
		let patch;
		try {
			patch = this.buildPatch();
		} catch (e) {
			this.status('meta-status', e.message, 'error');
			return;
		}
		if (!Object.keys(patch).length) {
			this.status('meta-status', 'Nothing changed.');
			return;
		}
		busy($('meta-save'), true);
		this.status('meta-status', 'Saving…');
		try {
			const fresh = await apiJson(paths.image(img.id), {
				method: 'PATCH', json: patch,
				headers: { 'Content-Type': 'application/merge-patch+json' },
			});
			if (gen !== this.gen)
				return;
			this.img = { ...fresh, score: img.score };
			this.renderMetadata(fresh.metadata || {});
			$('detail-image').alt = altText(fresh);
			this.status('meta-status', 'Metadata saved.', 'ok');
			this.onUpdated(fresh);
		} catch (e) {
			if (gen === this.gen)
				this.status('meta-status', `Could not save: ${e.message}`, 'error');
		} finally {
			busy($('meta-save'), false);
		}
	}

	async classify() {
		if (isBusy($('classify-run')))
			return;
		const img = this.img, gen = this.gen;
		const labels = [...new Set($('labels').value.split('\n').map((s) => s.trim()).filter(Boolean))];
		if (!labels.length) {
			this.status('classify-status', 'Type at least one label, one per line.', 'error');
			$('labels').focus();
			return;
		}
		if (labels.length > this.maxLabels) {
			this.status('classify-status', `This server takes at most ${this.maxLabels} labels.`, 'error');
			return;
		}
		const template = $('template').value.trim();
		const body = { image_id: img.id, labels };
		if (template)
			body.template = template;
		busy($('classify-run'), true);
		$('bars').setAttribute('aria-busy', 'true');
		this.status('classify-status', `Classifying against ${plural(labels.length, 'label')}…`);
		try {
			const r = await apiJson(paths.classify(), { method: 'POST', json: body });
			if (gen !== this.gen)
				return;
			const rows = (r.labels || []).map((l) => {
				const pct = (l.score * 100).toFixed(1) + '%';
				const fill = h('div', { class: 'fill' });
				fill.style.width = `${Math.max(0, Math.min(100, l.score * 100))}%`;
				return h('li', { class: 'bar-row', dataset: { label: l.label, score: l.score } },
					h('span', { class: 'label', title: l.label, text: l.label }),
					h('div', { class: 'track', 'aria-hidden': 'true' }, fill),
					h('span', { class: 'pct', text: pct }));
			});
			$('bars').replaceChildren(...rows);
			const top = r.labels && r.labels[0];
			this.status('classify-status', top ? `Most likely: ${top.label} (${(top.score * 100).toFixed(1)}%)` : 'No result.', 'ok');
		} catch (e) {
			if (gen === this.gen)
				this.status('classify-status', `Could not classify: ${e.message}`, 'error');
		} finally {
			busy($('classify-run'), false);
			$('bars').setAttribute('aria-busy', 'false');
		}
	}

	async loadSimilar(id, gen) {
		const grid = $('similar-grid');
		this.similarLoader.clear();
		grid.replaceChildren();
		grid.setAttribute('aria-busy', 'true');
		$('similar-status').textContent = 'Looking for similar images…';
		try {
			const r = await apiJson(paths.similar(id, SIMILAR_K), { signal: this.ctrl.signal });
			if (gen !== this.gen)
				return;
			const items = r.results || [];
			grid.replaceChildren(...items.map((img) => renderTile(img, {
				loader: this.similarLoader,
				score: img.score,
				onOpen: (other) => this.onOpen(other),
			})));
			$('similar-status').textContent = items.length ? '' : 'No other images yet.';
		} catch (e) {
			if (e.name !== 'AbortError' && gen === this.gen)
				$('similar-status').textContent = `Could not find similar images: ${e.message}`;
		} finally {
			if (gen === this.gen)
				grid.setAttribute('aria-busy', 'false');
		}
	}

	async remove() {
		if (isBusy($('delete-yes')))
			return;
		const img = this.img, gen = this.gen;
		busy($('delete-yes'), true);
		this.status('delete-status', 'Deleting…');
		try {
			await apiJson(paths.image(img.id), { method: 'DELETE' });
			if (gen !== this.gen)
				return;
			this.close();
			announce(`Deleted ${displayName(img)}`);
			this.onDeleted(img);
		} catch (e) {
			if (gen === this.gen)
				this.status('delete-status', `Could not delete: ${e.message}`, 'error');
		} finally {
			busy($('delete-yes'), false);
		}
	}

	status(id, text, kind = '') {
		const el = $(id);
		el.textContent = text;
		el.className = `form-status ${kind}`.trim();
	}

	close() {
		if (this.dialog.open) {
			this.dialog.close();
			this.onClose();
		}
	}

	closed() {
		this.gen++;
		this.ctrl.abort();
		this.ctrl = new AbortController();
		this.loader.clear();
		this.similarLoader.clear();
		$('detail-image').removeAttribute('src');
		const opener = this.opener;
		this.opener = null;
		this.img = null;
		// (The close event comes a task after close(): a delete may have
		// moved the focus to the next tile meanwhile; leave it there.)
		const a = document.activeElement;
		if (opener && opener.isConnected)
			opener.focus();
		else if (!a || a === document.body || this.dialog.contains(a))
			$('results').focus();
	}
}
