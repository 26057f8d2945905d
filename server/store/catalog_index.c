/*
 * catalog_index.c - the catalog's side of the vector index: the one
 * translation of the index's errors, and the approximate index in a
 * shared catalog, where one node trains and every node builds from what
 * it trained (README, "Several nodes on PostgreSQL").
 *
 * When a node's index wants a (re)build by the index's rule
 * (idx_wants_build: past ivf_threshold while exact, grown 4x since its
 * training, shrunk below half the threshold), the node does not train for
 * itself: a thread of its own asks the backend to store the next
 * generation of trained parameters (store_index_params: under a lock one
 * node holds at a time, and only if no other node stored one since the
 * generation this node has), training from the catalog's vectors. The
 * generation's 'index' change, appended in the same transaction, reaches
 * every node through the change sequence, the trainer included: a node
 * that meets it while catching up builds its index anew, from those
 * parameters and the catalog's vectors, before it counts the change as
 * applied. So two nodes that have applied the same change hold the same
 * vectors coded with the same parameters, and the same count gives the
 * same nprobe: they answer every search alike.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog_internal.h"
#include "clock.h"
#include "datadir.h"

#define TRAIN_RETRY_S 1.0         /* between attempts while another node trains */
#define TRAIN_FAILED_RETRY_S 30.0 /* after a failed training, as idx_maybe_retrain */

int cat_idx_fail(store_error *err, const idx_error *ie, const char *what)
{
	int code = ie->code == IDX_ERR_NOMEM ? STORE_ERR_NOMEM
		   : ie->code == IDX_ERR_NOSPACE ? STORE_ERR_NOSPACE
						 : STORE_ERR_INDEX;
	return store_fail(err, code, "%s: %s", what, ie->msg);
}

/* ---- a shared catalog's approximate index ------------------------------------------ */

static int params_at(catalog *c, uint64_t at, struct backend_index_params *p, int *found, store_error *err)
{
	return c->be->index_params(c->db, c->model.fingerprint, at, p, found, err);
}

int cat_build_shared(catalog *c, idx **out, size_t *n_out, store_error *err)
{
	int64_t *ids = NULL;
	float *vecs = NULL;
	size_t n = 0;
	uint64_t seq = 0;
	struct backend_index_params p;
	int found = 0;
	idx_error ie;
	*out = NULL;
	memset(&p, 0, sizeof p);
	int rc = c->be->load_vectors(c->db, c->model.dim, &ids, &vecs, &n, &seq, err);
	if (rc != 0)
		return rc;
	/* the generation in force at the vectors' change: numbers are given
	 * in commit order, so one stored later has a higher change */
	if ((rc = params_at(c, seq, &p, &found, err)) != 0)
		goto out;
	struct idx_params ip = c->ip;
	ip.dim = c->model.dim;
	if (idx_build_trained(&ip, found ? p.factory : "Flat", p.params, p.len, (size_t)p.trained_n, ids, vecs, n, seq,
			      out, &ie) != 0) {
		char what[160];
		snprintf(what, sizeof what, "build the index from the catalog's trained parameters (generation %lld, %s)",
			 (long long)p.generation, p.factory);
		rc = cat_idx_fail(err, &ie, found ? what : "build the index");
		goto out;
	}
	c->built_generation = found ? p.generation : 0;   /* in force when it is swapped in */
	if (n_out)
		*n_out = n;
out:
	free(p.params);
	free(ids);
	free(vecs);
	return rc;
}

int cat_snapshot_shared(catalog *c, idx *ix, char *why, size_t why_len, store_error *err)
{
	struct backend_index_params p;
	int found = 0;
	void *mine = NULL;
	size_t len = 0;
	idx_error ie;
	int rc = params_at(c, idx_seq(ix), &p, &found, err);
	if (rc != 0)
		return rc;
	if (idx_trained_params(ix, &mine, &len, &ie) != 0) {
		datadir_fmt(why, why_len, "the index file's parameters cannot be read (%s)", ie.msg);
	} else if (found ? (len != p.len || (len && memcmp(mine, p.params, len) != 0) ||
			    (!len && strcmp(p.factory, "Flat") != 0))
			 : len != 0) {
		if (found)
			snprintf(why, why_len, "the index file was not built from the catalog's index parameters "
				 "(generation %lld, %s)", (long long)p.generation, p.factory);
		else
			snprintf(why, why_len, "the index file is approximate but the catalog has no trained "
				 "index parameters");
	} else {
		atomic_store(&c->params_generation, found ? p.generation : 0);
	}
	free(mine);
	free(p.params);
	return 0;
}

/* backend_train_fn: the catalog's vectors now, trained as idx_train does. */
static int train_from_catalog(void *ud, char type[IDX_MAX_FACTORY], void **params, size_t *len, int64_t *trained_n,
			      uint64_t *trained_seq, store_error *err)
{
	catalog *c = ud;
	int64_t *ids = NULL;
	float *vecs = NULL;
	size_t n = 0;
	idx_error ie;
	int rc = c->be->load_vectors(c->db, c->model.dim, &ids, &vecs, &n, trained_seq, err);
	if (rc != 0)
		return rc;
	struct idx_params ip = c->ip;
	ip.dim = c->model.dim;
	if (idx_train(&ip, vecs, n, type, params, len, &ie) != 0)
		rc = cat_idx_fail(err, &ie, "train the index");
	*trained_n = (int64_t)n;
	free(ids);
	free(vecs);
	return rc;
}

static void *trainer_main(void *arg)
{
	catalog *c = arg;
	store_error err = { 0 };
	int64_t gen = 0;
	uint64_t seq = 0;
	int rc = c->be->store_index_params(c->db, c->model.fingerprint, atomic_load(&c->params_generation),
					   train_from_catalog, c, &gen, &seq, &err);
	pthread_mutex_lock(&c->train_lock);
	if (rc == 1)
		c->trained_here++;
	if (rc < 0) {
		c->train_next_at = clock_mono_s() + TRAIN_FAILED_RETRY_S;
		datadir_fmt(c->train_error, sizeof c->train_error, "%s", err.msg);
	} else {
		c->train_error[0] = 0;
	}
	pthread_mutex_unlock(&c->train_lock);
	atomic_store(&c->train_running, 0);
	return NULL;
}

void cat_train_shared(catalog *c)
{
	if (c->readonly || !c->ix || !c->be->store_index_params)
		return;
	pthread_mutex_lock(&c->train_lock);
	double now = clock_mono_s();
	if (atomic_load(&c->train_running) || c->train_stopping || now < c->train_next_at)
		goto out;
	if (c->train_joinable) {
		pthread_join(c->train_thread, NULL);
		c->train_joinable = 0;
	}
	pthread_rwlock_rdlock(&c->ixlock);
	int want = c->ix && idx_wants_build(c->ix);
	pthread_rwlock_unlock(&c->ixlock);
	if (!want)
		goto out;
	/* until the new generation's change is applied the rule still says
	 * yes: ask again at most this often */
	c->train_next_at = now + TRAIN_RETRY_S;
	atomic_store(&c->train_running, 1);
	if (pthread_create(&c->train_thread, NULL, trainer_main, c) != 0) {
		atomic_store(&c->train_running, 0);
		goto out;
	}
	c->train_joinable = 1;
out:
	pthread_mutex_unlock(&c->train_lock);
}

void cat_train_stop(catalog *c)
{
	pthread_mutex_lock(&c->train_lock);
	c->train_stopping = 1;
	int joinable = c->train_joinable;
	c->train_joinable = 0;
	pthread_mutex_unlock(&c->train_lock);
	if (joinable)
		pthread_join(c->train_thread, NULL);
}

void cat_train_stats(catalog *c, struct catalog_stats *out)
{
	out->params_generation = atomic_load(&c->params_generation);
	pthread_mutex_lock(&c->train_lock);
	out->trained_here = c->trained_here;
	snprintf(out->train_error, sizeof out->train_error, "%s", c->train_error);
	pthread_mutex_unlock(&c->train_lock);
	if (atomic_load(&c->train_running))
		out->index_training = 1;
}
