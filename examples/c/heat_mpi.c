/* The heat example as an MPI job in C: the grid's rows in strips over the
 * ranks, halos exchanged with MPI_Sendrecv, the steady test an
 * MPI_Allreduce: the program's own MPI. idict makes the job one run,
 * served by rank 0: every rank pauses, steps and takes a write of dt at
 * the same step, residual and energy are reduced over the ranks (each
 * rank's under residual@ranks), and u is stitched whole while watched.
 *
 *   mpirun -n 4 heat_mpi [N [STEPS_PER_SECOND [MAX_STEPS]]]
 *   idict pause heat --at-step 500; idict set heat dt 1e-5;
 *   idict get heat residual --ranks; idict-inspector heat
 *
 * Needs libidict built with MPI (cmake -DIDICT_MPI=ON).
 */
#define _POSIX_C_SOURCE 200112L /* clock_gettime, nanosleep */
#ifndef IDICT_MPI
#define IDICT_MPI /* the MPI part of idict.h */
#endif
#include "idict.h"
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Stops the job with idict's message if a call failed. */
static void check(idict_status s, const char *what) {
  if (s != IDICT_OK) {
    fprintf(stderr, "heat_mpi: %s: %s\n", what, idict_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
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
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int n = argc > 1 ? atoi(argv[1]) : 128;
  double rate = argc > 2 ? atof(argv[2]) : 60.0;
  long long max_steps = argc > 3 ? atoll(argv[3]) : -1;
  if (n < 8) n = 8;
  const double alpha = 1.0, tolerance = 1e-4;
  const double h = 1.0 / (n - 1), dt_max = h * h / (4.0 * alpha);
  /* This rank's rows of the interior (1 .. n-2), one strip. */
  const int first = 1 + (n - 2) * rank / size;
  const int rows = 1 + (n - 2) * (rank + 1) / size - first;

  check(idict_check_version(IDICT_ABI_VERSION), "idict.h and libidict differ");
  idict_t d;
  check(idict_new_mpi("heat", MPI_Comm_c2f(MPI_COMM_WORLD), &d), "new");
  check(idict_writable_f64(d, "dt", 0.9 * dt_max, 0.0, dt_max), "dt");
  check(idict_writable_f64(d, "source", 1.0, 0.0, 1e6), "source");
  check(idict_set_i64(d, "n", n), "n");
  check(idict_set_i64(d, "rows", rows), "rows");
  check(idict_mpi_reduce(d, "residual", IDICT_MAX), "reduce residual");
  check(idict_mpi_reduce(d, "energy", IDICT_SUM), "reduce energy");
  check(idict_mpi_reduce(d, "max_u", IDICT_MAX), "reduce max_u");
  check(idict_mpi_reduce(d, "rows", IDICT_SUM), "reduce rows");
  const size_t global[2] = {(size_t)n, (size_t)n};
  const size_t offset[2] = {(size_t)first, 0};
  const size_t block[2] = {(size_t)rows, (size_t)n};
  check(idict_mpi_field(d, "u", 2, global, offset, block, IDICT_ROW_MAJOR), "field u");
  idict_server_t server;
  check(idict_serve(d, &server), "serve");
  if (rank == 0) {
    char text[128];
    snprintf(text, sizeof text, "heat_mpi (C): %dx%d grid over %d ranks", n, n, size);
    check(idict_message(d, IDICT_INFO, text), "message");
  }

  /* The strip with a halo row above and below: (rows + 2) x n. */
  const int cells = (rows + 2) * n;
  double *g = malloc(sizeof(double) * cells);
  double *u = calloc((size_t)cells, sizeof(double));
  double *next = calloc((size_t)cells, sizeof(double));
  if (!g || !u || !next) MPI_Abort(MPI_COMM_WORLD, 1);
  for (int k = 0; k < cells; k++) {
    double x = (k % n) * h, y = (first - 1 + k / n) * h;
    g[k] = exp(-((x - 0.35) * (x - 0.35) + (y - 0.6) * (y - 0.6)) /
               (2.0 * 0.08 * 0.08));
  }
  const int up = rank > 0 ? rank - 1 : MPI_PROC_NULL;
  const int down = rank + 1 < size ? rank + 1 : MPI_PROC_NULL;
  const char *keys[4] = {"t", "residual", "energy", "max_u"};
  struct timespec tick;
  clock_gettime(CLOCK_MONOTONIC, &tick);
  double t = 0, global_residual = INFINITY;
  long long step = 0;
  int go = 1;
  /* idict_wait: collective; every rank gets rank 0's decision. */
  while ((max_steps < 0 || step < max_steps) &&
         idict_wait(d, &go) == IDICT_OK && go) {
    pace(&tick, rate > 0 ? 1.0 / rate : 0);
    double dt, source;
    check(idict_get_f64(d, "dt", &dt), "dt");
    check(idict_get_f64(d, "source", &source), "source");
    /* Halos: the first row goes up, the last down. */
    MPI_Sendrecv(u + n, n, MPI_DOUBLE, up, 0, u + (rows + 1) * n, n, MPI_DOUBLE,
                 down, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Sendrecv(u + rows * n, n, MPI_DOUBLE, down, 1, u, n, MPI_DOUBLE, up, 1,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    double residual = 0;
    for (int j = 1; j <= rows; j++) {
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
    for (int k = n; k < (rows + 1) * n; k++) {
      energy += u[k];
      if (u[k] > peak) peak = u[k];
    }
    energy *= h * h;
    const double values[4] = {t, residual, energy, peak};
    check(idict_set_f64s(d, keys, values, 4), "values");
    check(idict_set_i64(d, "step", step), "step");
    int stitching = 0;
    check(idict_mpi_stitching(d, &stitching), "stitching");
    if (stitching) check(idict_mpi_set_block(d, "u", u + n, (size_t)rows * n), "u");
    check(idict_notify_update(d, NULL), "notify");
    /* Steady everywhere or nowhere: the program's own collective. */
    MPI_Allreduce(&residual, &global_residual, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (global_residual < tolerance) break;
  }
  check(idict_notify_update_final(d, NULL), "final update");
  check(idict_server_wait_then_close(server, 10.0), "close");
  check(idict_free(d), "free");
  printf("rank %d: ended at step %lld\n", rank, step);
  free(g);
  free(u);
  free(next);
  MPI_Finalize();
  return 0;
}
