! The Fortran module as a program uses it: the loop, a 2-D array with its
! true shape, stat= codes and their messages. Prints "ok", or what failed.
program module_test
  use, intrinsic :: iso_c_binding, only: c_double, c_int64_t
  use, intrinsic :: ieee_arithmetic, only: ieee_value, ieee_quiet_nan
  use idict
  implicit none
  type(idict_t) :: d, gone
  type(idict_server_t) :: server
  real(c_double) :: a(2, 3), nan
  integer :: stat, failures
  integer(c_int64_t) :: version

  failures = 0
  nan = ieee_value(nan, ieee_quiet_nan)
  call idict_new(d, "fortran")
  call idict_writable_f64(d, "dt", 0.01d0, 0.0d0, 0.25d0)
  call idict_writable_f64(d, "free", 1.0d0, nan, nan)
  call idict_set(d, "residual", 0.5d0)
  call idict_set(d, "step", 3)
  call idict_set(d, "converged", .false.)
  call idict_set(d, "phase", "warm-up")
  a = reshape([1, 4, 2, 5, 3, 6], [2, 3])
  call idict_set(d, "a", a)
  call expect(idict_get_f64(d, "dt") == 0.01d0, "dt")
  call expect(idict_get_i64(d, "step") == 3, "step")
  version = idict_get_i64(d, "phase", stat)
  call expect(stat == IDICT_ERR_TYPE, "a string is no integer")
  call expect(index(idict_error_message(), "phase") > 0, "the message names the key")
  call idict_writable_f64(d, "bad", 1.0d0, 2.0d0, 1.0d0, stat)
  call expect(stat == IDICT_ERR_ARGUMENT, "min > max is refused")
  call idict_trigger(d, "bad", "residual >", IDICT_TRIGGER_PAUSE, stat=stat)
  call expect(stat == IDICT_ERR_ARGUMENT, "a bad condition is refused")
  call expect(index(idict_error_message(), "column 11") > 0, "saying where")
  call idict_trigger(d, "diverged", "residual > 1e6", IDICT_TRIGGER_PAUSE, "diverged")
  call idict_serve(d, server)
  call idict_notify_update(d, version=version)
  call expect(version == 1, "notify")
  call expect(idict_wait(d), "wait goes on")
  call idict_terminate(d)
  call expect(.not. idict_wait(d), "wait stops")
  call idict_notify_update_final(d)
  call idict_notify_update(d, stat)
  call expect(stat == IDICT_ERR_STATE, "no update after the final one")
  call idict_server_wait_then_close(server, 2.0d0)
  gone = d
  call idict_free(d)
  call idict_set(gone, "x", 1.0d0, stat)
  call expect(stat == IDICT_ERR_HANDLE, "a freed handle is refused")
  if (failures == 0) print '(a)', 'ok'
  if (failures /= 0) error stop 1

contains

  subroutine expect(cond, what)
    logical, intent(in) :: cond
    character(*), intent(in) :: what
    if (.not. cond) then
      write (0, '(a)') 'FAILED: '//what
      failures = failures + 1
    end if
  end subroutine

end program
