/* The heat example in C: u_t = alpha * lap(u) + s * g(x, y) on the unit
 * square, u = 0 on the boundary, by explicit finite differences; the same
 * equations, keys and writable dt and source as the Rust one
 * (examples/src/heat.rs). Watch and steer it like that one:
 *   idict watch heat; idict set heat dt 1e-5; idict pause heat; ...
 *
 * Usage: heat [N [STEPS_PER_SECOND [MAX_STEPS]]]   (defaults 128, 60, none)
 */
#define _POSIX_C_SOURCE 200112L /* clock_gettime, nanosleep */
#include "idict.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Stops the program with idict's message if a call failed. */
static void check(idict_status s, const char *what) {
  if (s != IDICT_OK) {
    fprintf(stderr, "heat: %s: %s\n", what, idict_last_error());
    exit(1);
  }
}

/* Sleeps until `*next`, then moves it on by `period` seconds. */
static void pace(struct timespec *next, double period) {
  if (period <= 0) return;
  next->tv_nsec += (long)(period * 1e9);
  while (next->tv_nsec >= 1000000000L) {
    next->tv_nsec -= 1000000000L;
    next->tv_sec += 1;
  }
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL);
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 128;
  double rate = argc > 2 ? atof(argv[2]) : 60.0;
  long long max_steps = argc > 3 ? atoll(argv[3]) : -1;
  if (n < 3) n = 3;
  const double alpha = 1.0, tolerance = 1e-4;
  const double h = 1.0 / (n - 1), dt_max = h * h / (4.0 * alpha);

  check(idict_check_version(IDICT_ABI_VERSION), "idict.h and libidict differ");
  idict_t d;
  check(idict_new("heat", &d), "new");
  check(idict_terminate_on_signals(d), "signals");
  check(idict_writable_f64(d, "dt", 0.9 * dt_max, 0.0, dt_max), "dt");
  check(idict_writable_f64(d, "source", 1.0, 0.0, 1e6), "source");
  check(idict_set_i64(d, "n", n), "n");
  check(idict_set_f64(d, "alpha", alpha), "alpha");
  char text[128];
  snprintf(text, sizeof text, "heat (C): %dx%d grid, stability limit dt <= %.4e",
           n, n, dt_max);
  check(idict_message(d, IDICT_INFO, text), "message");
  idict_server_t server;
  check(idict_serve(d, &server), "serve");

  /* A Gaussian heat source off the centre, so the field is not symmetric. */
  double *g = malloc(sizeof(double) * n * n);
  double *u = calloc((size_t)n * n, sizeof(double));
  double *next = calloc((size_t)n * n, sizeof(double));
  if (!g || !u || !next) return 1;
  for (int k = 0; k < n * n; k++) {
    double x = (k % n) * h, y = (k / n) * h;
    g[k] = exp(-((x - 0.35) * (x - 0.35) + (y - 0.6) * (y - 0.6)) /
               (2.0 * 0.08 * 0.08));
  }
  const size_t shape[2] = {(size_t)n, (size_t)n};
  const char *keys[4] = {"t", "residual", "energy", "max_u"};
  struct timespec tick;
  clock_gettime(CLOCK_MONOTONIC, &tick);
  double t = 0, residual = INFINITY;
  long long step = 0;
  int go = 1;
  /* idict_wait: the pause gate and steering; go is 0 once terminated. */
  while ((max_steps < 0 || step < max_steps) &&
         idict_wait(d, &go) == IDICT_OK && go) {
    pace(&tick, rate > 0 ? 1.0 / rate : 0);
    double dt, source;
    check(idict_get_f64(d, "dt", &dt), "dt");
    check(idict_get_f64(d, "source", &source), "source");
    residual = 0;
    for (int j = 1; j < n - 1; j++) {
      for (int i = 1; i < n - 1; i++) {
        int k = j * n + i;
        double lap = (u[k - 1] + u[k + 1] + u[k - n] + u[k + n] - 4 * u[k]) /
                     (h * h);
        double r = alpha * lap + source * g[k];
        next[k] = u[k] + dt * r;
        if (fabs(r) > residual) residual = fabs(r);
      }
    }
    double *swap = u;
    u = next;
    next = swap;
    t += dt;
    step++;
    double energy = 0, peak = 0;
    for (int k = 0; k < n * n; k++) {
      energy += u[k];
      if (u[k] > peak) peak = u[k];
    }
    energy *= h * h;
    const double values[4] = {t, residual, energy, peak};
    check(idict_set_f64s(d, keys, values, 4), "values");
    check(idict_set_i64(d, "step", step), "step");
    check(idict_set_array(d, "u", IDICT_F64, u, sizeof(double) * n * n, shape,
                          2, IDICT_ROW_MAJOR),
          "u");
    check(idict_notify_update(d, NULL), "notify");
    if (residual < tolerance) {
      snprintf(text, sizeof text, "heat: steady after %lld steps (residual %.3e)",
               step, residual);
      check(idict_message(d, IDICT_INFO, text), "message");
      break;
    }
  }
  check(idict_notify_update_final(d, NULL), "final update");
  check(idict_server_wait_then_close(server, 10.0), "close");
  check(idict_free(d), "free");
  printf("heat: %lld steps, residual %.3e\n", step, residual);
  free(g);
  free(u);
  free(next);
  return 0;
}
