/* The MPI part of the C interface through the real ABI, under mpirun -n 2:
 * a short collective loop, and every misuse refused with its status. */
#define IDICT_MPI
#include "idict.h"
#include <mpi.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;

static void expect(idict_status got, idict_status want, const char *what) {
  if (got != want) {
    fprintf(stderr, "%s: got status %d, want %d (%s)\n", what, got, want,
            got == IDICT_OK ? "" : idict_last_error());
    failures++;
  }
}

int main(int argc, char **argv) {
  idict_t d = 0, plain = 0;
  expect(idict_new_mpi("mpi-abi", 0, &d), IDICT_ERR_STATE, "before MPI_Init");
  MPI_Init(&argc, &argv);
  expect(idict_new_mpi("mpi-abi", MPI_Comm_c2f(MPI_COMM_WORLD), NULL), IDICT_ERR_NULL,
         "out NULL");
  expect(idict_new_mpi("mpi-abi", MPI_Comm_c2f(MPI_COMM_WORLD), &d), IDICT_OK, "new");
  int rank = -1, size = -1;
  expect(idict_mpi_rank(d, &rank, &size), IDICT_OK, "rank");
  if (size != 2 || rank < 0 || rank > 1) failures++;
  expect(idict_mpi_reduce(d, "x", 9), IDICT_ERR_ARGUMENT, "an unknown reduction");
  expect(idict_mpi_reduce(d, "x", IDICT_SUM), IDICT_OK, "reduce");
  expect(idict_new("plain", &plain), IDICT_OK, "a run of one process");
  expect(idict_mpi_reduce(plain, "x", IDICT_SUM), IDICT_ERR_HANDLE, "not an MPI run");
  expect(idict_mpi_reduce(12345, "x", IDICT_SUM), IDICT_ERR_HANDLE, "a made-up handle");
  const size_t global[2] = {4, 3}, offset[2] = {(size_t)(2 * rank), 0}, shape[2] = {2, 3};
  const size_t outside[2] = {3, 0};
  expect(idict_mpi_field(d, "f", 2, global, outside, shape, IDICT_ROW_MAJOR), IDICT_ERR_ARGUMENT,
         "a block outside its field");
  expect(idict_mpi_field(d, "f", 4, global, offset, shape, IDICT_ROW_MAJOR), IDICT_ERR_ARGUMENT,
         "four dimensions");
  expect(idict_mpi_field(d, "f", 2, NULL, offset, shape, IDICT_ROW_MAJOR), IDICT_ERR_NULL, "global NULL");
  expect(idict_mpi_field(d, "f", 2, global, offset, shape, 7), IDICT_ERR_ARGUMENT,
         "an unknown order");
  expect(idict_mpi_field(d, "f", 2, global, offset, shape, IDICT_ROW_MAJOR), IDICT_OK, "field");
  double block[6] = {1, 1, 1, 1, 1, 1};
  expect(idict_mpi_set_block(d, "f", block, 5), IDICT_ERR_ARGUMENT, "5 values for 6");
  expect(idict_mpi_set_block(d, "g", block, 6), IDICT_ERR_ARGUMENT, "an undeclared field");
  int go = 0, stitching = 0;
  for (int step = 1; step <= 3; step++) {
    expect(idict_wait(d, &go), IDICT_OK, "wait");
    if (!go) failures++;
    expect(idict_set_f64(d, "x", rank + 1.0), IDICT_OK, "set");
    expect(idict_mpi_stitching(d, &stitching), IDICT_OK, "stitching");
    expect(idict_mpi_set_block(d, "f", block, 6), IDICT_OK, "set_block");
    expect(idict_notify_update(d, NULL), IDICT_OK, "notify");
  }
  /* The reduced sum on rank 0: ranks 0 and 1 set 1 and 2. */
  if (rank == 0) {
    double x = 0;
    expect(idict_get_f64(d, "x", &x), IDICT_OK, "get x");
    if (x != 3.0) {
      fprintf(stderr, "x is %g on rank 0, want the sum 3\n", x);
      failures++;
    }
  }
  expect(idict_notify_update_final(d, NULL), IDICT_OK, "final");
  expect(idict_free(d), IDICT_OK, "free");
  expect(idict_mpi_rank(d, &rank, &size), IDICT_ERR_HANDLE, "freed");
  expect(idict_free(plain), IDICT_OK, "free plain");
  MPI_Finalize();
  if (failures == 0 && rank == 0) printf("ok\n");
  return failures == 0 ? 0 : 1;
}
