/* The C interface as a C program uses it: a run's whole loop, served and
 * watched by the test, and every misuse refused with a status and a
 * message. Exits non-zero, saying what failed, if anything does. */
#include "idict.h"
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

/* A callback: counts the versions it is told of into its user data. */
static void count_versions(idict_t d, uint64_t version, void *user) {
  (void)d;
  *(uint64_t *)user += version;
}

#define EXPECT(cond, what)                                                     \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "FAILED line %d: %s (last error: %s)\n", __LINE__, what, \
              idict_last_error());                                             \
      failures++;                                                              \
    }                                                                          \
  } while (0)

/* A call refused with `code`, its message mentioning `words`. */
#define REFUSED(call, code, words)                                              \
  do {                                                                          \
    idict_status s_ = (call);                                                   \
    EXPECT(s_ == (code), #call " gives " #code);                                \
    EXPECT(strstr(idict_last_error(), (words)) != NULL,                         \
           #call ": the message says " words);                                  \
  } while (0)

int main(void) {
  EXPECT(idict_check_version(IDICT_ABI_VERSION) == IDICT_OK, "version");
  REFUSED(idict_check_version(IDICT_ABI_VERSION + 1), IDICT_ERR_VERSION,
          "rebuild");

  idict_t d = 0;
  EXPECT(idict_new("abi", &d) == IDICT_OK && d != 0, "new");
  REFUSED(idict_new(NULL, &d), IDICT_ERR_NULL, "name");
  REFUSED(idict_new("abi", NULL), IDICT_ERR_NULL, "out");
  REFUSED(idict_new("\xff\xfe", &(idict_t){0}), IDICT_ERR_UTF8, "UTF-8");

  /* The loop's values. */
  EXPECT(idict_writable_f64(d, "dt", 0.01, 0.0, 0.25) == IDICT_OK, "writable");
  REFUSED(idict_writable_f64(d, "bad", 1.0, 2.0, 1.0), IDICT_ERR_ARGUMENT,
          "min <= max");
  EXPECT(idict_set_f64(d, "residual", 0.5) == IDICT_OK, "set f64");
  EXPECT(idict_set_i64(d, "step", 3) == IDICT_OK, "set i64");
  EXPECT(idict_set_bool(d, "converged", 0) == IDICT_OK, "set bool");
  EXPECT(idict_set_str(d, "phase", "warm-up") == IDICT_OK, "set str");
  const char *keys[] = {"a", "b"};
  const double values[] = {1.5, 2.5};
  EXPECT(idict_set_f64s(d, keys, values, 2) == IDICT_OK, "set f64s");
  double dt = 0;
  EXPECT(idict_get_f64(d, "dt", &dt) == IDICT_OK && dt == 0.01, "get dt");
  int64_t step = 0;
  EXPECT(idict_get_i64(d, "step", &step) == IDICT_OK && step == 3, "get i64");
  REFUSED(idict_get_f64(d, "nothing", &dt), IDICT_ERR_NOT_FOUND, "nothing");
  REFUSED(idict_get_i64(d, "phase", &step), IDICT_ERR_TYPE, "phase");
  REFUSED(idict_set_f64(d, NULL, 1.0), IDICT_ERR_NULL, "key");
  REFUSED(idict_set_f64(d, "\xc3\x28", 1.0), IDICT_ERR_UTF8, "UTF-8");

  /* Arrays: a Fortran a(2,3) stored with its true shape; a byte count that
   * does not match its shape refused. */
  double a[6] = {1, 4, 2, 5, 3, 6};
  size_t shape[2] = {2, 3};
  EXPECT(idict_set_array(d, "a", IDICT_F64, a, sizeof a, shape, 2,
                         IDICT_COLUMN_MAJOR) == IDICT_OK,
         "a column-major array");
  REFUSED(idict_set_array(d, "a", IDICT_F64, a, sizeof a - 8, shape, 2,
                          IDICT_ROW_MAJOR),
          IDICT_ERR_ARGUMENT, "it takes 48");
  REFUSED(idict_set_array(d, "a", 42, a, sizeof a, shape, 2, IDICT_ROW_MAJOR),
          IDICT_ERR_ARGUMENT, "idict_dtype");
  REFUSED(idict_set_array(d, "a", IDICT_F64, a, sizeof a, shape, 2, 7),
          IDICT_ERR_ARGUMENT, "idict_order");
  size_t huge[2] = {SIZE_MAX, 2};
  REFUSED(idict_set_array(d, "a", IDICT_F64, a, sizeof a, huge, 2,
                          IDICT_ROW_MAJOR),
          IDICT_ERR_ARGUMENT, "overflows");
  REFUSED(idict_message(d, 9, "x"), IDICT_ERR_ARGUMENT, "idict_level");
  EXPECT(idict_message(d, IDICT_INFO, "hello from C") == IDICT_OK, "message");

  /* Served, published, paused and terminated. */
  idict_server_t s = 0;
  EXPECT(idict_serve(d, &s) == IDICT_OK && s != 0, "serve");
  /* A client going away mid-write must not end the program. */
  struct sigaction pipe_action;
  sigaction(SIGPIPE, NULL, &pipe_action);
  EXPECT(pipe_action.sa_handler == SIG_IGN, "SIGPIPE ignored once serving");
  char address[64];
  EXPECT(idict_server_address(s, address, sizeof address) == IDICT_OK &&
             strncmp(address, "http://127.0.0.1:", 17) == 0,
         "address");
  REFUSED(idict_server_address(s, address, 4), IDICT_ERR_ARGUMENT, "bytes");
  uint64_t seen = 0, callback = 0;
  EXPECT(idict_add_callback(d, count_versions, &seen, &callback) == IDICT_OK,
         "add a callback");
  REFUSED(idict_add_callback(d, NULL, NULL, NULL), IDICT_ERR_NULL, "callback");
  uint64_t version = 0;
  EXPECT(idict_notify_update(d, &version) == IDICT_OK && version == 1,
         "notify");
  EXPECT(seen == 1, "the callback ran with version 1");
  int removed = 0;
  EXPECT(idict_remove_callback(d, callback, &removed) == IDICT_OK &&
             removed == 1,
         "remove the callback");

  /* A checkpoint restored as a run of its own. */
  char path[512];
  const char *dir = getenv("IDICT_RUNS_DIR");
  snprintf(path, sizeof path, "%s/abi.ckpt", dir ? dir : ".");
  uint64_t saved = 0;
  EXPECT(idict_checkpoint(d, path, &saved) == IDICT_OK && saved == 1,
         "checkpoint");
  idict_t restored = 0;
  EXPECT(idict_restore(path, &restored) == IDICT_OK, "restore");
  double residual = 0;
  EXPECT(idict_get_f64(restored, "residual", &residual) == IDICT_OK &&
             residual == 0.5,
         "the restored run has the residual");
  EXPECT(idict_free(restored) == IDICT_OK, "free the restored run");
  REFUSED(idict_restore("/nonexistent/ckpt", &restored), IDICT_ERR_SYSTEM,
          "nonexistent");
  int go = -1;
  EXPECT(idict_wait(d, &go) == IDICT_OK && go == 1, "wait goes on");
  EXPECT(idict_pause(d) == IDICT_OK, "pause");
  idict_wait_outcome outcome = IDICT_GO;
  EXPECT(idict_wait_timeout(d, 0.05, &outcome) == IDICT_OK &&
             outcome == IDICT_STILL_PAUSED,
         "paused, the wait times out");
  REFUSED(idict_wait_timeout(d, -1.0, &outcome), IDICT_ERR_ARGUMENT,
          "seconds");
  REFUSED(idict_wait_timeout(d, NAN, &outcome), IDICT_ERR_ARGUMENT, "seconds");
  EXPECT(idict_terminate(d) == IDICT_OK, "terminate");
  EXPECT(idict_wait(d, &go) == IDICT_OK && go == 0, "wait stops");
  EXPECT(idict_notify_update_final(d, &version) == IDICT_OK && version == 2,
         "final");
  REFUSED(idict_notify_update(d, NULL), IDICT_ERR_STATE, "finished");
  EXPECT(idict_server_wait_then_close(s, 2.0) == IDICT_OK, "close");

  /* Handles: closed, freed, foreign and made up are refused. */
  REFUSED(idict_server_close(s), IDICT_ERR_HANDLE, "not a live");
  REFUSED(idict_set_f64(s, "x", 1.0), IDICT_ERR_HANDLE, "idict_t");
  EXPECT(idict_free(d) == IDICT_OK, "free");
  REFUSED(idict_free(d), IDICT_ERR_HANDLE, "not a live");
  REFUSED(idict_set_f64(d, "x", 1.0), IDICT_ERR_HANDLE, "not a live");
  REFUSED(idict_wait(0, &go), IDICT_ERR_HANDLE, "0 (no handle)");
  REFUSED(idict_terminate(0x123456789abcdefULL), IDICT_ERR_HANDLE,
          "not a live");

  /* Triggers: a bad condition refused saying where; a NaN holds the run. */
  idict_t t = 0;
  EXPECT(idict_new("triggered", &t) == IDICT_OK, "a run for triggers");
  REFUSED(idict_trigger(t, "bad", "residual >", IDICT_TRIGGER_PAUSE, -1, NULL),
          IDICT_ERR_ARGUMENT, "at column 11: the condition ends too soon");
  REFUSED(idict_trigger(t, "x", "x > 0", 8, -1, NULL), IDICT_ERR_ARGUMENT,
          "idict_trigger_action");
  REFUSED(idict_trigger(t, "x", NULL, 0, -1, NULL), IDICT_ERR_NULL,
          "condition");
  EXPECT(idict_trigger(t, "nan", "isnan(residual)", IDICT_TRIGGER_PAUSE,
                       IDICT_ERROR, "blew up") == IDICT_OK,
         "a NaN trigger");
  REFUSED(idict_trigger(t, "nan", "x > 0", 0, -1, NULL), IDICT_ERR_STATE,
          "exists");
  EXPECT(idict_set_f64(t, "residual", 1.0) == IDICT_OK &&
             idict_notify_update(t, NULL) == IDICT_OK,
         "a number");
  EXPECT(idict_wait_timeout(t, 0.01, &outcome) == IDICT_OK &&
             outcome == IDICT_GO,
         "no firing on a number");
  EXPECT(idict_set_f64(t, "residual", NAN) == IDICT_OK &&
             idict_notify_update(t, NULL) == IDICT_OK,
         "the NaN");
  EXPECT(idict_wait_timeout(t, 0.05, &outcome) == IDICT_OK &&
             outcome == IDICT_STILL_PAUSED,
         "held at the NaN, before another step");
  EXPECT(idict_remove_trigger(t, "nan") == IDICT_OK, "remove the trigger");
  REFUSED(idict_remove_trigger(t, "nan"), IDICT_ERR_NOT_FOUND,
          "no trigger named 'nan'");
  EXPECT(idict_free(t) == IDICT_OK, "free the triggered run");

  if (failures == 0) {
    printf("ok\n");
  }
  return failures == 0 ? 0 : 1;
}
