// Uploads: each file is its own POST /images with the raw bytes (so each has
// its own progress bar and its own answer), a few at a time; the server
// batches concurrent uploads for the encoder.

import { $, h, formatBytes, plural, announce } from './dom.js';
import { paths, currentKey, requestKey } from './api.js';

const CONCURRENCY = 3;
const MAX_RETRIES = 3;

function contentType(file) {
	return file.type && file.type.startsWith('image/') ? file.type : 'application/octet-stream';
}

function parse(text) {
	try {
		return JSON.parse(text);
	} catch {
		return null;
	}
}

// One XMLHttpRequest (fetch() has no upload progress). Resolves, never rejects.
function send(entry, onProgress, onSent) {
	return new Promise((resolve) => {
		const xhr = new XMLHttpRequest();
		const key = currentKey();
		xhr.open('POST', paths.upload(entry.file.name));
		xhr.setRequestHeader('Content-Type', contentType(entry.file));
		if (key)
			xhr.setRequestHeader('Authorization', `Bearer ${key}`);
		xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : entry.file.size);
		xhr.upload.onload = onSent;
		xhr.onload = () => resolve({
			status: xhr.status,
			body: parse(xhr.responseText),
			retryAfter: parseInt(xhr.getResponseHeader('Retry-After') || '', 10),
			key,
		});
		xhr.onerror = () => resolve({ status: 0, body: null, key });
		xhr.onabort = () => resolve({ status: 0, body: null, key, aborted: true });
		xhr.send(entry.file);
	});
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Uploader {
	constructor({ onDone }) {
		this.onDone = onDone;     // (stats) when the queue runs empty
		this.entries = [];
		this.queue = [];
		this.running = 0;
		$('uploads-clear').addEventListener('click', () => this.clear());
		$('uploads-toggle').addEventListener('click', () => this.collapse(!this.collapsed));
		this.collapsed = false;
		this.limits = {};    // from GET /info: max_body
	}

	// When a batch is done, the list keeps only what needs attention
	// (failures, duplicates); "Show all" brings back the rest.
	collapse(on) {
		this.collapsed = on;
		const hiddenCount = this.entries.filter((e) => e.state === 'added').length;
		const shown = on ? this.entries.length - hiddenCount : this.entries.length;
		$('uploads').classList.toggle('collapsed', on);
		$('upload-list').hidden = shown === 0;
		const t = $('uploads-toggle');
		t.hidden = hiddenCount === 0;
		t.setAttribute('aria-expanded', String(!on));
		t.textContent = on ? `Show all ${this.entries.length}` : 'Show problems only';
	}

	add(fileList) {
		const files = Array.from(fileList || []);
		if (!files.length)
			return;
		// A new batch after the last one finished starts a fresh list.
		if (!this.running && !this.queue.length) {
			this.entries = [];
			$('upload-list').replaceChildren();
		}
		$('uploads').hidden = false;
		$('uploads-clear').hidden = true;
		for (const file of files) {
			const bar = h('progress', { max: 1, value: 0, 'aria-label': `Upload progress for ${file.name}` });
			const message = h('span', { class: 'message', text: `Waiting · ${formatBytes(file.size)}` });
			const li = h('li', { class: 'upload-item', dataset: { file: file.name, state: 'queued' } },
				h('span', { class: 'file', title: file.name, text: file.name }), message, bar);
			const entry = { file, li, bar, message, loaded: 0, state: 'queued' };
			this.entries.push(entry);
			this.queue.push(entry);
			$('upload-list').append(li);
		}
		this.collapse(false);
		$('uploads-toggle').hidden = true;
		announce(`Uploading ${plural(files.length, 'file')}`);
		this.update();
		this.pump();
	}

	pump() {
		while (this.running < CONCURRENCY && this.queue.length) {
			const entry = this.queue.shift();
			this.running++;
			this.run(entry).finally(() => {
				this.running--;
				this.update();
				this.pump();
				if (!this.running && !this.queue.length)
					this.finish();
			});
		}
	}

	setState(entry, state, text, cls) {
		entry.state = state;
		entry.li.dataset.state = state;
		entry.li.classList.remove('ok', 'dup', 'err');
		entry.bar.classList.remove('ok', 'dup', 'err');
		if (cls) {
			entry.li.classList.add(cls);
			entry.bar.classList.add(cls);
		}
		entry.message.textContent = text;
	}

	async run(entry) {
		const maxBody = this.limits.max_body;
		if (maxBody && entry.file.size > maxBody) {
			entry.loaded = entry.file.size;
			entry.bar.value = 1;
			entry.error = { code: 'body_too_large' };
			this.setState(entry, 'failed', `Too large: ${formatBytes(entry.file.size)}; this server takes at most ${formatBytes(maxBody)} per file.`, 'err');
			return;
		}
		for (let attempt = 0; ; attempt++) {
			this.setState(entry, 'uploading', 'Uploading…');
			entry.loaded = 0;
			entry.bar.value = 0;
			const r = await send(entry, (loaded, total) => {
				entry.loaded = loaded;
				entry.bar.value = total ? loaded / total : 0;
				this.update();
			}, () => {
				entry.loaded = entry.file.size;
				entry.bar.removeAttribute('value');   // indeterminate while the server encodes
				this.setState(entry, 'encoding', 'Encoding…');
				this.update();
			});
			entry.loaded = entry.file.size;
			const body = r.body || {};
			if (r.status === 201 || (r.status === 200 && body.id !== undefined)) {
				entry.bar.value = 1;
				entry.image = body;
				if (body.duplicate) {
					this.setState(entry, 'duplicate', `Already stored as image #${body.id}`, 'dup');
				} else {
					const dims = body.width && body.height ? ` · ${body.width} × ${body.height}` : '';
					this.setState(entry, 'added', `Added as image #${body.id}${dims}`, 'ok');
				}
				return;
			}
			if (r.status === 401 && attempt < MAX_RETRIES) {
				this.setState(entry, 'waiting', 'Waiting for an API key…');
				if (currentKey() !== r.key || await requestKey(!!r.key))
					continue;
			}
			if ((r.status === 429 || r.status === 503) && attempt < MAX_RETRIES) {
				const wait = Math.min(10, Number.isFinite(r.retryAfter) ? r.retryAfter : 1 + attempt);
				const why = body.error && body.error.code === 'catalog_unavailable'
					? 'The catalog database cannot be reached' : 'Server busy';
				this.setState(entry, 'waiting', `${why}, retrying in ${wait} s…`);
				await sleep(wait * 1000);
				continue;
			}
			entry.bar.value = 1;
			let msg;
			if (r.status === 0)
				msg = 'Upload failed: the connection was closed (is the file too large?).';
			else if (body.error && body.error.message)
				msg = body.error.message;
			else
				msg = `Upload failed (HTTP ${r.status}).`;
			entry.error = body.error || { code: `http_${r.status}`, message: msg };
			this.setState(entry, 'failed', msg, 'err');
			return;
		}
	}

	counts() {
		const c = { total: this.entries.length, added: 0, duplicate: 0, failed: 0, done: 0 };
		for (const e of this.entries) {
			if (e.state === 'added' || e.state === 'duplicate' || e.state === 'failed') {
				c[e.state]++;
				c.done++;
			}
		}
		return c;
	}

	update() {
		let sent = 0, total = 0;
		for (const e of this.entries) {
			total += e.file.size || 1;
			const done = e.state === 'added' || e.state === 'duplicate' || e.state === 'failed';
			sent += done ? (e.file.size || 1) : Math.min(e.loaded, e.file.size);
		}
		const c = this.counts();
		// Bytes sent count for 90%; answers received for the rest.
		const frac = total ? 0.9 * (sent / total) + 0.1 * (c.done / c.total) : 1;
		$('uploads-overall').value = c.done === c.total ? 1 : Math.min(0.99, frac);
		$('uploads').dataset.state = c.done === c.total ? 'done' : 'running';
		$('uploads-summary').textContent = c.done === c.total ? this.summary(c)
			: `${c.done} of ${plural(c.total, 'file')} done`;
	}

	summary(c) {
		const parts = [];
		if (c.added)
			parts.push(`${c.added} added`);
		if (c.duplicate)
			parts.push(`${c.duplicate} already stored`);
		if (c.failed)
			parts.push(`${c.failed} failed`);
		return `${plural(c.total, 'file')}: ${parts.join(', ')}`;
	}

	finish() {
		const c = this.counts();
		$('uploads-clear').hidden = false;
		this.update();
		this.collapse(true);
		announce(`Uploads finished. ${this.summary(c)}.`);
		this.onDone(c);
	}

	clear() {
		if (this.running || this.queue.length)
			return;
		this.entries = [];
		$('upload-list').replaceChildren();
		$('uploads').hidden = true;
		$('upload-button').focus();
	}
}
