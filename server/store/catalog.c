/*
 * The catalog: a data directory's store, blobs and vector index, composed
 * so that they stay consistent. This file: open and close (the lock, the
 * model, the index loaded and replayed or rebuilt), saving and rebuilding
 * the index, the model switch. Image operations are in catalog_images.c,
 * searches in catalog_search.c, checks in catalog_check.c. See catalog.h
 * for the contract.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog_internal.h"
#include "clock.h"
#include "datadir.h"
#include "files.h"
#include "pgstore.h"

int cat_unavailable(const catalog *c, const char *op, store_error *err)
{
	const char *what = !strcmp(op, "keyword_search") ? "keyword search (mode=keyword or hybrid)"
			   : !strncmp(op, "lib", 3) ? "photo libraries" : op;
	return store_fail(err, STORE_ERR_INVALID, "%s: not available with the %s catalog yet", what, c->be->name);
}

int cat_normalize(const float *v, size_t dim, float *out, store_error *err)
{
	double ss = 0;
	for (size_t i = 0; i < dim; i++) {
		if (!isfinite(v[i]))
			return store_fail(err, STORE_ERR_INVALID, "vector has a non-finite component");
		ss += (double)v[i] * v[i];
	}
	if (!(ss > 0))
		return store_fail(err, STORE_ERR_INVALID, "vector is zero");
	double inv = 1.0 / sqrt(ss);
	for (size_t i = 0; i < dim; i++)
		out[i] = (float)(v[i] * inv);
	return 0;
}

/* ---- params --------------------------------------------------------------- */

struct catalog_params catalog_default_params(void)
{
	struct catalog_params p;
	memset(&p, 0, sizeof p);
	p.index = idx_default_params();
	p.exact_filter_limit = CATALOG_EXACT_FILTER_LIMIT;
	p.busy_timeout_ms = 5000;
	p.row_cache_mb = CATALOG_ROW_CACHE_MB;
	return p;
}

struct catalog_query catalog_default_query(void)
{
	struct catalog_query q;
	memset(&q, 0, sizeof q);
	q.k = 10;
	return q;
}

/* ---- the index at open ------------------------------------------------------ */

static int retrain_source(void *ud, int64_t **ids, float **vecs, size_t *n, uint64_t *seq)
{
	catalog *c = ud;
	return c->be->load_vectors(c->db, c->model.dim, ids, vecs, n, seq, NULL) == 0 ? 0 : -1;
}

void cat_maybe_retrain(catalog *c)
{
	if (c->readonly || !c->ix)
		return;
	if (c->be->store_index_params) {   /* a shared catalog: one node trains (catalog_index.c) */
		cat_train_shared(c);
		return;
	}
	pthread_rwlock_rdlock(&c->ixlock);
	if (c->ix)
		idx_maybe_retrain(c->ix, retrain_source, c);
	pthread_rwlock_unlock(&c->ixlock);
}

/* Build a fresh index from every stored vector. */
static int build_from_store(catalog *c, idx **out, size_t *n_out, store_error *err)
{
	int64_t *ids = NULL;
	float *vecs = NULL;
	size_t n = 0;
	uint64_t seq = 0;
	idx_error ie;
	if (c->be->index_params)
		return cat_build_shared(c, out, n_out, err);
	int rc = c->be->load_vectors(c->db, c->model.dim, &ids, &vecs, &n, &seq, err);
	if (rc != 0)
		return rc;
	struct idx_params ip = c->ip;
	ip.dim = c->model.dim;
	if (idx_build(&ip, ids, vecs, n, seq, out, &ie) != 0)
		rc = cat_idx_fail(err, &ie, "build the index");
	free(ids);
	free(vecs);
	if (rc == 0 && n_out)
		*n_out = n;
	return rc;
}

/* Save ix (already current) and forget the change log it covers. */
static int save_and_prune(catalog *c, idx *ix, store_error *err)
{
	idx_error ie;
	uint64_t seq = idx_seq(ix);
	if (idx_save(ix, c->index_path, c->model.fingerprint, &ie) != 0)
		return cat_idx_fail(err, &ie, "save the index");
	atomic_store(&c->saved_seq, seq);
	/* Pruning is housekeeping: failing at it (a full disk) loses nothing. */
	c->be->prune_changes(c->db, seq, NULL);
	return 0;
}

/* Bring a loaded index up to date from the change log. 0 and *why empty on
 * success; 0 with *why set when the index cannot be used; negative on a
 * database failure. */
static int replay(catalog *c, idx *ix, struct catalog_open_report *rep, char *why, size_t why_len,
		  store_error *err)
{
	struct store_changes ch;
	store_error se;
	idx_error ie;
	uint64_t from = idx_seq(ix);
	int rc = c->be->changes_since(c->db, from, c->model.dim, &ch, &se);
	if (rc == STORE_ERR_NOT_FOUND) {
		datadir_fmt(why, why_len, "%s", se.msg);
		return 0;
	}
	if (rc != 0) {
		if (err)
			*err = se;
		return rc;
	}
	if (idx_remove(ix, ch.remove_ids, ch.n_remove, ch.last, &ie) != 0 ||
	    idx_add(ix, ch.add_ids, ch.add_vecs, ch.n_add, ch.last, &ie) != 0)
		datadir_fmt(why, why_len, "replaying the change log failed: %s", ie.msg);
	if (rep) {
		rep->replayed_adds = ch.n_add;
		rep->replayed_removes = ch.n_remove;
	}
	store_changes_clear(&ch);
	if (*why)
		return 0;
	int64_t images = 0;
	if ((rc = c->be->count(c->db, &images, err)) != 0)
		return rc;
	if ((int64_t)idx_count(ix) != images)
		snprintf(why, why_len, "the index holds %zu vectors but the database %lld images",
			 idx_count(ix), (long long)images);
	return 0;
}

static int open_index(catalog *c, struct catalog_open_report *rep, store_error *err)
{
	char why[320] = "";
	idx_error ie;
	idx *ix = NULL;
	struct idx_params ip = c->ip;
	ip.dim = c->model.dim;
	int rc = idx_load(c->index_path, &ip, c->model.fingerprint, &ix, &ie);
	if (rc != 0) {
		struct stat sb;
		if (stat(c->index_path, &sb) != 0 && errno == ENOENT)
			datadir_fmt(why, sizeof why, "no index file");
		else if (rc == IDX_ERR_MISMATCH)
			datadir_fmt(why, sizeof why, "the index file is from another model or dimension (%s)", ie.msg);
		else if (rc == IDX_ERR_CORRUPT)
			datadir_fmt(why, sizeof why, "the index file is damaged (%s)", ie.msg);
		else
			datadir_fmt(why, sizeof why, "the index file cannot be read (%s)", ie.msg);
		ix = NULL;
	} else {
		uint64_t file_seq = idx_seq(ix);
		if ((c->be->index_params && (rc = cat_snapshot_shared(c, ix, why, sizeof why, err)) != 0) ||
		    (!*why && (rc = replay(c, ix, rep, why, sizeof why, err)) != 0)) {
			idx_free(ix);
			return rc;
		}
		if (*why) {
			idx_free(ix);
			ix = NULL;
		} else {
			atomic_store(&c->saved_seq, file_seq);
			rep->index_loaded = 1;
			snprintf(rep->index_message, sizeof rep->index_message,
				 "loaded %s index at change %llu, replayed %zu adds and %zu removes: %zu vectors",
				 idx_type(ix), (unsigned long long)file_seq, rep->replayed_adds,
				 rep->replayed_removes, idx_count(ix));
		}
	}
	if (!ix) {
		size_t n = 0;
		rep->replayed_adds = rep->replayed_removes = 0;
		if ((rc = build_from_store(c, &ix, &n, err)) != 0)
			return rc;
		rep->index_rebuilt = 1;
		store_error se;
		if (!c->readonly && save_and_prune(c, ix, &se) != 0)
			datadir_fmt(rep->index_message, sizeof rep->index_message,
				    "rebuilt the index from %zu stored vectors (%s), not saved: %s", n, why, se.msg);
		else
			datadir_fmt(rep->index_message, sizeof rep->index_message,
				    "rebuilt the index from %zu stored vectors: %s", n, why);
	}
	if (rep->index_rebuilt)
		atomic_store(&c->params_generation, c->built_generation);
	c->ix = ix;
	cat_maybe_retrain(c);
	return 0;
}

static int rebuild(catalog *c, int save, store_error *err);
static int rebuild_locked(catalog *c, int save, store_error *err);

/* ---- following the change sequence ------------------------------------------------ */

static void applied_changed(catalog *c);

int cat_catch_up_locked(catalog *c, size_t *applied, store_error *err)
{
	struct store_changes ch;
	idx_error ie;
	int touched_only = 0;
	if (applied)
		*applied = 0;
	pthread_rwlock_rdlock(&c->ixlock);
	uint64_t from = idx_seq(c->ix);
	int rc = c->be->changes_since(c->db, from, c->model.dim, &ch, err);
	if (rc == 0) {
		/* cached rows: dropped before the index (and so the node) says
		 * these changes are applied */
		if (ch.touched)
			rowcache_flush(c->rows);
		rowcache_invalidate(c->rows, ch.remove_ids, ch.n_remove);
		rowcache_invalidate(c->rows, ch.add_ids, ch.n_add);
		if (ch.last > from &&
		    (idx_remove(c->ix, ch.remove_ids, ch.n_remove, ch.last, &ie) != 0 ||
		     idx_add(c->ix, ch.add_ids, ch.add_vecs, ch.n_add, ch.last, &ie) != 0))
			rc = cat_idx_fail(err, &ie, "apply the catalog's changes to the index");
		if (rc == 0 && applied)
			*applied = ch.n_add + ch.n_remove;
		/* numbers of rows changed in place only: wake the waiters too */
		touched_only = rc == 0 && ch.last > from && ch.n_add + ch.n_remove == 0;
		store_changes_clear(&ch);
	}
	pthread_rwlock_unlock(&c->ixlock);
	if (touched_only)
		applied_changed(c);
	/* The sequence no longer covers the index (new trained parameters, a
	 * new model): a shared catalog's node builds anew before it counts the
	 * change applied, so that nodes at one change hold one index (the
	 * rebuild wakes the waiters; *applied: the vectors it holds). */
	if (rc == STORE_ERR_NOT_FOUND && catalog_shared(c) && (rc = rebuild_locked(c, 0, err)) == 0 && applied) {
		pthread_rwlock_rdlock(&c->ixlock);
		*applied = idx_count(c->ix);
		pthread_rwlock_unlock(&c->ixlock);
	}
	return rc;
}

/* Wake the readers waiting for a sequence (catalog_wait_applied). */
static void applied_changed(catalog *c)
{
	pthread_mutex_lock(&c->applied_lock);
	pthread_cond_broadcast(&c->applied_cond);
	pthread_mutex_unlock(&c->applied_lock);
}

int catalog_catch_up(catalog *c, size_t *applied, store_error *err)
{
	if (applied)
		*applied = 0;
	if (!c->ix)
		return store_fail(err, STORE_ERR_INVALID, "the catalog has no index");
	pthread_mutex_lock(&c->wlock);
	size_t n = 0;
	int rc = cat_catch_up_locked(c, &n, err);
	/* a shared catalog's log holds every remove: a current index has none missing */
	if (rc == 0 && catalog_shared(c))
		c->index_stale = 0;
	pthread_mutex_unlock(&c->wlock);
	if (applied)
		*applied = n;
	if (n)
		applied_changed(c);
	/* The sequence no longer covers the index (a model switch): start over. */
	if (rc == STORE_ERR_NOT_FOUND)
		rc = rebuild(c, 0, err);
	if (rc == 0)
		cat_maybe_retrain(c);
	return rc;
}

int catalog_follow(catalog *c, int looked, size_t *applied, store_error *err)
{
	if (applied)
		*applied = 0;
	if (looked && c->ix) {
		struct catalog_lag lag;
		catalog_lag(c, &lag);
		if (lag.latest <= lag.applied) {
			cat_maybe_retrain(c);
			return 0;
		}
	}
	return catalog_catch_up(c, applied, err);
}

int catalog_shared(const catalog *c)
{
	return c->be->wait_changes != NULL;
}

int catalog_wait_changes(catalog *c, int timeout_ms, store_error *err)
{
	if (!c->be->wait_changes)
		return store_fail(err, STORE_ERR_INVALID, "the %s catalog has one writer: nothing to wait for", c->be->name);
	return c->be->wait_changes(c->db, timeout_ms, err);
}

int catalog_look_latest(catalog *c, store_error *err)
{
	uint64_t latest = 0;
	if (!catalog_shared(c))
		return 0;
	int rc = c->be->seq(c->db, &latest, err);
	if (rc != 0)
		return rc;
	double now = clock_mono_s();
	pthread_mutex_lock(&c->lag_lock);
	if (latest > c->latest) {
		size_t cap = sizeof c->learned / sizeof c->learned[0];
		if (c->n_learned == cap) {
			c->learned[cap - 1].seq = latest;
		} else {
			c->learned[c->n_learned].seq = latest;
			c->learned[c->n_learned].at = now;
			c->n_learned++;
		}
		c->latest = latest;
	}
	pthread_mutex_unlock(&c->lag_lock);
	return 0;
}

int catalog_row_cache_stats(catalog *c, struct rowcache_stats *out)
{
	rowcache_get_stats(c->rows, out);
	return c->rows != NULL;
}

void catalog_lag(catalog *c, struct catalog_lag *out)
{
	memset(out, 0, sizeof *out);
	out->applied = catalog_applied_seq(c);
	double now = clock_mono_s();
	pthread_mutex_lock(&c->lag_lock);
	size_t drop = 0;
	while (drop < c->n_learned && c->learned[drop].seq <= out->applied)
		drop++;
	if (drop) {
		memmove(c->learned, c->learned + drop, (c->n_learned - drop) * sizeof c->learned[0]);
		c->n_learned -= drop;
	}
	out->latest = c->latest > out->applied ? c->latest : out->applied;
	out->lag_s = c->n_learned ? now - c->learned[0].at : 0;
	pthread_mutex_unlock(&c->lag_lock);
}

int catalog_wait_applied(catalog *c, uint64_t seq, int timeout_ms, store_error *err)
{
	if (!c->ix)
		return store_fail(err, STORE_ERR_INVALID, "the catalog has no index");
	double deadline = clock_mono_s() + timeout_ms / 1e3;
	for (;;) {
		if (catalog_applied_seq(c) >= seq)
			return 0;
		double left = deadline - clock_mono_s();
		if (left <= 0)
			return 1;
		/* One reader at a time asks the database; the rest wait for it
		 * (or for the follower) to wake them. */
		if (catalog_shared(c) && pthread_mutex_trylock(&c->wlock) == 0) {
			store_error e;
			size_t n = 0;
			int rc = cat_catch_up_locked(c, &n, &e);
			pthread_mutex_unlock(&c->wlock);
			if (n)
				applied_changed(c);
			if (rc == STORE_ERR_UNAVAILABLE) {
				if (err)
					*err = e;
				return rc;
			}
			if (catalog_applied_seq(c) >= seq)
				return 0;
		}
		/* then wait to be woken, 50 ms at most (the next look) */
		struct timespec until = clock_wall_deadline(left < 0.05 ? left : 0.05);
		pthread_mutex_lock(&c->applied_lock);
		if (catalog_applied_seq(c) < seq)
			pthread_cond_timedwait(&c->applied_cond, &c->applied_lock, &until);
		pthread_mutex_unlock(&c->applied_lock);
	}
}

uint64_t catalog_applied_seq(catalog *c)
{
	if (!c->ix)
		return 0;
	pthread_rwlock_rdlock(&c->ixlock);
	uint64_t seq = c->ix ? idx_seq(c->ix) : 0;
	pthread_rwlock_unlock(&c->ixlock);
	return seq;
}

/* ---- the model at open -------------------------------------------------------- */

static int resolve_model(catalog *c, const struct catalog_params *p, struct catalog_open_report *rep,
			 store_error *err)
{
	struct store_model active;
	int have = 0, rc;
	c->be->active_model(c->db, &active, &have, NULL);
	if (!p->model_files) {
		if (!have)
			return store_fail(err, STORE_ERR_MODEL, "data directory %s has no model yet: "
					"start clipd serve --model DIR --data %s first", c->dir, c->dir);
		c->model = active;
		return 0;
	}
	if (p->index.dim == 0 || p->index.dim > IDX_MAX_DIM)
		return store_fail(err, STORE_ERR_INVALID, "bad model dimension %zu", p->index.dim);

	struct store_model m;
	memset(&m, 0, sizeof m);
	if ((rc = store_fingerprint(c->be->hash_cache(c->db), p->model_files, p->model_precision, m.fingerprint, &rep->fingerprint_ms,
				    err)) != 0)
		return rc;
	/* The name: given, else the model directory's, else the directory of
	 * the first file's. */
	char base[sizeof m.name], dirname[4096];
	const char *name = p->model_name;
	if (!name && files_base_name(p->model_dir, base, sizeof base) > 0)
		name = base;
	if (!name || !*name) {
		name = "model";
		const char *first = p->model_files[0];
		const char *slash = strrchr(first, '/');
		if (slash && slash > first && (size_t)(slash - first) < sizeof dirname) {
			memcpy(dirname, first, (size_t)(slash - first));
			dirname[slash - first] = 0;
			if (files_base_name(dirname, base, sizeof base) > 0)
				name = base;
		}
	}
	snprintf(m.name, sizeof m.name, "%s", name);
	snprintf(m.layout, sizeof m.layout, "%s", p->model_layout ? p->model_layout : "");
	m.dim = p->index.dim;
	memcpy(rep->fingerprint, m.fingerprint, sizeof rep->fingerprint);

	if (have && !strcmp(active.fingerprint, m.fingerprint)) {
		if (active.dim != m.dim)
			return store_fail(err, STORE_ERR_MODEL, "model %s has dimension %zu, but its stored "
					"vectors have %zu", m.name, m.dim, active.dim);
		c->model = active;
		return 0;
	}
	int64_t images = 0;
	if (have && (rc = c->be->count(c->db, &images, err)) != 0)
		return rc;
	/* a precision other than fp32 is named: the same files at two
	 * precisions are two models */
	int other = p->model_precision && strcmp(p->model_precision, "fp32");
	if (have && images > 0)
		return store_fail(err, STORE_ERR_MODEL,
				"%s holds vectors of model %s (%.12s), not of %s%s%s (%.12s): re-encode them with "
				"`clipd reembed --model %s%s%s --data %s`, or serve with %s",
				c->dir, active.name, active.fingerprint, m.name, other ? " at precision " : "",
				other ? p->model_precision : "", m.fingerprint, p->model_dir ? p->model_dir : "DIR",
				other ? " --precision " : "", other ? p->model_precision : "", c->dir, active.name);
	if (c->readonly)
		return store_fail(err, STORE_ERR_MODEL, "data directory %s has no vectors of model %s",
				c->dir, m.name);
	/* A new (or empty) data directory takes the given model. */
	if ((rc = c->be->set_active_model(c->db, &m, err)) != 0)
		return rc;
	c->model = m;
	rep->model_registered = 1;
	return 0;
}

/* ---- open / close ---------------------------------------------------------------- */

/* 1: a row has this digest (keep the blob), 0: an orphan, negative: error. */
static int keep_blob(void *ud, const char *sha256)
{
	catalog *c = ud;
	return c->be->sha256_exists(c->db, sha256, NULL);
}


int catalog_open(const struct catalog_params *p, catalog **out,
		 struct catalog_open_report *report, store_error *err)
{
	struct catalog_open_report rep;
	double t0 = clock_mono_s();
	int rc;
	memset(&rep, 0, sizeof rep);
	*out = NULL;
	if (!p || !p->data_dir || !*p->data_dir)
		return store_fail(err, STORE_ERR_INVALID, "no data directory given");
	if (p->index.factory) {
		idx_error ie;
		if (idx_check_factory(p->index.factory, &ie) != 0)
			return store_fail(err, STORE_ERR_INVALID, "%s", ie.msg);
		if (strlen(p->index.factory) >= IDX_MAX_FACTORY)
			return store_fail(err, STORE_ERR_INVALID, "index factory string too long");
	}
	catalog *c = calloc(1, sizeof *c);
	if (!c || !(c->dir = strdup(p->data_dir))) {
		free(c);
		return store_fail(err, STORE_ERR_NOMEM, "out of memory");
	}
	size_t dl = strlen(c->dir);
	while (dl > 1 && c->dir[dl - 1] == '/')
		c->dir[--dl] = 0;
	c->lock_fd = -1;
	c->readonly = p->readonly;
	c->no_index = p->no_index;
	c->exact_filter_limit = p->exact_filter_limit ? p->exact_filter_limit : CATALOG_EXACT_FILTER_LIMIT;
	c->ip = p->index;
	if (p->index.factory) {
		snprintf(c->factory, sizeof c->factory, "%s", p->index.factory);
		c->ip.factory = c->factory;
	}
	atomic_init(&c->saved_seq, 0);
	pthread_mutex_init(&c->wlock, NULL);
	pthread_mutex_init(&c->save_lock, NULL);
	pthread_rwlock_init(&c->ixlock, NULL);
	pthread_mutex_init(&c->applied_lock, NULL);
	pthread_mutex_init(&c->lag_lock, NULL);
	pthread_cond_init(&c->applied_cond, NULL);
	pthread_mutex_init(&c->train_lock, NULL);

	char tmpdir[4096], blobdir[4096];
	if ((rc = datadir_path(c->dir, DATADIR_DB, c->db_path, sizeof c->db_path, err)) != 0 ||
	    (rc = datadir_path(c->dir, DATADIR_INDEX, c->index_path, sizeof c->index_path, err)) != 0 ||
	    (rc = datadir_path(c->dir, DATADIR_TMP, tmpdir, sizeof tmpdir, err)) != 0 ||
	    (rc = datadir_path(c->dir, DATADIR_BLOBS, blobdir, sizeof blobdir, err)) != 0)
		goto fail;

	if (!c->readonly) {
		if ((rc = datadir_mkdirs(c->dir, err)) != 0 ||
		    (rc = datadir_lock(c->dir, &c->lock_fd, err)) != 0 ||
		    (rc = datadir_mkdirs(blobdir, err)) != 0 ||
		    (rc = datadir_mkdirs(tmpdir, err)) != 0)
			goto fail;
	} else if (!p->catalog_uri) {
		struct stat sb;
		if (stat(c->db_path, &sb) != 0) {
			rc = store_fail(err, STORE_ERR_IO, "%s is not a clipd data directory (no clipd.db)", c->dir);
			goto fail;
		}
	}

	if (p->catalog_uri) {
		struct pgstore_params pp = pgstore_default_params();
		pp.readonly = c->readonly;
		pp.read_uri = p->catalog_read_uri;
		if (p->catalog_pool > 0)
			pp.pool = p->catalog_pool;
		if (p->busy_timeout_ms > 0)
			pp.lock_timeout_ms = p->busy_timeout_ms;
		struct pgstore_open_report prep;
		pgstore *pg = NULL;
		if ((rc = pgstore_open(p->catalog_uri, &pp, &pg, &prep, err)) != 0)
			goto fail;
		c->be = &pgstore_ops;
		c->db = pg;
		if (!p->catalog_read_uri && p->row_cache_mb > 0 && !c->readonly) {
			if (p->row_cache_mb > CATALOG_MAX_ROW_CACHE_MB) {
				rc = store_fail(err, STORE_ERR_INVALID, "the row cache must be at most %d MiB",
						CATALOG_MAX_ROW_CACHE_MB);
				goto fail;
			}
			if (rowcache_new(p->row_cache_mb << 20, &c->rows) != 0) {
				rc = store_fail(err, STORE_ERR_NOMEM, "out of memory");
				goto fail;
			}
		}
		rep.schema_before = prep.version_before;
		rep.schema_after = prep.version_after;
	} else {
		struct store_params sp = store_default_params();
		sp.readonly = c->readonly;
		if (p->busy_timeout_ms > 0)
			sp.busy_timeout_ms = p->busy_timeout_ms;
		struct store_open_report srep;
		store *st = NULL;
		if ((rc = store_open(c->db_path, &sp, &st, &srep, err)) != 0)
			goto fail;
		c->be = &sqlite_backend_ops;
		c->db = st;
		rep.schema_before = srep.version_before;
		rep.schema_after = srep.version_after;
	}

	{
		char from[512];
		if (catalog_copy_unfinished(c->be, c->db, from, sizeof from)) {
			rc = store_fail(err, STORE_ERR_INVALID, "%s is an unfinished copy of %s: run the same "
					"`clipd catalog copy` again to finish it", p->catalog_uri ? "the catalog" : c->dir, from);
			goto fail;
		}
	}
	if (!c->readonly && (rc = datadir_clean_tmp(c->dir, &rep.tmp_removed, err)) != 0)
		goto fail;
	if ((rc = resolve_model(c, p, &rep, err)) != 0)
		goto fail;
	if (!c->readonly) {
		/* After a clean close no blob can be an orphan: skip the scan. */
		if (!datadir_take_clean(c->dir) &&
		    (rc = datadir_remove_orphans(c->dir, keep_blob, c, &rep.orphans_removed, err)) != 0)
			goto fail;
	}
	memcpy(rep.fingerprint, c->model.fingerprint, sizeof rep.fingerprint);
	if (!c->no_index && (rc = open_index(c, &rep, err)) != 0)
		goto fail;
	rep.open_ms = (clock_mono_s() - t0) * 1e3;
	if (report)
		*report = rep;
	*out = c;
	return 0;
fail:
	c->orphan_risk = 1;   /* no clean marker */
	c->readonly = 1;      /* and no save */
	catalog_close(c);
	return rc;
}

void catalog_close(catalog *c)
{
	if (!c)
		return;
	if (!c->readonly && c->ix && catalog_unsaved_changes(c) > 0)
		catalog_save_index(c, NULL);
	cat_train_stop(c);
	idx_free(c->ix);
	rowcache_free(c->rows);
	if (c->be)
		c->be->close(c->db);
	if (!c->readonly && !c->orphan_risk && c->lock_fd >= 0)
		datadir_mark_clean(c->dir);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	pthread_mutex_destroy(&c->wlock);
	pthread_mutex_destroy(&c->save_lock);
	pthread_rwlock_destroy(&c->ixlock);
	pthread_mutex_destroy(&c->applied_lock);
	pthread_mutex_destroy(&c->lag_lock);
	pthread_cond_destroy(&c->applied_cond);
	pthread_mutex_destroy(&c->train_lock);
	free(c->dir);
	free(c);
}

/* ---- state and persistence ----------------------------------------------------------- */

const struct store_model *catalog_model(const catalog *c)
{
	return &c->model;
}

size_t catalog_dim(const catalog *c)
{
	return c->model.dim;
}

const char *catalog_data_dir(const catalog *c)
{
	return c->dir;
}

const char *catalog_index_file(const catalog *c)
{
	return c->index_path;
}

uint64_t catalog_unsaved_changes(catalog *c)
{
	if (!c->ix)
		return 0;
	pthread_rwlock_rdlock(&c->ixlock);
	uint64_t seq = c->ix ? idx_seq(c->ix) : 0;
	pthread_rwlock_unlock(&c->ixlock);
	uint64_t saved = atomic_load(&c->saved_seq);
	return seq > saved ? seq - saved : 0;
}

int catalog_save_index(catalog *c, store_error *err)
{
	if (c->readonly || !c->ix)
		return store_fail(err, STORE_ERR_INVALID, "the catalog has no index to save");
	pthread_mutex_lock(&c->save_lock);
	pthread_rwlock_rdlock(&c->ixlock);
	int rc = 0;
	if (idx_seq(c->ix) != atomic_load(&c->saved_seq) || access(c->index_path, F_OK) != 0)
		rc = save_and_prune(c, c->ix, err);
	pthread_rwlock_unlock(&c->ixlock);
	pthread_mutex_unlock(&c->save_lock);
	return rc;
}

/* Rebuild from the store and swap in; with save, also write the file. */
static int rebuild(catalog *c, int save, store_error *err)
{
	pthread_mutex_lock(&c->wlock);   /* no adds or deletes meanwhile */
	int rc = rebuild_locked(c, save, err);
	pthread_mutex_unlock(&c->wlock);
	if (rc == 0)
		cat_maybe_retrain(c);
	return rc;
}

/* rebuild, the caller holding c->wlock. */
static int rebuild_locked(catalog *c, int save, store_error *err)
{
	idx *fresh = NULL;
	int rc = build_from_store(c, &fresh, NULL, err);
	if (rc == 0) {
		pthread_rwlock_wrlock(&c->ixlock);
		idx *old = c->ix;
		c->ix = fresh;
		c->index_stale = 0;
		atomic_store(&c->params_generation, c->built_generation);
		pthread_rwlock_unlock(&c->ixlock);
		rowcache_flush(c->rows);   /* a reset: what changed is not known */
		idx_free(old);
		applied_changed(c);        /* its sequence moved (maybe with no vector) */
		if (save && !c->readonly) {
			pthread_mutex_lock(&c->save_lock);
			rc = save_and_prune(c, fresh, err);
			pthread_mutex_unlock(&c->save_lock);
		}
	}
	return rc;
}

int catalog_rebuild_index(catalog *c, store_error *err)
{
	if (c->readonly)
		return store_fail(err, STORE_ERR_INVALID, "the catalog is open read-only");
	return rebuild(c, 1, err);
}

void catalog_wait_index(catalog *c)
{
	pthread_rwlock_rdlock(&c->ixlock);
	if (c->ix)
		idx_wait_training(c->ix);
	pthread_rwlock_unlock(&c->ixlock);
}

int catalog_stats(catalog *c, struct catalog_stats *out, store_error *err)
{
	memset(out, 0, sizeof *out);
	int rc = c->be->count(c->db, &out->images, err);
	if (rc != 0)
		return rc;
	pthread_rwlock_rdlock(&c->ixlock);
	if (c->ix) {
		out->index_count = idx_count(c->ix);
		snprintf(out->index_type, sizeof out->index_type, "%s", idx_type(c->ix));
		out->index_exact = idx_is_exact(c->ix);
		out->index_training = idx_training(c->ix);
		out->seq = idx_seq(c->ix);
	}
	pthread_rwlock_unlock(&c->ixlock);
	/* after ixlock: the trainer takes train_lock, then ixlock */
	cat_train_stats(c, out);
	out->saved_seq = atomic_load(&c->saved_seq);
	struct stat sb;
	if (stat(c->index_path, &sb) == 0)
		out->index_file_bytes = sb.st_size;
	c->be->db_bytes(c->db, &out->db_bytes, NULL);
	out->model = c->model;
	return 0;
}

/* ---- another model (clipd reembed) -------------------------------------------------------- */

int catalog_fingerprint(catalog *c, const char *const *files, const char *precision, char hex[STORE_FINGERPRINT_HEX],
			double *hash_ms, store_error *err)
{
	return store_fingerprint(c ? c->be->hash_cache(c->db) : NULL, files, precision, hex, hash_ms, err);
}

int catalog_put_model(catalog *c, const struct store_model *m, store_error *err)
{
	if (c->readonly)
		return store_fail(err, STORE_ERR_INVALID, "the catalog is open read-only");
	return c->be->put_model(c->db, m, err);
}

int catalog_count_vectors(catalog *c, const char *fingerprint, int64_t *n, store_error *err)
{
	return c->be->count_vectors(c->db, fingerprint, n, err);
}

int catalog_missing_vectors(catalog *c, const char *fingerprint, int64_t after_id, int64_t *ids,
			    size_t max, size_t *n, store_error *err)
{
	return c->be->missing_vectors(c->db, fingerprint, after_id, ids, max, n, err);
}

int catalog_put_vectors(catalog *c, const int64_t *ids, size_t n, const char *fingerprint,
			const float *vecs, size_t dim, store_error *err)
{
	if (c->readonly)
		return store_fail(err, STORE_ERR_INVALID, "the catalog is open read-only");
	return c->be->put_vectors(c->db, ids, n, fingerprint, vecs, dim, err);
}

int catalog_switch_model(catalog *c, const char *fingerprint, store_error *err)
{
	if (c->readonly)
		return store_fail(err, STORE_ERR_INVALID, "the catalog is open read-only");
	int rc = c->be->switch_model(c->db, fingerprint, err);
	if (rc != 0)
		return rc;
	struct store_model m;
	int have = 0;
	c->be->active_model(c->db, &m, &have, NULL);
	pthread_mutex_lock(&c->wlock);
	c->model = m;
	pthread_mutex_unlock(&c->wlock);
	if (c->ix)
		return rebuild(c, 1, err);
	/* No index in memory (reembed): build one and save it, so that the next
	 * start loads it instead of rebuilding. */
	idx *fresh = NULL;
	if ((rc = build_from_store(c, &fresh, NULL, err)) == 0)
		rc = save_and_prune(c, fresh, err);
	idx_free(fresh);
	return rc;
}
