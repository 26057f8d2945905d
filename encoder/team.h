/*
 * team.h - the encoder's thread team (internal to encoder/; team.c).
 *
 *   struct clip_team *team;
 *   if (clip_team_new(4, &team, err) == 0) {
 *           clip_team_run(team, task, &arg);   // task(&arg, i, 4) on threads i = 0..3
 *           clip_team_free(team);
 *   }
 *
 * A clip_team is a persistent set of n threads, the caller included:
 * clip_team_run(team, fn, arg) calls fn(arg, i, n) once on each thread i
 * (i = 0 on the caller) and returns when every call has returned. Workers
 * wait for the next task by spinning briefly, then sleeping on a futex, so
 * back-to-back tasks cost microseconds and an idle team costs nothing. One
 * thread at a time may call clip_team_run on a team. Workers block every
 * signal. clip_team_free (NULL-safe) stops and joins the workers.
 */
#ifndef CLIP_TEAM_H
#define CLIP_TEAM_H

#include "clip.h"

struct clip_team;
typedef void (*clip_task_fn)(void *arg, int index, int n);

/* n_threads >= 1, the caller included; *out is NULL on failure
 * (CLIP_ERR_NOMEM, CLIP_ERR_THREAD). */
int clip_team_new(int n_threads, struct clip_team **out, clip_error *err);
void clip_team_free(struct clip_team *team);
int clip_team_size(const struct clip_team *team);
void clip_team_run(struct clip_team *team, clip_task_fn fn, void *arg);

#endif
