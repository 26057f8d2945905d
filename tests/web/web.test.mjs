// The web front-end in a real browser (Debian's chromium through
// playwright-core) against a real `clipd serve` with the test checkpoint.
//
//   node web.test.mjs        (meson: `meson test --suite web`)
//
// Environment: CLIPD_BIN (the daemon), TEST_DATA_DIR (tests/data),
// CLIPD_WEB_ARTIFACTS (screenshots; default tests/artifacts/web).
// Exits 77 (a skip for meson) when /usr/bin/chromium is not installed.
//
// The same flow runs four times: with the mouse, with an API key required,
// with the keyboard only, and at a 375-pixel-wide viewport. Each: upload the
// fixtures through the page's file input (a duplicate and two bad_* files
// among them, with their per-file messages checked), the newest images with
// cursor pagination, search a golden text (grid order == API order), open a
// result (more like this == API), classify (bars == API), edit metadata
// (PATCH seen through the API), delete (gone from the grid and the API).
// axe-core on every view, no console errors, a screenshot of every state.
//
// A second flow covers the page's ways through a collection: an image's
// address (#/images/ID, back and forward), the link to the original and the
// capture time, "Load more" for browsing (cursor) and search (a larger k),
// the filter bar (metadata chips, the taken-date range) on both, and -words
// in the search box sent as not=.
//
// A third, on a PostgreSQL catalog (skipped when PostgreSQL 15 is not
// installed): the database stops, the search answers from the node's index
// under the page's banner, an upload waits and retries, and both recover
// when the database is back.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
	CHROMIUM, CLIPD_BIN, IMAGES, REPO, TEST_DATA_DIR, WWW, ARTIFACTS, tmpdir,
	startDaemon, apiClient, launchBrowser, watchConsole, checkA11y, screenshot,
} from './lib.mjs';

if (!fs.existsSync(CHROMIUM)) {
	console.log(`SKIP: ${CHROMIUM} is not installed (Debian package "chromium"; deploy/bootstrap.sh --test installs it)`);
	process.exit(77);
}
if (!fs.existsSync(path.join(path.dirname(new URL(import.meta.url).pathname), 'node_modules/playwright-core'))) {
	console.log('FAIL: tests/web/node_modules is missing: run `npm install --ignore-scripts` in tests/web (deploy/bootstrap.sh --test does)');
	process.exit(1);
}
if (!fs.existsSync(CLIPD_BIN)) {
	console.log(`FAIL: CLIPD_BIN ${CLIPD_BIN} does not exist`);
	process.exit(1);
}

const GOOD = ['horse.png', 'chelsea.png', 'coffee.png', 'rocket.jpg', 'camera.png',
	'astronaut.png', 'palette_color.png', 'gradient_640x360.png'];
const BAD = { 'bad_not_an_image.jpg': 'image/jpeg', 'bad_bomb_60000x60000.png': 'image/png' };
const DUPLICATE_OF = 'horse.png';
const DUPLICATE = 'horse-again.png';
const DROPPED = 'small_50x40.bmp';
const GOLDEN_QUERY = 'a photo of a cat';
const LABELS = ['cat', 'dog', 'bicycle', 'cup of coffee', 'astronaut'];
const TEMPLATE = 'a photo of a {}.';
const PAGE_LIMIT = 3;   // ?limit= for the newest view: several pages of cursor pagination
const KEY = 'web-test-key-0123456789abcdef';

const CONTENT_TYPES = {
	'.html': /^text\/html/, '.js': /^(text|application)\/javascript/, '.css': /^text\/css/,
	'.svg': /^image\/svg\+xml/, '.ico': /^image\/(x-icon|vnd\.microsoft\.icon)/,
};

let browser;
let fixtures;
const counts = { passed: 0, failed: 0 };

before(async () => {
	fixtures = tmpdir('clipd-web-files-');
	fs.copyFileSync(path.join(IMAGES, DUPLICATE_OF), path.join(fixtures, DUPLICATE));
	fs.rmSync(ARTIFACTS, { recursive: true, force: true });
	fs.mkdirSync(ARTIFACTS, { recursive: true });
	browser = await launchBrowser();
});

after(async () => {
	if (browser)
		await browser.close();
	fs.rmSync(fixtures, { recursive: true, force: true });
});

process.on('exit', () => console.log(`${counts.passed} passed, ${counts.failed} failed`));

function check(name, fn, opts = {}) {
	test(name, { timeout: 120000, ...opts }, async () => {
		try {
			await fn();
			counts.passed++;
		} catch (e) {
			counts.failed++;
			throw e;
		}
	});
}

// --- how the user acts: the mouse, or the keyboard only --------------------

function mouseDriver(page) {
	return {
		activate: (sel) => page.locator(sel).first().click(),
		fill: (sel, text) => page.locator(sel).first().fill(text),
		async chooseFiles(files) {
			const [chooser] = await Promise.all([
				page.waitForEvent('filechooser'),
				page.locator('#upload-button').click(),
			]);
			await chooser.setFiles(files);
		},
		escape: () => page.locator('#detail-close').click(),
	};
}

function keyboardDriver(page) {
	// Moves the focus with Tab (or Shift+Tab, when the target comes earlier
	// in the document) until it is on sel, and checks that the focused
	// element shows a focus ring.
	async function focus(sel) {
		const where = () => page.evaluate((s) => {
			const a = document.activeElement;
			if (a && a !== document.body && a.matches(s))
				return 'here';
			const t = document.querySelector(s);
			if (!t || !a || a === document.body)
				return 'Tab';
			return a.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_PRECEDING ? 'Shift+Tab' : 'Tab';
		}, sel);
		for (let i = 0; i < 150; i++) {
			const w = await where();
			if (w === 'here') {
				const ring = await page.evaluate(() => {
					const s = getComputedStyle(document.activeElement);
					return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
				});
				assert.ok(ring, `keyboard focus on ${sel} shows no focus ring`);
				return;
			}
			await page.keyboard.press(w);
		}
		throw new Error(`keyboard: Tab never reaches ${sel}`);
	}
	return {
		focus,
		async activate(sel) {
			await focus(sel);
			await page.keyboard.press('Enter');
		},
		async fill(sel, text) {
			await focus(sel);
			await page.keyboard.press('Control+A');
			await page.keyboard.press('Delete');
			await page.keyboard.type(text);
		},
		async chooseFiles(files) {
			await focus('#upload-button');
			const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.keyboard.press('Enter')]);
			await chooser.setFiles(files);
		},
		escape: () => page.keyboard.press('Escape'),
	};
}

// --- reading the page ----------------------------------------------------------

const gridIds = (page, sel = '#grid') =>
	page.$$eval(`${sel} > .tile[data-id]`, (els) => els.map((e) => e.dataset.id));

async function waitIdle(page, title) {
	await page.waitForFunction((t) => document.getElementById('results-title').textContent === t &&
		document.getElementById('grid').getAttribute('aria-busy') === 'false' &&
		!document.querySelector('#grid .skeleton'), title, { timeout: 30000 });
}

// Every thumbnail in the grid loaded; with a key, every one through blob:.
async function waitThumbnails(page, sel, { blob }) {
	await page.waitForFunction(([s, b]) => {
		const imgs = [...document.querySelectorAll(`${s} .tile img`)];
		return imgs.every((i) => i.complete && i.naturalWidth > 0 && i.src.startsWith('blob:') === b);
	}, [sel, blob], { timeout: 30000 });
}

async function noHorizontalScroll(page, view) {
	const [sw, w] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
	assert.ok(sw <= w, `${view}: the page scrolls sideways (${sw} px wide in a ${w} px window)`);
}

// --- the flow -------------------------------------------------------------------

async function flow({ name, mode = 'mouse', viewport = { width: 1280, height: 800 }, key = null, mobile = false }) {
	const daemon = await startDaemon({ keys: key ? [KEY] : null });
	const api = apiClient(daemon.base, key ? KEY : null);
	const context = await browser.newContext({
		viewport, deviceScaleFactor: 1, isMobile: mobile, hasTouch: mobile, reducedMotion: 'reduce',
	});
	const page = await context.newPage();
	page.setDefaultTimeout(30000);
	// A listener from the start turns on playwright's file-chooser
	// interception before any button opens one (enabling it only when
	// waiting races with a fast keyboard Enter).
	page.on('filechooser', () => {});
	// The messages (and statuses) the server gives for the bad files, asked
	// directly; the page must show the same messages.
	const expectedBad = {};
	const badStatuses = key ? [401] : [];
	for (const [file, type] of Object.entries(BAD)) {
		const r = await api.upload(path.join(IMAGES, file), type);
		assert.ok(r.status >= 400 && r.status < 500 && r.body && r.body.error,
			`${file}: expected an API error, got ${r.status} ${JSON.stringify(r.body)}`);
		expectedBad[file] = r.body.error.message;
		badStatuses.push(r.status);
	}
	const errors = watchConsole(page, badStatuses);
	const drv = mode === 'keyboard' ? keyboardDriver(page) : mouseDriver(page);
	let step = 0;
	const t0 = Date.now();
	const view = async (state) => {
		console.log(`# ${name}: ${state} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
		await noHorizontalScroll(page, state);
		await checkA11y(page, `${name}: ${state}`);
		await screenshot(page, `${name}-${String(++step).padStart(2, '0')}-${state}`);
	};
	const listRequests = [];
	page.on('request', (r) => {
		const u = new URL(r.url());
		if (u.pathname === '/images' && r.method() === 'GET')
			listRequests.push(u.search);
	});

	try {
		await page.goto(`${daemon.base}/?limit=${PAGE_LIMIT}`);

		if (key) {
			// The page's own files load without a key; the API asks for one.
			await page.waitForSelector('#key-dialog[open]');
			await view('key-required');
			await page.locator('#key-input').fill('not-the-key');
			await drv.activate('#key-save');
			await page.waitForFunction(() => /did not accept/.test(document.getElementById('key-error').textContent));
			await page.waitForSelector('#key-dialog[open]');
			await view('key-rejected');
			await drv.fill('#key-input', KEY);
			await drv.activate('#key-save');
			await page.waitForSelector('#key-dialog:not([open])', { state: 'attached' });
			assert.equal(await page.evaluate(() => localStorage.getItem('clipd.apiKey')), KEY);
		}

		// Empty state.
		await waitIdle(page, 'Newest images');
		await page.waitForSelector('#empty:not([hidden])');
		assert.equal(await page.textContent('#empty-title'), 'No images yet');
		assert.equal(await page.textContent('#empty-action'), 'Choose images…');
		await view('empty');

		// Upload through the page's file input.
		const files = [...GOOD.map((f) => path.join(IMAGES, f)),
			...Object.keys(BAD).map((f) => path.join(IMAGES, f)),
			path.join(fixtures, DUPLICATE)];
		await drv.chooseFiles(files);
		await page.waitForSelector('#uploads:not([hidden])');
		await screenshot(page, `${name}-${String(++step).padStart(2, '0')}-uploading`);
		await page.waitForSelector('#uploads[data-state="done"]', { timeout: 90000 });
		const items = await page.$$eval('#upload-list .upload-item', (els) => els.map((li) => ({
			file: li.dataset.file, state: li.dataset.state,
			message: li.querySelector('.message').textContent,
			value: li.querySelector('progress').value,
		})));
		assert.equal(items.length, files.length);
		const byFile = Object.fromEntries(items.map((i) => [i.file, i]));
		for (const i of items)
			assert.equal(i.value, 1, `${i.file}: its progress bar is not full`);
		for (const f of GOOD.filter((g) => g !== DUPLICATE_OF))
			assert.equal(byFile[f].state, 'added', `${f}: ${byFile[f].message}`);
		for (const f of Object.keys(BAD)) {
			assert.equal(byFile[f].state, 'failed', `${f} should fail`);
			assert.equal(byFile[f].message, expectedBad[f], `${f}: the page should show the server's message`);
		}
		// Exactly one of the two copies was stored; the other names it.
		const pair = [byFile[DUPLICATE_OF], byFile[DUPLICATE]];
		const stored = pair.find((i) => i.state === 'added');
		const dup = pair.find((i) => i.state === 'duplicate');
		assert.ok(stored && dup, `duplicate: got ${JSON.stringify(pair)}`);
		const storedId = /#(\d+)/.exec(stored.message)[1];
		assert.equal(dup.message, `Already stored as image #${storedId}`);
		assert.equal(await page.$eval('#uploads-overall', (p) => p.value), 1);
		assert.equal(await page.textContent('#uploads-summary'),
			`${files.length} files: ${GOOD.length} added, 1 already stored, ${Object.keys(BAD).length} failed`);

		// The newest images, every page of them (infinite scroll), in the API's order.
		const all = await api.listAll();
		assert.equal(all.length, GOOD.length);
		await waitIdle(page, 'Newest images');
		if (mobile)
			await page.mouse.wheel(0, 4000);
		await page.waitForFunction((n) => document.querySelectorAll('#grid > .tile[data-id]').length === n &&
			document.getElementById('load-more').hidden, all.length);
		assert.deepEqual(await gridIds(page), all, 'newest grid order != GET /images order');
		assert.ok(listRequests.filter((q) => q.includes('cursor=')).length >= Math.ceil(all.length / PAGE_LIMIT) - 1,
			`the newest view did not page with cursors: ${listRequests.join(' ')}`);
		await waitThumbnails(page, '#grid', { blob: !!key });
		await page.evaluate(() => window.scrollTo(0, 0));
		await view('uploaded');

		// Search a golden text: the grid's order is the API's order.
		await drv.fill('#q', GOLDEN_QUERY);
		await waitIdle(page, `Results for “${GOLDEN_QUERY}”`);
		const search = await api.json(`/search?q=${encodeURIComponent(GOLDEN_QUERY)}&k=48`);
		const apiOrder = search.results.map((r) => String(r.id));
		assert.equal(apiOrder.length, GOOD.length);
		assert.deepEqual(await gridIds(page), apiOrder, 'search grid order != GET /search order');
		assert.deepEqual(await page.$$eval('#grid .score', (els) => els.map((e) => e.textContent)),
			search.results.map((r) => r.score.toFixed(3)));
		assert.match(await page.textContent('#results-meta'), /^8 results · \d+(\.\d)? ms$/);
		await waitThumbnails(page, '#grid', { blob: !!key });
		await view('search');

		// Open the best result.
		const first = apiOrder[0];
		await drv.activate('#grid > .tile:first-child .thumb');
		await page.waitForSelector('#detail[open]');
		assert.equal(await page.getAttribute('#detail', 'data-id'), first);
		const img = await api.json(`/images/${first}`);
		await page.waitForFunction((b) => {
			const i = document.getElementById('detail-image');
			return i.complete && i.naturalWidth > 0 && i.src.startsWith('blob:') === b;
		}, !!key);
		assert.equal(await page.textContent('#detail-title'), img.filename);
		assert.match(await page.textContent('#detail-facts'), new RegExp(`${img.width} × ${img.height} px`));
		const similar = await api.json(`/images/${first}/similar?k=12`);
		await page.waitForFunction(() => document.getElementById('similar-grid').getAttribute('aria-busy') === 'false');
		assert.deepEqual(await gridIds(page, '#similar-grid'), similar.results.map((r) => String(r.id)),
			'more-like-this order != GET /images/{id}/similar order');
		assert.ok(!similar.results.some((r) => String(r.id) === first));
		await page.locator('#similar-grid').scrollIntoViewIfNeeded();
		await waitThumbnails(page, '#similar-grid', { blob: !!key });
		await page.evaluate(() => { document.getElementById('detail').scrollTop = 0; });
		if (mobile) {
			const [dw, ww] = await page.evaluate(() => [document.getElementById('detail').getBoundingClientRect().width, innerWidth]);
			assert.ok(Math.abs(dw - ww) <= 1, `the detail panel is ${dw} px wide in a ${ww} px window`);
		}
		await view('detail');

		// Zero-shot classification: the bars are the API's answer.
		await drv.fill('#labels', LABELS.join('\n'));
		assert.equal(await page.inputValue('#template'), TEMPLATE);
		await drv.activate('#classify-run');
		await page.waitForFunction((n) => document.querySelectorAll('#bars .bar-row').length === n &&
			document.getElementById('bars').getAttribute('aria-busy') === 'false', LABELS.length);
		if (mode === 'keyboard')
			assert.equal(await page.evaluate(() => document.activeElement.id), 'classify-run', 'classifying lost the keyboard focus');
		const bars = await page.$$eval('#bars .bar-row', (els) => els.map((li) => ({
			label: li.querySelector('.label').textContent,
			pct: li.querySelector('.pct').textContent,
			width: parseFloat(li.querySelector('.fill').style.width),
		})));
		const cls = await api.json('/classify', {
			method: 'POST', headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify({ image_id: Number(first), labels: LABELS, template: TEMPLATE }),
		});
		assert.deepEqual(bars.map((b) => b.label), cls.labels.map((l) => l.label), 'bar order != POST /classify order');
		assert.deepEqual(bars.map((b) => b.pct), cls.labels.map((l) => `${(l.score * 100).toFixed(1)}%`));
		for (let i = 0; i < bars.length; i++)
			assert.ok(Math.abs(bars[i].width - cls.labels[i].score * 100) < 0.01, 'a bar is not as long as its probability');
		await page.locator('#bars').scrollIntoViewIfNeeded();
		await view('classified');

		// Edit metadata: two fields, saved; then one removed, saved.
		const caption = 'a test photo from the browser';
		await drv.activate('#meta-add');
		if (mode === 'keyboard') {
			await page.keyboard.type('caption');
			await page.keyboard.press('Tab');
			await page.keyboard.type(caption);
			await drv.activate('#meta-add');
			await page.keyboard.type('rating');
			await page.keyboard.press('Tab');
			await page.keyboard.type('5');
		} else {
			await drv.fill('#meta-rows > li:nth-child(1) .meta-key', 'caption');
			await drv.fill('#meta-rows > li:nth-child(1) .meta-value', caption);
			await drv.activate('#meta-add');
			await drv.fill('#meta-rows > li:nth-child(2) .meta-key', 'rating');
			await drv.fill('#meta-rows > li:nth-child(2) .meta-value', '5');
		}
		await drv.activate('#meta-save');
		await page.waitForFunction(() => document.getElementById('meta-status').textContent === 'Metadata saved.');
		assert.deepEqual((await api.json(`/images/${first}`)).metadata, { caption, rating: '5' });
		if (mode === 'keyboard')
			assert.equal(await page.evaluate(() => document.activeElement.id), 'meta-save', 'saving lost the keyboard focus');
		// The caption becomes the image's alt text, in the panel and the grid.
		assert.equal(await page.getAttribute('#detail-image', 'alt'), caption);
		assert.equal(await page.getAttribute(`#grid > .tile[data-id="${first}"] img`, 'alt'), caption);
		await page.locator('#meta-form').scrollIntoViewIfNeeded();
		await view('metadata');
		await drv.activate('#meta-rows > li:nth-child(2) button');
		await drv.activate('#meta-save');
		await page.waitForFunction(() => document.getElementById('meta-status').textContent === 'Metadata saved.' &&
			document.querySelectorAll('#meta-rows > li').length === 1);
		assert.deepEqual((await api.json(`/images/${first}`)).metadata, { caption });

		// Delete, with confirmation.
		await drv.activate('#delete-ask');
		await page.waitForSelector('#delete-confirm:not([hidden])');
		await page.locator('#delete-confirm').scrollIntoViewIfNeeded();
		await view('delete-confirm');
		await drv.activate('#delete-yes');
		await page.waitForSelector('#detail:not([open])', { state: 'attached' });
		await page.waitForFunction((id) => !document.querySelector(`#grid > .tile[data-id="${id}"]`), first);
		assert.equal((await api.call(`/images/${first}`)).status, 404);
		if (mode === 'keyboard') {
			// The focus lands on the tile that took the deleted one's place, visibly.
			const f = await page.evaluate(() => {
				const a = document.activeElement;
				return { id: a.closest('.tile')?.dataset.id, ring: a.matches(':focus-visible') };
			});
			assert.deepEqual(f, { id: (await gridIds(page))[0], ring: true }, 'focus after delete');
		}
		const afterDelete = await api.json(`/search?q=${encodeURIComponent(GOLDEN_QUERY)}&k=48`);
		assert.deepEqual(await gridIds(page), afterDelete.results.map((r) => String(r.id)));
		assert.match(await page.textContent('#results-meta'), /^7 results/);
		await view('deleted');

		// Close with Escape (the keyboard) or the close button; focus returns to the tile.
		const second = (await gridIds(page))[0];
		await drv.activate('#grid > .tile:first-child .thumb');
		await page.waitForSelector('#detail[open]');
		await drv.escape();
		await page.waitForSelector('#detail:not([open])', { state: 'attached' });
		assert.equal(await page.evaluate(() => document.activeElement.closest('.tile')?.dataset.id), second);

		// More like this: a similar image opens in the same panel.
		await drv.activate('#grid > .tile:first-child .thumb');
		await page.waitForSelector('#detail[open]');
		const more = await api.json(`/images/${second}/similar?k=12`);
		await page.waitForFunction((ids) => [...document.querySelectorAll('#similar-grid > .tile')]
			.map((t) => t.dataset.id).join() === ids.join(), more.results.map((r) => String(r.id)));
		await drv.activate('#similar-grid > .tile:first-child .thumb');
		await page.waitForFunction((id) => document.getElementById('detail').dataset.id === id, String(more.results[0].id));
		assert.equal(await page.textContent('#detail-title'), more.results[0].filename);
		await drv.escape();
		await page.waitForSelector('#detail:not([open])', { state: 'attached' });

		if (mode === 'mouse' && !key && !mobile) {
			// Drag and drop a file onto the page.
			const b64 = fs.readFileSync(path.join(IMAGES, DROPPED)).toString('base64');
			const dt = await page.evaluateHandle(([data, name]) => {
				const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
				const t = new DataTransfer();
				t.items.add(new File([bytes], name, { type: 'image/bmp' }));
				return t;
			}, [b64, DROPPED]);
			await page.dispatchEvent('#results', 'dragenter', { dataTransfer: dt });
			await page.waitForSelector('#drop-overlay:not([hidden])');
			await screenshot(page, `${name}-${String(++step).padStart(2, '0')}-dragging`);
			await page.dispatchEvent('#results', 'drop', { dataTransfer: dt });
			await page.waitForSelector('#drop-overlay', { state: 'hidden' });
			await page.waitForFunction((f) => document.querySelector(`#upload-list [data-file="${f}"]`)?.dataset.state === 'added', DROPPED);
			await page.waitForSelector('#uploads[data-state="done"]');
			const withDropped = await api.json(`/search?q=${encodeURIComponent(GOLDEN_QUERY)}&k=48`);
			assert.equal(withDropped.results.length, GOOD.length);
			await page.waitForFunction((n) => document.querySelectorAll('#grid > .tile[data-id]').length === n &&
				document.getElementById('grid').getAttribute('aria-busy') === 'false', GOOD.length);
			assert.deepEqual(await gridIds(page), withDropped.results.map((r) => String(r.id)));
			await view('dropped');
		}

		if (key) {
			// A reload: the key is remembered, no dialog; the search (kept in
			// the URL's fragment) comes back.
			await page.reload();
			await waitIdle(page, `Results for “${GOLDEN_QUERY}”`);
			assert.equal(await page.evaluate(() => document.getElementById('key-dialog').open), false);
			assert.deepEqual(await gridIds(page), afterDelete.results.map((r) => String(r.id)));
			await waitThumbnails(page, '#grid', { blob: true });
			await view('reloaded-with-key');
		}

		// The error state: the server goes away. Failed requests are expected
		// from the moment it starts stopping (the library poller may ask
		// before the search below does): refused or cut connections, or, on
		// a kept-alive one while the daemon finishes its requests in flight,
		// its 503 not_ready (cmd_serve.c's shutdown).
		errors.allow(/ERR_CONNECTION_REFUSED|ERR_EMPTY_RESPONSE|ERR_CONNECTION_RESET|status of 503 /);
		const exit = await daemon.stop();
		assert.deepEqual(exit, { code: 0, signal: null }, `clipd serve did not exit cleanly:\n${daemon.tail()}`);
		await drv.fill('#q', 'a horse');
		await page.waitForSelector('#empty.error:not([hidden])');
		assert.equal(await page.textContent('#empty-title'), 'Search failed');
		assert.match(await page.textContent('#empty-text'), /Cannot reach the clipd server/);
		assert.equal(await page.textContent('#empty-action'), 'Try again');
		await view('error');

		assert.deepEqual([...errors], [], 'console errors');
	} catch (e) {
		await screenshot(page, `${name}-failed`).catch(() => {});
		e.message += `\n--- clipd serve log (tail) ---\n${daemon.tail()}`;
		throw e;
	} finally {
		await context.close();
		await daemon.stop();
	}
}

// --- the static files ------------------------------------------------------------

check('static files: content types, ETags, 304s, CSP, no key needed', async () => {
	const daemon = await startDaemon({ keys: [KEY] });
	try {
		const files = fs.readdirSync(WWW).filter((f) => !f.startsWith('.'));
		assert.ok(files.includes('index.html') && files.includes('app.js'));
		const root = await fetch(`${daemon.base}/`);
		assert.equal(root.status, 200);
		assert.equal(await root.text(), fs.readFileSync(path.join(WWW, 'index.html'), 'utf8'));
		const csp = root.headers.get('content-security-policy') || '';
		assert.match(csp, /default-src '(none|self)'/, `CSP: ${csp}`);
		assert.match(csp, /script-src 'self'/, `CSP: ${csp}`);
		assert.match(csp, /frame-ancestors 'none'/, `CSP: ${csp}`);
		assert.doesNotMatch(csp, /https?:|\*|'unsafe-inline'|'unsafe-eval'/, `CSP allows other origins or inline code: ${csp}`);
		for (const f of files) {
			const r = await fetch(`${daemon.base}/${f}`);
			assert.equal(r.status, 200, `/${f}`);
			assert.match(r.headers.get('content-type') || '', CONTENT_TYPES[path.extname(f)], `/${f}: Content-Type`);
			assert.equal(r.headers.get('x-content-type-options'), 'nosniff', `/${f}`);
			assert.deepEqual(Buffer.from(await r.arrayBuffer()), fs.readFileSync(path.join(WWW, f)), `/${f}: bytes`);
			const etag = r.headers.get('etag');
			assert.ok(etag, `/${f}: no ETag`);
			const again = await fetch(`${daemon.base}/${f}`, { headers: { 'If-None-Match': etag } });
			assert.equal(again.status, 304, `/${f}: If-None-Match`);
		}
		// The API itself still wants the key.
		assert.equal((await fetch(`${daemon.base}/images`)).status, 401);
	} finally {
		const exit = await daemon.stop();
		assert.deepEqual(exit, { code: 0, signal: null }, `clipd serve did not exit cleanly:\n${daemon.tail()}`);
	}
});

// A library scan shows as a progress bar, which goes when the scan ends.
check('photo library: the scan progress bar appears and disappears', async () => {
	const lib = tmpdir('clipd-web-library-');
	const daemon = await startDaemon({ args: ['--library', `photos=${lib}`, '--library-settle', '0',
		'--library-rescan', '0', '--batch-size', '1'] });
	const api = apiClient(daemon.base);
	const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, reducedMotion: 'reduce' });
	const page = await context.newPage();
	const errors = watchConsole(page);
	try {
		// The first scan finds an empty folder: offline, and the page says so.
		await page.goto(`${daemon.base}/`);
		await page.waitForSelector('#libraries:not([hidden]) .library[data-state="offline"]', { timeout: 30000 });
		await checkA11y(page, 'library offline');
		// Photos arrive (copies of the fixtures, re-encoded as many distinct PNGs).
		const src = fs.readFileSync(path.join(IMAGES, 'small_50x40.bmp'));
		for (let i = 0; i < 400; i++) {
			const b = Buffer.from(src);
			b.writeUInt32LE(i, b.length - 4);   // the last pixels differ: distinct bytes, distinct images
			fs.mkdirSync(path.join(lib, `roll${i % 5}`), { recursive: true });
			fs.writeFileSync(path.join(lib, `roll${i % 5}`, `p${i}.bmp`), b);
		}
		await page.click('#libraries .library[data-library="photos"] button:has-text("Scan now")');
		await page.waitForSelector('#libraries .library[data-state="scanning"] progress', { timeout: 30000 });
		await checkA11y(page, 'library scanning');
		await screenshot(page, 'library-scanning');
		const status = await page.textContent('#libraries .library-status');
		assert.match(status, /Looking for photos|indexed/);
		// The bar goes when the scan ends, and the new images show.
		await page.waitForSelector('#libraries progress', { state: 'detached', timeout: 120000 });
		assert.equal(await page.isHidden('#libraries'), true);
		const libs = (await api.json('/libraries')).libraries;
		assert.equal(libs[0].state, 'idle');
		assert.equal(libs[0].images, 400);
		await page.waitForFunction(() => document.querySelectorAll('#grid > .tile[data-id]').length > 0);
		await screenshot(page, 'library-done');
		// The filter bar's library choice: only the library's images, kept
		// in the address. An upload (newest, so first) is not in it.
		const up = await api.upload(path.join(IMAGES, 'horse.png'), 'image/png');
		assert.equal(up.status, 201);
		const uploaded = String(up.body.id);
		const firstTile = () => page.evaluate(() => document.querySelector('#grid > .tile[data-id]')?.dataset.id);
		const settled = () => page.waitForFunction(() => document.getElementById('grid').getAttribute('aria-busy') === 'false' &&
			!document.querySelector('#grid .skeleton') && document.querySelector('#grid > .tile[data-id]'));
		await page.reload();
		await page.waitForSelector('#library-field:not([hidden])');
		await settled();
		assert.equal(await firstTile(), uploaded);
		const requests = [];
		page.on('request', (r) => {
			const u = new URL(r.url());
			if (u.pathname === '/images')
				requests.push(u.search);
		});
		await page.selectOption('#filter-library', 'photos');
		await page.waitForFunction((id) => location.hash === '#library=photos' &&
			document.querySelector('#grid > .tile[data-id]')?.dataset.id !== id, uploaded);
		await settled();
		assert.ok(requests.some((q) => q.includes('library=photos')), requests.join(' '));
		assert.match(await page.textContent('#filter-status'), /^1 filter applied$/);
		await checkA11y(page, 'library filter');
		await screenshot(page, 'library-filter');
		// A reload keeps it, and "All images" brings the upload back.
		await page.reload();
		await settled();
		assert.equal(await page.inputValue('#filter-library'), 'photos');
		assert.notEqual(await firstTile(), uploaded);
		await page.selectOption('#filter-library', '');
		await page.waitForFunction((id) => location.hash === '' &&
			document.querySelector('#grid > .tile[data-id]')?.dataset.id === id, uploaded);
		assert.deepEqual([...errors], []);
	} finally {
		await context.close();
		fs.rmSync(lib, { recursive: true, force: true });
		const exit = await daemon.stop();
		assert.deepEqual(exit, { code: 0, signal: null }, `clipd serve did not exit cleanly:\n${daemon.tail()}`);
	}
});

check('mouse, desktop: upload, search, detail, classify, metadata, delete', () =>
	flow({ name: 'desktop' }));

check('API key required: the page asks, keeps the key, shows blob: images', () =>
	flow({ name: 'key', key: true }));

check('keyboard only', () =>
	flow({ name: 'keyboard', mode: 'keyboard' }));

check('375-pixel-wide viewport', () =>
	flow({ name: 'phone', viewport: { width: 375, height: 740 }, mobile: true }));

// --- addresses, the original, more results, filters, -words ----------------------

const METADATA = {
	'horse.png': { album: 'Paris', tags: ['animal', 'farm'] },
	'chelsea.png': { album: 'Paris', tags: ['animal', 'pet'] },
	'coffee.png': { album: 'Paris' },
	'rocket.jpg': { album: 'Rome' },
	'camera.png': { album: 'Rome', tags: ['pet'] },
};
const DATED = path.join(TEST_DATA_DIR, 'photos', 'datetime.jpg');   // taken 2023-06-17T14:03:22+02:00

check('addresses, the original, more results, filters, taken dates, -words', async () => {
	const daemon = await startDaemon();
	const api = apiClient(daemon.base);
	const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
	const page = await context.newPage();
	const errors = watchConsole(page, [404]);
	const requests = [];
	page.on('request', (r) => {
		const u = new URL(r.url());
		if (u.pathname === '/images' || u.pathname === '/search')
			requests.push(u.pathname + u.search);
	});
	let step = 0;
	const view = async (label) => {
		await checkA11y(page, `paths: ${label}`);
		await screenshot(page, `paths-${String(++step).padStart(2, '0')}-${label}`);
	};
	const waitGrid = (ids) => page.waitForFunction((want) =>
		document.getElementById('grid').getAttribute('aria-busy') === 'false' &&
		!document.querySelector('#grid .skeleton') &&
		[...document.querySelectorAll('#grid > .tile[data-id]')].map((e) => e.dataset.id).join() === want.join(),
	ids, { timeout: 30000 }).catch(async (e) => {
		e.message += `\ngrid: ${(await gridIds(page)).join()} want: ${ids.join()}\nrequests: ${requests.slice(-6).join(' ')}`;
		throw e;
	});
	const searchIds = async (q) => (await api.json(`/search?${q}`)).results.map((r) => String(r.id));
	const listIds = async (q) => {
		const ids = [];
		let cursor = null;
		do {
			const r = await api.json(`/images?limit=100&${q}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
			ids.push(...r.items.map((i) => String(i.id)));
			cursor = r.next_cursor;
		} while (cursor);
		return ids;
	};
	try {
		const byName = {};
		for (const f of GOOD) {
			const meta = METADATA[f] ? `&metadata=${encodeURIComponent(JSON.stringify(METADATA[f]))}` : '';
			const r = await api.call(`/images?filename=${encodeURIComponent(f)}${meta}`, {
				method: 'POST', body: fs.readFileSync(path.join(IMAGES, f)),
				headers: { 'Content-Type': f.endsWith('.jpg') ? 'image/jpeg' : 'image/png' },
			});
			assert.equal(r.status, 201, `${f}: ${JSON.stringify(r.body)}`);
			byName[f] = r.body;
		}
		const dated = await api.upload(DATED, 'image/jpeg');
		assert.equal(dated.status, 201);
		assert.equal(dated.body.taken_at, '2023-06-17T14:03:22+02:00');
		const datedId = String(dated.body.id);
		const total = GOOD.length + 1;

		// Browsing two at a time: "Load more" pages with the cursor.
		await page.goto(`${daemon.base}/?limit=2&k=3`);
		await waitIdle(page, 'Newest images');
		const all = await listIds('');
		assert.equal(all.length, total);
		await page.waitForFunction((n) => document.querySelectorAll('#grid > .tile[data-id]').length === n &&
			document.getElementById('load-more').hidden, total);
		assert.deepEqual(await gridIds(page), all);

		// A metadata chip: browsing the album, page after page.
		requests.length = 0;
		await page.fill('#filter-key', 'album');
		await page.fill('#filter-value', 'Paris');
		await page.click('#filter-add');
		const paris = await listIds('filter.album=Paris');
		assert.equal(paris.length, 3);
		await waitGrid(paris);
		assert.equal(await page.textContent('#filter-chips'), 'album = Paris×');
		assert.ok(requests.some((q) => q.includes('filter.album=Paris') && q.includes('cursor=')),
			`the filtered browse did not page with its cursor: ${requests.join(' ')}`);
		await view('browse-album');
		// The filters are in the page's address: a reload keeps them.
		assert.equal(await page.evaluate(() => location.hash), '#filter.album=Paris');
		requests.length = 0;
		await page.reload();
		await waitGrid(paris);
		assert.equal(await page.textContent('#filter-chips'), 'album = Paris×');
		assert.match(await page.textContent('#filter-status'), /^1 filter applied$/);
		assert.ok(requests.length && requests.every((q) => q.includes('filter.album=Paris')),
			`after a reload: ${requests.join(' ')}`);

		// The chip applies to search as well; -words become not=.
		requests.length = 0;
		await page.fill('#q', 'a photo of a cat -horse');
		const parisSearch = await searchIds('q=a+photo+of+a+cat&not=horse&filter.album=Paris&k=3');
		await waitGrid(parisSearch);
		assert.ok(requests.some((q) => /^\/search\?q=a\+photo\+of\+a\+cat&k=3&not=horse&filter\.album=Paris$/.test(q)),
			`search with a chip and -horse: ${requests.join(' ')}`);
		assert.ok(!parisSearch.includes(String(byName['rocket.jpg'].id)));

		// A second chip on another key narrows it (array values match an element).
		await page.fill('#filter-key', 'tags');
		await page.fill('#filter-value', 'pet');
		await page.press('#filter-value', 'Enter');
		await waitGrid([String(byName['chelsea.png'].id)]);
		assert.deepEqual(await searchIds('q=a+photo+of+a+cat&not=horse&filter.album=Paris&filter.tags=pet&k=3'),
			[String(byName['chelsea.png'].id)]);
		await view('search-two-chips');
		// Search text and chips in the address; back from an image keeps
		// them, and the address opened elsewhere shows the same view.
		const chelsea = String(byName['chelsea.png'].id);
		const twoChips = `#q=${encodeURIComponent('a photo of a cat -horse')}&filter.album=Paris&filter.tags=pet`;
		assert.equal(await page.evaluate(() => location.hash), twoChips);
		await page.click('#grid > .tile:first-child .thumb');
		await page.waitForFunction((id) => location.hash === `#/images/${id}`, chelsea);
		await page.goBack();
		await page.waitForSelector('#detail:not([open])', { state: 'attached' });
		assert.equal(await page.evaluate(() => location.hash), twoChips);
		assert.equal(await page.textContent('#filter-chips'), 'album = Paris×tags = pet×');
		await waitGrid([chelsea]);
		const shared = await context.newPage();
		const sharedRequests = [];
		shared.on('request', (r) => {
			const u = new URL(r.url());
			if (u.pathname === '/search')
				sharedRequests.push(u.pathname + u.search);
		});
		await shared.goto(`${daemon.base}/${twoChips}`);
		await shared.waitForFunction((id) => document.getElementById('grid').getAttribute('aria-busy') === 'false' &&
			[...document.querySelectorAll('#grid > .tile[data-id]')].map((e) => e.dataset.id).join() === id, chelsea);
		assert.equal(await shared.inputValue('#q'), 'a photo of a cat -horse');
		assert.equal(await shared.textContent('#filter-chips'), 'album = Paris×tags = pet×');
		assert.ok(sharedRequests.some((q) => q.includes('not=horse&filter.album=Paris&filter.tags=pet')),
			`the shared address's search: ${sharedRequests.join(' ')}`);
		await shared.close();
		// Removing both chips: the whole collection again.
		await page.click('#filter-chips > li:first-child button');
		await waitGrid(await searchIds('q=a+photo+of+a+cat&not=horse&filter.tags=pet&k=3'));
		await page.click('#filter-chips > li:first-child button');
		assert.equal(await page.$$eval('#filter-chips > li', (els) => els.length), 0);
		assert.equal(await page.evaluate(() => location.hash), `#q=${encodeURIComponent('a photo of a cat -horse')}`);

		// Negative terms, one of them quoted: the page's order is the API's with not=.
		requests.length = 0;
		await page.fill('#q', 'a photo of a cat -horse -"cup of coffee"');
		const negative = await searchIds('q=a+photo+of+a+cat&not=horse&not=cup+of+coffee&k=3');
		await waitGrid(negative);
		assert.ok(requests.includes('/search?q=a+photo+of+a+cat&k=3&not=horse&not=cup+of+coffee'),
			`negative terms: ${requests.join(' ')}`);

		// More search results: the same query with a larger k each time.
		requests.length = 0;
		await page.fill('#q', GOLDEN_QUERY);
		const full = await searchIds(`q=${encodeURIComponent(GOLDEN_QUERY)}&k=48`);
		assert.equal(full.length, total);
		await waitGrid(full.slice(0, 3));
		assert.equal(await page.isVisible('#load-more'), true);
		await page.click('#load-more');
		await waitGrid(full.slice(0, 6));
		await page.click('#load-more');
		await waitGrid(full);
		await page.waitForSelector('#load-more', { state: 'hidden' });
		assert.deepEqual(requests.map((q) => /k=(\d+)/.exec(q)[1]), ['3', '6', '12']);
		assert.match(await page.textContent('#results-meta'), new RegExp(`^${total} results`));

		// The taken-date range: the day of the dated photo, then the day after.
		await page.fill('#q', '');
		await waitGrid(all);
		await page.fill('#taken-from', '2023-06-17');
		await page.fill('#taken-to', '2023-06-17');
		await waitGrid([datedId]);
		assert.ok(requests.some((q) => q.includes('taken_after=2023-06-16T23%3A59%3A59Z') && q.includes('taken_before=2023-06-18T00%3A00%3A00Z')),
			`taken range: ${requests.slice(-3).join(' ')}`);
		await view('taken-range');
		// The days are in the address too, and come back with a reload.
		assert.equal(await page.evaluate(() => location.hash), '#taken_from=2023-06-17&taken_until=2023-06-17');
		await page.reload();
		await waitGrid([datedId]);
		assert.deepEqual([await page.inputValue('#taken-from'), await page.inputValue('#taken-to')],
			['2023-06-17', '2023-06-17']);
		await page.fill('#taken-from', '2023-06-18');
		await page.fill('#taken-to', '');
		await page.waitForSelector('#empty:not([hidden])');
		assert.equal(await page.textContent('#empty-title'), 'No images match the filters');
		await page.fill('#taken-from', '');
		await waitGrid(all);

		// An image's address: a click pushes it, back and forward work.
		await page.fill('#q', GOLDEN_QUERY);
		await waitGrid(full.slice(0, 3));
		const first = full[0];
		await page.click('#grid > .tile:first-child .thumb');
		await page.waitForSelector('#detail[open]');
		assert.equal(await page.evaluate(() => location.hash), `#/images/${first}`);
		const img = await api.json(`/images/${first}`);
		const href = await page.getAttribute('#detail-original', 'href');
		assert.equal(href, `/images/${first}/file`);
		const original = await page.evaluate(async (u) => {
			const r = await fetch(u);
			return { status: r.status, bytes: (await r.arrayBuffer()).byteLength };
		}, href);
		assert.deepEqual(original, { status: 200, bytes: img.bytes });
		await page.goBack();
		await page.waitForSelector('#detail:not([open])', { state: 'attached' });
		assert.equal(await page.evaluate(() => location.hash), `#q=${encodeURIComponent(GOLDEN_QUERY)}`);
		await page.goForward();
		await page.waitForFunction((id) => document.getElementById('detail').open &&
			document.getElementById('detail').dataset.id === id, first);
		// A similar image gets its own address; back returns to the first.
		await page.waitForFunction(() => document.getElementById('similar-grid').getAttribute('aria-busy') === 'false' &&
			document.querySelector('#similar-grid > .tile'));
		const other = await page.getAttribute('#similar-grid > .tile:first-child', 'data-id');
		await page.click('#similar-grid > .tile:first-child .thumb');
		await page.waitForFunction((id) => location.hash === `#/images/${id}` &&
			document.getElementById('detail').dataset.id === id, other);
		await page.goBack();
		await page.waitForFunction((id) => location.hash === `#/images/${id}` &&
			document.getElementById('detail').dataset.id === id, first);
		// Closing goes back to the results, and their address.
		await page.click('#detail-close');
		await page.waitForSelector('#detail:not([open])', { state: 'attached' });
		await page.waitForFunction((h) => location.hash === h, `#q=${encodeURIComponent(GOLDEN_QUERY)}`);
		await waitGrid(full.slice(0, 3));
		// Closing and opening again in one go (a fast user): the going back
		// of the close does not close the image opened again.
		await page.click('#grid > .tile:first-child .thumb');
		await page.waitForSelector('#detail[open]');
		await page.evaluate(() => {
			document.getElementById('detail-close').click();
			document.querySelector('#grid > .tile:first-child .thumb').click();
		});
		await page.waitForTimeout(500);
		assert.deepEqual(await page.evaluate(() => [location.hash, document.getElementById('detail').open]),
			[`#/images/${first}`, true], 'closing and reopening at once');
		await page.keyboard.press('Escape');
		await page.waitForFunction((h) => location.hash === h && !document.getElementById('detail').open,
			`#q=${encodeURIComponent(GOLDEN_QUERY)}`);

		// Opening an address directly: the capture time is shown.
		await page.goto(`${daemon.base}/#/images/${datedId}`);
		await page.waitForFunction((id) => document.getElementById('detail').open &&
			document.getElementById('detail').dataset.id === id &&
			/Taken2023-06-17 14:03 UTC\+02:00/.test(document.getElementById('detail-facts').textContent), datedId);
		assert.equal(await page.getAttribute('#detail-original', 'href'), `/images/${datedId}/file`);
		await view('detail-by-address');
		await page.click('#detail-close');
		await page.waitForSelector('#detail:not([open])', { state: 'attached' });
		assert.equal(await page.evaluate(() => location.hash), '');
		// A photo that states no capture time has no "Taken" line.
		const plain = String(byName['horse.png'].id);
		await page.goto(`${daemon.base}/#/images/${plain}`);
		await page.waitForFunction((id) => document.getElementById('detail').open &&
			document.getElementById('detail').dataset.id === id &&
			/Added/.test(document.getElementById('detail-facts').textContent), plain);
		assert.deepEqual(await page.$$eval('#detail-facts dt', (els) => els.map((e) => e.textContent).filter((t) => t === 'Taken')), []);
		await page.click('#detail-close');

		assert.deepEqual([...errors], [], 'console errors');
	} catch (e) {
		await screenshot(page, 'paths-failed').catch(() => {});
		e.message += `\n--- clipd serve log (tail) ---\n${daemon.tail()}`;
		throw e;
	} finally {
		await context.close();
		const exit = await daemon.stop();
		assert.deepEqual(exit, { code: 0, signal: null }, `clipd serve did not exit cleanly:\n${daemon.tail()}`);
	}
});

// --- several nodes: the catalog's database out of reach --------------------------

// A node on a PostgreSQL catalog whose server stops (a crash, pg_ctl -m
// immediate) and comes back: the search still answers from the node's index
// and the page says why the results have no details; an upload made then
// waits and retries (503 catalog_unavailable with Retry-After) and is added
// once the server is back; the banner goes with the next search.
const PG_CLUSTER = path.join(REPO, 'tests/pg/pg-cluster.sh');
const pgCluster = (...args) => execFileSync('bash', [PG_CLUSTER, ...args], { encoding: 'utf8', timeout: 180000 }).trim();
const PG_AVAILABLE = spawnSync('bash', [PG_CLUSTER, 'available']).status === 0;

check('PostgreSQL out of reach: the banner, an upload that waits, then both recover', async () => {
	const [dir, base] = pgCluster('start').split(' ');
	let daemon = null, context = null;
	try {
		pgCluster('createdb', dir, 'clipd_web');
		// no row cache: with it, a search of rows the node has read answers
		// in full from the cache even while the database is down
		daemon = await startDaemon({ args: ['--catalog', `${base}/clipd_web`, '--row-cache', '0'] });
		const api = apiClient(daemon.base);
		for (const f of ['horse.png', 'chelsea.png', 'coffee.png'])
			assert.equal((await api.upload(path.join(IMAGES, f), 'image/png')).status, 201);
		context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
		let page = await context.newPage();
		await page.goto(`${daemon.base}/`);
		await waitIdle(page, 'Newest images');
		assert.equal(await page.isHidden('#banner'), true);
		await context.close();
		context = null;

		// A page opened while the database is down (a new context: no
		// thumbnail in the browser's cache) gets its results from the index.
		pgCluster('halt', dir);
		context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
		page = await context.newPage();
		// the thumbnails' and the upload's 503s while the database is down
		const errors = watchConsole(page, [503]);
		await page.goto(`${daemon.base}/#q=${encodeURIComponent(GOLDEN_QUERY)}`);
		await waitIdle(page, `Results for “${GOLDEN_QUERY}”`);
		const degraded = await api.json(`/search?q=${encodeURIComponent(GOLDEN_QUERY)}&k=48`);
		assert.equal(degraded.catalog_unavailable, true);
		assert.deepEqual(await gridIds(page), degraded.results.map((r) => String(r.id)));
		assert.equal(degraded.results.length, 3);
		await page.waitForSelector('#banner:not([hidden])');
		assert.match(await page.textContent('#banner-text'), /catalog database cannot be reached/);
		// the thumbnails cannot load either; each tile's button is still named
		await page.waitForFunction(() => [...document.querySelectorAll('#grid .tile img')]
			.every((i) => i.classList.contains('failed')), null, { timeout: 30000 });
		await checkA11y(page, 'catalog unavailable');
		await screenshot(page, 'catalog-unavailable');

		// An upload now waits for the database, then goes in.
		const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.click('#upload-button')]);
		await chooser.setFiles([path.join(IMAGES, 'rocket.jpg')]);
		await page.waitForSelector('#upload-list .upload-item[data-state="waiting"]', { timeout: 30000 });
		assert.match(await page.textContent('#upload-list .upload-item'),
			/The catalog database cannot be reached, retrying in \d+ s/);
		await screenshot(page, 'catalog-upload-waiting');
		pgCluster('resume', dir);
		await page.waitForSelector('#uploads[data-state="done"]', { timeout: 60000 });
		assert.equal(await page.getAttribute('#upload-list .upload-item', 'data-state'), 'added');

		// The next search has the details again, the new image among them.
		await page.fill('#q', 'a rocket');
		await page.press('#q', 'Enter');
		await waitIdle(page, 'Results for “a rocket”');
		const back = await api.json('/search?q=a+rocket&k=48');
		assert.equal(back.catalog_unavailable, undefined);
		assert.equal(back.results.length, 4);
		assert.deepEqual(await gridIds(page), back.results.map((r) => String(r.id)));
		await page.waitForSelector('#banner', { state: 'hidden' });
		assert.deepEqual([...errors], []);
	} finally {
		if (context)
			await context.close();
		if (daemon) {
			const exit = await daemon.stop();
			assert.deepEqual(exit, { code: 0, signal: null }, `clipd serve did not exit cleanly:\n${daemon.tail()}`);
		}
		pgCluster('stop', dir);
	}
}, { timeout: 180000, skip: PG_AVAILABLE ? false : 'PostgreSQL 15 is not installed (tests/packages.txt; deploy/bootstrap.sh --test installs it)' });
