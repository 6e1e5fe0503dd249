! idict.f90: the Fortran module over idict.h (`use idict`), written with
! iso_c_binding. Handles are type(idict_t) / type(idict_server_t); keys are
! character(*); scalars real(8), integer and logical; arrays of rank 1 to 3
! of real(8), real(4), integer(8) and integer(4) passed in place and shown
! with their true shape. Every call takes an optional `stat`: with it, the
! status is returned there (IDICT_OK is 0) and idict_error_message() says
! why one failed; without it, a failure stops the program with the message.
module idict
  use, intrinsic :: iso_c_binding
  implicit none
  private

  integer(c_int32_t), parameter, public :: IDICT_ABI_VERSION = 1
  integer, parameter, public :: IDICT_OK = 0, IDICT_ERR_NULL = 1, &
    IDICT_ERR_HANDLE = 2, IDICT_ERR_UTF8 = 3, IDICT_ERR_ARGUMENT = 4, &
    IDICT_ERR_NOT_FOUND = 5, IDICT_ERR_TYPE = 6, IDICT_ERR_STATE = 7, &
    IDICT_ERR_SYSTEM = 8, IDICT_ERR_VERSION = 9, IDICT_ERR_INTERNAL = 10
  integer, parameter, public :: IDICT_DEBUG = 0, IDICT_INFO = 1, &
    IDICT_WARN = 2, IDICT_ERROR = 3
  ! What a trigger does, added together (0: only log).
  integer, parameter, public :: IDICT_TRIGGER_PAUSE = 1, &
    IDICT_TRIGGER_TERMINATE = 2, IDICT_TRIGGER_CHECKPOINT = 4

  type, public :: idict_t
    integer(c_int64_t) :: handle = 0
  end type
  type, public :: idict_server_t
    integer(c_int64_t) :: handle = 0
  end type

  public :: idict_new, idict_free, idict_set, idict_get_f64, idict_get_i64, &
    idict_writable_f64, idict_wait, idict_notify_update, &
    idict_notify_update_final, idict_terminate, idict_pause, idict_resume, &
    idict_message, idict_trigger, idict_terminate_on_signals, idict_serve, &
    idict_server_wait_then_close, idict_checkpoint, idict_error_message
  ! For modules built on this one (idict_mpi): a status to `stat` or a
  ! stop, and a Fortran string as a C one.
  public :: idict_done, idict_cstr

  ! Element types and orders, as idict.h has them.
  integer(c_int), parameter :: F64 = 0, F32 = 1, I64 = 2, I32 = 3
  integer(c_int), parameter :: COLUMN_MAJOR = 1

  interface idict_set
    module procedure set_f64, set_i32, set_i64, set_logical, set_str, &
      set_f64_1, set_f64_2, set_f64_3, set_f32_1, set_f32_2, set_f32_3, &
      set_i32_1, set_i32_2, set_i32_3, set_i64_1, set_i64_2, set_i64_3
  end interface

  interface
    function c_check_version(v) bind(C, name="idict_check_version") result(s)
      import :: c_int32_t, c_int
      integer(c_int32_t), value :: v
      integer(c_int) :: s
    end function
    function c_last_error() bind(C, name="idict_last_error") result(p)
      import :: c_ptr
      type(c_ptr) :: p
    end function
    function c_strlen(p) bind(C, name="strlen") result(n)
      import :: c_ptr, c_size_t
      type(c_ptr), value :: p
      integer(c_size_t) :: n
    end function
    function c_new(name, out) bind(C, name="idict_new") result(s)
      import :: c_char, c_int64_t, c_int
      character(kind=c_char), dimension(*) :: name
      integer(c_int64_t) :: out
      integer(c_int) :: s
    end function
    function c_free(d) bind(C, name="idict_free") result(s)
      import :: c_int64_t, c_int
      integer(c_int64_t), value :: d
      integer(c_int) :: s
    end function
    function c_set_f64(d, key, v) bind(C, name="idict_set_f64") result(s)
      import :: c_int64_t, c_char, c_double, c_int
      integer(c_int64_t), value :: d
      character(kind=c_char), dimension(*) :: key
      real(c_double), value :: v
      integer(c_int) :: s
    end function
    function c_set_i64(d, key, v) bind(C, name="idict_set_i64") result(s)
      import :: c_int64_t, c_char, c_int
      integer(c_int64_t), value :: d
      character(kind=c_char), dimension(*) :: key
      integer(c_int64_t), value :: v
      integer(c_int) :: s
    end function
    function c_set_bool(d, key, v) bind(C, name="idict_set_bool") result(s)
      import :: c_int64_t, c_char, c_int
      integer(c_int64_t), value :: d
      character(kind=c_char), dimension(*) :: key
      integer(c_int), value :: v
      integer(c_int) :: s
    end function
    function c_set_str(d, key, v) bind(C, name="idict_set_str") result(s)
      import :: c_int64_t, c_char, c_int
      integer(c_int64_t), value :: d
      character(kind=c_char), dimension(*) :: key, v
      integer(c_int) :: s
    end function
    function c_set_array(d, key, dtype, data, nbytes, shape, ndim, order) &
        bind(C, name="idict_set_array") result(s)
      import :: c_int64_t, c_char, c_int, c_ptr, c_size_t
      integer(c_int64_t), value :: d
      character(kind=c_char), dimension(*) :: key
      integer(c_int), value :: dtype, order
      type(c_ptr), value :: data
      integer(c_size_t), value :: nbytes, ndim
      integer(c_size_t), dimension(*) :: shape
      integer(c_int) :: s
    end function
    function c_get_f64(d, key, out) bind(C, name="idict_get_f64") result(s)
      import :: c_int64_t, c_char, c_double, c_int
      integer(c_int64_t), value :: d
      character(kind=c_char), dimension(*) :: key
      real(c_double) :: out
      integer(c_int) :: s
    end function
    function c_get_i64(d, key, out) bind(C, name="idict_get_i64") result(s)
      import :: c_int64_t, c_char, c_int
      integer(c_int64_t), value :: d
      character(kind=c_char), dimension(*) :: key
      integer(c_int64_t) :: out
      integer(c_int) :: s
    end function
    function c_writable_f64(d, key, initial, lo, hi) &
        bind(C, name="idict_writable_f64") result(s)
      import :: c_int64_t, c_char, c_double, c_int
      integer(c_int64_t), value :: d
      character(kind=c_char), dimension(*) :: key
      real(c_double), value :: initial, lo, hi
      integer(c_int) :: s
    end function
    function c_wait(d, go) bind(C, name="idict_wait") result(s)
      import :: c_int64_t, c_int
      integer(c_int64_t), value :: d
      integer(c_int) :: go
      integer(c_int) :: s
    end function
    function c_notify(d, version) bind(C, name="idict_notify_update") result(s)
      import :: c_int64_t, c_int
      integer(c_int64_t), value :: d
      integer(c_int64_t) :: version
      integer(c_int) :: s
    end function
    function c_notify_final(d, version) &
        bind(C, name="idict_notify_update_final") result(s)
      import :: c_int64_t, c_int
      integer(c_int64_t), value :: d
      integer(c_int64_t) :: version
      integer(c_int) :: s
    end function
    function c_terminate(d) bind(C, name="idict_terminate") result(s)
      import :: c_int64_t, c_int
      integer(c_int64_t), value :: d
      integer(c_int) :: s
    end function
    function c_pause(d) bind(C, name="idict_pause") result(s)
      import :: c_int64_t, c_int
      integer(c_int64_t), value :: d
      integer(c_int) :: s
    end function
    function c_resume(d) bind(C, name="idict_resume") result(s)
      import :: c_int64_t, c_int
      integer(c_int64_t), value :: d
      integer(c_int) :: s
    end function
    function c_message(d, level, text) bind(C, name="idict_message") result(s)
      import :: c_int64_t, c_int, c_char
      integer(c_int64_t), value :: d
      integer(c_int), value :: level
      character(kind=c_char), dimension(*) :: text
      integer(c_int) :: s
    end function
    function c_trigger(d, name, condition, actions, level, text) &
        bind(C, name="idict_trigger") result(s)
      import :: c_int64_t, c_int, c_char
      integer(c_int64_t), value :: d
      character(kind=c_char), dimension(*) :: name, condition, text
      integer(c_int), value :: actions, level
      integer(c_int) :: s
    end function
    function c_signals(d) bind(C, name="idict_terminate_on_signals") result(s)
      import :: c_int64_t, c_int
      integer(c_int64_t), value :: d
      integer(c_int) :: s
    end function
    function c_serve(d, out) bind(C, name="idict_serve") result(s)
      import :: c_int64_t, c_int
      integer(c_int64_t), value :: d
      integer(c_int64_t) :: out
      integer(c_int) :: s
    end function
    function c_close(srv, timeout) &
        bind(C, name="idict_server_wait_then_close") result(s)
      import :: c_int64_t, c_double, c_int
      integer(c_int64_t), value :: srv
      real(c_double), value :: timeout
      integer(c_int) :: s
    end function
    function c_checkpoint(d, path, version) bind(C, name="idict_checkpoint") result(s)
      import :: c_int64_t, c_char, c_int
      integer(c_int64_t), value :: d
      character(kind=c_char), dimension(*) :: path
      integer(c_int64_t) :: version
      integer(c_int) :: s
    end function
  end interface

contains

  !> Why the last failing call on this thread failed.
  function idict_error_message() result(text)
    character(len=:), allocatable :: text
    type(c_ptr) :: p
    character(kind=c_char), pointer :: chars(:)
    integer :: i, n
    p = c_last_error()
    n = int(c_strlen(p))
    call c_f_pointer(p, chars, [n])
    allocate (character(len=n) :: text)
    do i = 1, n
      text(i:i) = chars(i)
    end do
  end function

  !> A status to `stat`, or, without one, a failure stops the program.
  subroutine idict_done(s, stat)
    integer(c_int), intent(in) :: s
    integer, intent(out), optional :: stat
    if (present(stat)) then
      stat = int(s)
    else if (s /= IDICT_OK) then
      write (0, '(a)') 'idict: '//idict_error_message()
      error stop 1
    end if
  end subroutine

  !> A Fortran string as a C one: trailing blanks trimmed, NUL added.
  pure function idict_cstr(text) result(c)
    character(*), intent(in) :: text
    character(kind=c_char, len=len_trim(text) + 1) :: c
    c = trim(text)//c_null_char
  end function

  !> A new run named `name` (checks first that this module is the library's).
  subroutine idict_new(d, name, stat)
    type(idict_t), intent(out) :: d
    character(*), intent(in) :: name
    integer, intent(out), optional :: stat
    integer(c_int) :: s
    s = c_check_version(IDICT_ABI_VERSION)
    if (s == IDICT_OK) s = c_new(idict_cstr(name), d%handle)
    call idict_done(s, stat)
  end subroutine

  subroutine idict_free(d, stat)
    type(idict_t), intent(inout) :: d
    integer, intent(out), optional :: stat
    call idict_done(c_free(d%handle), stat)
    d%handle = 0
  end subroutine

  subroutine set_f64(d, key, value, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    real(c_double), intent(in) :: value
    integer, intent(out), optional :: stat
    call idict_done(c_set_f64(d%handle, idict_cstr(key), value), stat)
  end subroutine

  subroutine set_i32(d, key, value, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    integer(c_int32_t), intent(in) :: value
    integer, intent(out), optional :: stat
    call idict_done(c_set_i64(d%handle, idict_cstr(key), int(value, c_int64_t)), stat)
  end subroutine

  subroutine set_i64(d, key, value, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    integer(c_int64_t), intent(in) :: value
    integer, intent(out), optional :: stat
    call idict_done(c_set_i64(d%handle, idict_cstr(key), value), stat)
  end subroutine

  subroutine set_logical(d, key, value, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    logical, intent(in) :: value
    integer, intent(out), optional :: stat
    integer(c_int) :: v
    v = 0
    if (value) v = 1
    call idict_done(c_set_bool(d%handle, idict_cstr(key), v), stat)
  end subroutine

  subroutine set_str(d, key, value, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key, value
    integer, intent(out), optional :: stat
    call idict_done(c_set_str(d%handle, idict_cstr(key), idict_cstr(value)), stat)
  end subroutine

  !> An array in place: its address, bytes and shape, column-major.
  subroutine set_any(d, key, dtype, data, nbytes, shape, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    integer(c_int), intent(in) :: dtype
    type(c_ptr), intent(in) :: data
    integer(c_size_t), intent(in) :: nbytes
    integer, intent(in) :: shape(:)
    integer, intent(out), optional :: stat
    integer(c_size_t) :: dims(size(shape))
    dims = int(shape, c_size_t)
    call idict_done(c_set_array(d%handle, idict_cstr(key), dtype, data, nbytes, dims, &
                          int(size(shape), c_size_t), COLUMN_MAJOR), stat)
  end subroutine

  subroutine set_f64_1(d, key, a, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    real(c_double), intent(in), target, contiguous :: a(:)
    integer, intent(out), optional :: stat
    call set_any(d, key, F64, c_loc(a), int(size(a), c_size_t)*8, shape(a), stat)
  end subroutine
  subroutine set_f64_2(d, key, a, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    real(c_double), intent(in), target, contiguous :: a(:, :)
    integer, intent(out), optional :: stat
    call set_any(d, key, F64, c_loc(a), int(size(a), c_size_t)*8, shape(a), stat)
  end subroutine
  subroutine set_f64_3(d, key, a, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    real(c_double), intent(in), target, contiguous :: a(:, :, :)
    integer, intent(out), optional :: stat
    call set_any(d, key, F64, c_loc(a), int(size(a), c_size_t)*8, shape(a), stat)
  end subroutine
  subroutine set_f32_1(d, key, a, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    real(c_float), intent(in), target, contiguous :: a(:)
    integer, intent(out), optional :: stat
    call set_any(d, key, F32, c_loc(a), int(size(a), c_size_t)*4, shape(a), stat)
  end subroutine
  subroutine set_f32_2(d, key, a, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    real(c_float), intent(in), target, contiguous :: a(:, :)
    integer, intent(out), optional :: stat
    call set_any(d, key, F32, c_loc(a), int(size(a), c_size_t)*4, shape(a), stat)
  end subroutine
  subroutine set_f32_3(d, key, a, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    real(c_float), intent(in), target, contiguous :: a(:, :, :)
    integer, intent(out), optional :: stat
    call set_any(d, key, F32, c_loc(a), int(size(a), c_size_t)*4, shape(a), stat)
  end subroutine
  subroutine set_i32_1(d, key, a, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    integer(c_int32_t), intent(in), target, contiguous :: a(:)
    integer, intent(out), optional :: stat
    call set_any(d, key, I32, c_loc(a), int(size(a), c_size_t)*4, shape(a), stat)
  end subroutine
  subroutine set_i32_2(d, key, a, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    integer(c_int32_t), intent(in), target, contiguous :: a(:, :)
    integer, intent(out), optional :: stat
    call set_any(d, key, I32, c_loc(a), int(size(a), c_size_t)*4, shape(a), stat)
  end subroutine
  subroutine set_i32_3(d, key, a, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    integer(c_int32_t), intent(in), target, contiguous :: a(:, :, :)
    integer, intent(out), optional :: stat
    call set_any(d, key, I32, c_loc(a), int(size(a), c_size_t)*4, shape(a), stat)
  end subroutine
  subroutine set_i64_1(d, key, a, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    integer(c_int64_t), intent(in), target, contiguous :: a(:)
    integer, intent(out), optional :: stat
    call set_any(d, key, I64, c_loc(a), int(size(a), c_size_t)*8, shape(a), stat)
  end subroutine
  subroutine set_i64_2(d, key, a, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    integer(c_int64_t), intent(in), target, contiguous :: a(:, :)
    integer, intent(out), optional :: stat
    call set_any(d, key, I64, c_loc(a), int(size(a), c_size_t)*8, shape(a), stat)
  end subroutine
  subroutine set_i64_3(d, key, a, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    integer(c_int64_t), intent(in), target, contiguous :: a(:, :, :)
    integer, intent(out), optional :: stat
    call set_any(d, key, I64, c_loc(a), int(size(a), c_size_t)*8, shape(a), stat)
  end subroutine

  !> A number (a float, or an integer as a float): a steered value.
  function idict_get_f64(d, key, stat) result(value)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    integer, intent(out), optional :: stat
    real(c_double) :: value
    value = 0
    call idict_done(c_get_f64(d%handle, idict_cstr(key), value), stat)
  end function

  function idict_get_i64(d, key, stat) result(value)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    integer, intent(out), optional :: stat
    integer(c_int64_t) :: value
    value = 0
    call idict_done(c_get_i64(d%handle, idict_cstr(key), value), stat)
  end function

  !> `key` writable by clients, within [lo, hi] (give ieee NaN for none).
  subroutine idict_writable_f64(d, key, initial, lo, hi, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    real(c_double), intent(in) :: initial, lo, hi
    integer, intent(out), optional :: stat
    call idict_done(c_writable_f64(d%handle, idict_cstr(key), initial, lo, hi), stat)
  end subroutine

  !> The loop's safe point: .false. once terminated; blocks while paused.
  logical function idict_wait(d, stat)
    type(idict_t), intent(in) :: d
    integer, intent(out), optional :: stat
    integer(c_int) :: go
    go = 0
    call idict_done(c_wait(d%handle, go), stat)
    idict_wait = go /= 0
  end function

  subroutine idict_notify_update(d, stat, version)
    type(idict_t), intent(in) :: d
    integer, intent(out), optional :: stat
    integer(c_int64_t), intent(out), optional :: version
    integer(c_int64_t) :: v
    call idict_done(c_notify(d%handle, v), stat)
    if (present(version)) version = v
  end subroutine

  subroutine idict_notify_update_final(d, stat, version)
    type(idict_t), intent(in) :: d
    integer, intent(out), optional :: stat
    integer(c_int64_t), intent(out), optional :: version
    integer(c_int64_t) :: v
    call idict_done(c_notify_final(d%handle, v), stat)
    if (present(version)) version = v
  end subroutine

  subroutine idict_terminate(d, stat)
    type(idict_t), intent(in) :: d
    integer, intent(out), optional :: stat
    call idict_done(c_terminate(d%handle), stat)
  end subroutine

  subroutine idict_pause(d, stat)
    type(idict_t), intent(in) :: d
    integer, intent(out), optional :: stat
    call idict_done(c_pause(d%handle), stat)
  end subroutine

  subroutine idict_resume(d, stat)
    type(idict_t), intent(in) :: d
    integer, intent(out), optional :: stat
    call idict_done(c_resume(d%handle), stat)
  end subroutine

  subroutine idict_message(d, level, text, stat)
    type(idict_t), intent(in) :: d
    integer, intent(in) :: level
    character(*), intent(in) :: text
    integer, intent(out), optional :: stat
    call idict_done(c_message(d%handle, int(level, c_int), idict_cstr(text)), stat)
  end subroutine

  !> A trigger: when `condition` (e.g. 'isnan(residual)') becomes true at
  !> an update, the run logs it and does `actions` (IDICT_TRIGGER_PAUSE,
  !> ... added together; 0: only log).
  subroutine idict_trigger(d, name, condition, actions, message, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: name, condition
    integer, intent(in) :: actions
    character(*), intent(in), optional :: message
    integer, intent(out), optional :: stat
    character(len=:), allocatable :: text
    text = ''
    if (present(message)) text = message
    call idict_done(c_trigger(d%handle, idict_cstr(name), idict_cstr(condition), &
      int(actions, c_int), -1_c_int, idict_cstr(text)), stat)
  end subroutine

  subroutine idict_terminate_on_signals(d, stat)
    type(idict_t), intent(in) :: d
    integer, intent(out), optional :: stat
    call idict_done(c_signals(d%handle), stat)
  end subroutine

  !> Serves the run (127.0.0.1, a free port, tokens, a run file).
  subroutine idict_serve(d, server, stat)
    type(idict_t), intent(in) :: d
    type(idict_server_t), intent(out) :: server
    integer, intent(out), optional :: stat
    call idict_done(c_serve(d%handle, server%handle), stat)
  end subroutine

  !> Serves until watchers have the final update (or `timeout` seconds), then closes.
  subroutine idict_server_wait_then_close(server, timeout, stat)
    type(idict_server_t), intent(inout) :: server
    real(c_double), intent(in) :: timeout
    integer, intent(out), optional :: stat
    call idict_done(c_close(server%handle, timeout), stat)
    server%handle = 0
  end subroutine

  subroutine idict_checkpoint(d, path, stat, version)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: path
    integer, intent(out), optional :: stat
    integer(c_int64_t), intent(out), optional :: version
    integer(c_int64_t) :: v
    call idict_done(c_checkpoint(d%handle, idict_cstr(path), v), stat)
    if (present(version)) version = v
  end subroutine

end module idict
