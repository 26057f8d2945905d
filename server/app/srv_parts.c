/*
 * The count that resumes a suspended request when the last of its parts,
 * finishing on other threads, is done. See srv_parts in srv_app.h.
 */
#include "srv_app.h"

void srv_parts_begin(struct srv_parts *p, struct http_req *r)
{
	p->r = r;
	atomic_store(&p->pending, 1);
}

void srv_parts_add(struct srv_parts *p)
{
	atomic_fetch_add(&p->pending, 1);
}

void srv_parts_done(struct srv_parts *p)
{
	if (atomic_fetch_sub(&p->pending, 1) == 1)
		http_resume(p->r);
}
