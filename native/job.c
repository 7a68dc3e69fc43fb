/*
 * A job: one blocking call (flock.c's lock wait) on a thread of its own, settling a promise on the JS thread
 * when it is done (see evident.h). Not libuv's pool: a wait lasts as long as another writer holds the lock,
 * and waits in the pool's four threads would starve this process's own lock holder of the pool, deadlocking it.
 * Not a threadsafe function: Node deletes a terminated worker's threadsafe functions even while a thread holds
 * one, and a wait ending after that aborted the process. An async cleanup hook holds the worker's teardown until
 * the job's own uv_async_t is closed; the job is then abandoned (no JS runs) rather than settled.
 */
#include <pthread.h>
#include <signal.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#include "evident.h"

struct evident_job {
  evident_job_fns fns;
  void *data;
  napi_env env;
  napi_deferred deferred;
  napi_async_context context;
  napi_async_cleanup_hook_handle hook;
  uv_async_t done;
  int tearing_down;
};

/* Job threads: created as needed, reused while idle (a new thread per wait costs ~80 µs), ended after
 * IDLE_SECONDS without work; one job per thread at a time, so no job waits for another's thread. */
#define IDLE_SECONDS 30

typedef struct worker {
  pthread_cond_t wake;
  evident_job *job; /* assigned by job_start, under `threads` */
  struct worker *next_idle;
} worker_t;

static pthread_mutex_t threads = PTHREAD_MUTEX_INITIALIZER;
static worker_t *idle_workers = NULL;

static void run_job(evident_job *job) {
  job->fns.run(job->data);
  uv_async_send(&job->done); /* the last the thread does with the job */
}

static void *job_thread(void *arg) {
  worker_t *self = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_mutex_lock(&threads);
  for (;;) {
    evident_job *job = self->job;
    if (job != NULL) {
      self->job = NULL;
      pthread_mutex_unlock(&threads);
      run_job(job);
      pthread_mutex_lock(&threads);
      self->next_idle = idle_workers;
      idle_workers = self;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += IDLE_SECONDS;
    int rc = 0;
    while (self->job == NULL && rc == 0) rc = pthread_cond_timedwait(&self->wake, &threads, &until);
    if (self->job == NULL) break; /* idle too long: leave the idle list and end */
  }
  for (worker_t **at = &idle_workers; *at != NULL; at = &(*at)->next_idle) {
    if (*at == self) {
      *at = self->next_idle;
      break;
    }
  }
  pthread_mutex_unlock(&threads);
  pthread_cond_destroy(&self->wake);
  free(self);
  return NULL;
}

/* Hands `job` to an idle thread, or to a new one; an errno if there is none to be had. */
static int dispatch(evident_job *job) {
  pthread_mutex_lock(&threads);
  worker_t *worker = idle_workers;
  if (worker != NULL) {
    idle_workers = worker->next_idle;
    worker->job = job;
    pthread_cond_signal(&worker->wake);
    pthread_mutex_unlock(&threads);
    return 0;
  }
  pthread_mutex_unlock(&threads);
  worker = calloc(1, sizeof *worker);
  if (worker == NULL) return ENOMEM;
  pthread_cond_init(&worker->wake, NULL);
  worker->job = job;
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  int rc = pthread_create(&thread, &attr, job_thread, worker);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    pthread_cond_destroy(&worker->wake);
    free(worker);
  }
  return rc;
}

static void job_closed(uv_handle_t *handle) {
  evident_job *job = handle->data;
  if (job->hook != NULL) napi_remove_async_cleanup_hook(job->hook); /* a teardown under way may go on */
  job->fns.release(job->data);
  free(job);
}

/* On the JS thread once the job's thread is done: settles in a callback scope, so that promise reactions run. */
static void job_done(uv_async_t *handle) {
  evident_job *job = handle->data;
  napi_env env = job->env;
  if (job->tearing_down) {
    job->fns.abandon(job->data);
  } else {
    napi_handle_scope handles;
    napi_callback_scope scope;
    napi_value resource;
    napi_open_handle_scope(env, &handles);
    napi_create_object(env, &resource);
    napi_open_callback_scope(env, resource, job->context, &scope);
    job->fns.settle(env, job->deferred, job->data);
    napi_close_callback_scope(env, scope);
    napi_close_handle_scope(env, handles);
  }
  napi_async_destroy(env, job->context);
  uv_close((uv_handle_t *)&job->done, job_closed);
}

/* The environment (a worker thread) is being torn down while the job runs: it waits until job_closed. */
static void job_teardown(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  ((evident_job *)arg)->tearing_down = 1;
}

/* See evident.h. */
napi_value evident_job_start(napi_env env, const char *name, evident_job_fns fns, void *data) {
  evident_job *job = calloc(1, sizeof *job);
  napi_value promise, resource_name;
  uv_loop_t *loop;
  if (job == NULL) {
    fns.release(data);
    napi_throw_error(env, "EVIDENT_NATIVE", "out of memory");
    return NULL;
  }
  job->fns = fns;
  job->data = data;
  job->env = env;
  job->done.data = job;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_get_uv_event_loop(env, &loop) != napi_ok) {
    fns.release(data);
    free(job);
    napi_throw_error(env, "EVIDENT_NATIVE", "could not start a job");
    return NULL;
  }
  if (napi_async_init(env, NULL, resource_name, &job->context) != napi_ok) job->context = NULL;
  if (job->context == NULL || uv_async_init(loop, &job->done, job_done) != 0) {
    if (job->context != NULL) napi_async_destroy(env, job->context);
    fns.release(data);
    free(job);
    napi_throw_error(env, "EVIDENT_NATIVE", "could not start a job");
    return NULL;
  }
  if (napi_add_async_cleanup_hook(env, job_teardown, job, &job->hook) != napi_ok) job->hook = NULL;
  int rc = dispatch(job);
  if (rc != 0) {
    napi_reject_deferred(env, job->deferred, evident_errno_error(env, rc, "pthread_create"));
    napi_async_destroy(env, job->context);
    uv_close((uv_handle_t *)&job->done, job_closed);
  }
  return promise;
}

/* See evident.h. */
napi_value evident_queue_work(napi_env env, const char *name, napi_async_execute_callback execute,
                              napi_async_complete_callback complete, void *data, napi_deferred *deferred,
                              napi_async_work *work) {
  napi_value promise, resource_name;
  if (napi_create_promise(env, deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name) != napi_ok ||
      napi_create_async_work(env, NULL, resource_name, execute, complete, data, work) != napi_ok) {
    napi_throw_error(env, "EVIDENT_NATIVE", "could not queue work on the thread pool");
    return NULL;
  }
  if (napi_queue_async_work(env, *work) != napi_ok) {
    napi_delete_async_work(env, *work);
    napi_throw_error(env, "EVIDENT_NATIVE", "could not queue work on the thread pool");
    return NULL;
  }
  return promise;
}
