// Helpers for the browser test: start a real `clipd serve`, talk to its API
// from node, launch Debian's Chromium through playwright-core, run axe-core
// and collect console errors and screenshots.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '../..');
export const CHROMIUM = process.env.CLIPD_TEST_CHROMIUM || '/usr/bin/chromium';
export const CLIPD_BIN = process.env.CLIPD_BIN || path.join(REPO, 'build/clipd');
export const TEST_DATA_DIR = process.env.TEST_DATA_DIR || path.join(REPO, 'tests/data');
export const IMAGES = path.join(TEST_DATA_DIR, 'images');
export const MODEL = path.join(TEST_DATA_DIR, 'tiny-clip-hf');
export const ARTIFACTS = process.env.CLIPD_WEB_ARTIFACTS || path.join(REPO, 'tests/artifacts/web');
export const WWW = path.join(REPO, 'server/app/www');

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu',
	'--disable-background-networking', '--disable-component-update', '--no-first-run'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tmpdir(prefix) {
	return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// A real daemon on an ephemeral loopback port with a fresh data directory.
// keys: API keys to require (written to an --api-key-file), or none;
// args: more options for clipd serve.
export async function startDaemon({ keys = null, args: extra = [] } = {}) {
	const dir = tmpdir('clipd-web-');
	const data = path.join(dir, 'data');
	fs.mkdirSync(data);
	const portFile = path.join(dir, 'port');
	const args = ['serve', '--model', MODEL, '--data', data, '--listen', '127.0.0.1:0', '--port-file', portFile];
	if (keys) {
		const keyFile = path.join(dir, 'keys');
		fs.writeFileSync(keyFile, keys.join('\n') + '\n', { mode: 0o600 });
		args.push('--api-key-file', keyFile);
	}
	args.push(...extra);
	const proc = spawn(CLIPD_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
	const log = [];
	proc.stderr.setEncoding('utf8');
	proc.stderr.on('data', (s) => {
		log.push(...s.split('\n').filter(Boolean));
		if (log.length > 400)
			log.splice(0, log.length - 400);
	});
	let exited = null;
	const exit = new Promise((resolve) => proc.on('exit', (code, signal) => {
		exited = { code, signal };
		resolve(exited);
	}));
	proc.on('error', (e) => log.push(`spawn: ${e.message}`));
	const tail = () => log.slice(-40).join('\n');

	let port = null;
	for (let t = Date.now(); !port; await sleep(50)) {
		if (exited)
			throw new Error(`clipd serve exited early (${JSON.stringify(exited)}):\n${tail()}`);
		if (Date.now() - t > 60000)
			throw new Error(`clipd serve did not write its port file within 60 s:\n${tail()}`);
		try {
			const s = fs.readFileSync(portFile, 'utf8').trim();
			if (/^\d+$/.test(s))
				port = Number(s);
		} catch {
			/* not yet */
		}
	}
	const base = `http://127.0.0.1:${port}`;
	for (let t = Date.now(); ; await sleep(100)) {
		if (exited)
			throw new Error(`clipd serve exited (${JSON.stringify(exited)}):\n${tail()}`);
		try {
			if ((await fetch(`${base}/readyz`)).ok)
				break;
		} catch {
			/* not listening yet */
		}
		if (Date.now() - t > 60000)
			throw new Error(`clipd serve was not ready within 60 s:\n${tail()}`);
	}

	return {
		base, dir, log, tail,
		// SIGTERM, then the exit status (a sanitizer report makes it nonzero).
		async stop() {
			if (!exited) {
				proc.kill('SIGTERM');
				const timer = setTimeout(() => proc.kill('SIGKILL'), 20000);
				await exit;
				clearTimeout(timer);
			}
			fs.rmSync(dir, { recursive: true, force: true });
			return exited;
		},
	};
}

// The API from node, to compare the page with.
export function apiClient(base, key = null) {
	const headers = key ? { Authorization: `Bearer ${key}` } : {};
	const call = async (p, opts = {}) => {
		const res = await fetch(base + p, { ...opts, headers: { ...headers, ...(opts.headers || {}) } });
		const text = await res.text();
		let body = null;
		try {
			body = text ? JSON.parse(text) : null;
		} catch {
			body = text;
		}
		return { status: res.status, body, headers: res.headers };
	};
	return {
		call,
		async json(p, opts) {
			const r = await call(p, opts);
			if (r.status < 200 || r.status > 299)
				throw new Error(`${opts && opts.method || 'GET'} ${p}: ${r.status} ${JSON.stringify(r.body)}`);
			return r.body;
		},
		async listAll() {
			const ids = [];
			let cursor = null;
			do {
				const q = cursor ? `?limit=100&cursor=${encodeURIComponent(cursor)}` : '?limit=100';
				const r = await this.json(`/images${q}`);
				ids.push(...r.items.map((i) => String(i.id)));
				cursor = r.next_cursor;
			} while (cursor);
			return ids;
		},
		upload(file, type) {
			return call(`/images?filename=${encodeURIComponent(path.basename(file))}`, {
				method: 'POST', body: fs.readFileSync(file), headers: { 'Content-Type': type },
			});
		},
	};
}

export async function launchBrowser() {
	const { chromium } = await import('playwright-core');
	return chromium.launch({
		executablePath: CHROMIUM,
		headless: true,
		args: CHROMIUM_ARGS,
		timeout: 60000,
	});
}

// Console errors and uncaught exceptions of a page. A "Failed to load
// resource" line is the browser's note of an HTTP error the page asked for;
// those whose status the flow expects (401 before the key, 422 for a bad
// upload, ...) are allowed, every other error is a failure.
// errors.allow(regexp) allows more from then on (e.g. once the daemon is
// stopped on purpose).
export function watchConsole(page, allowedStatuses = []) {
	const errors = [];
	const allowed = [];
	errors.allow = (re) => allowed.push(re);
	page.on('console', (m) => {
		if (m.type() !== 'error')
			return;
		const t = m.text();
		const net = /^Failed to load resource: the server responded with a status of (\d+)/.exec(t);
		if (net && allowedStatuses.includes(Number(net[1])))
			return;
		if (allowed.some((re) => re.test(t)))
			return;
		errors.push(`console.error: ${t} (${m.location().url || ''})`);
	});
	page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
	return errors;
}

const AXE_SOURCE = () => fs.readFileSync(path.join(HERE, 'node_modules/axe-core/axe.min.js'), 'utf8');
let axeSource = null;

// axe-core in the page (through the DevTools protocol, so the page's CSP,
// which allows no inline script, stays as it is); fails on any serious or
// critical violation.
export async function checkA11y(page, view) {
	if (!axeSource)
		axeSource = AXE_SOURCE();
	if (!(await page.evaluate(() => typeof window.axe === 'object')))
		await page.evaluate(axeSource);
	const result = await page.evaluate(async () => {
		const r = await window.axe.run(document, { resultTypes: ['violations'] });
		return r.violations.map((v) => ({
			id: v.id, impact: v.impact, help: v.help,
			nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}: ${n.failureSummary}`),
		}));
	});
	const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
	if (bad.length) {
		const text = bad.map((v) => `[${v.impact}] ${v.id}: ${v.help}\n    ${v.nodes.join('\n    ')}`).join('\n');
		throw new Error(`axe-core: ${bad.length} serious/critical violation(s) on "${view}":\n${text}`);
	}
	return result;
}

export async function screenshot(page, name) {
	fs.mkdirSync(ARTIFACTS, { recursive: true });
	await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: false });
}
