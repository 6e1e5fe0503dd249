! idict_mpi.f90: MPI jobs from Fortran (`use idict_mpi`), over libidict
! built with MPI (cmake -DIDICT_MPI=ON). One run for the whole job: every
! rank calls idict_new_mpi with the job's communicator (MPI_COMM_WORLD as
! Fortran has it), then runs the usual loop with the `idict` module's
! calls; idict_wait, idict_notify_update and idict_serve become the job's
! collective calls (rank 0 serves). Every call takes an optional `stat`,
! as the `idict` module's do.
module idict_mpi
  use, intrinsic :: iso_c_binding
  use idict, only: idict_t, idict_done, idict_cstr, IDICT_OK, IDICT_ABI_VERSION
  implicit none
  private

  ! How a key's values on the ranks become the run's (mean by default).
  integer, parameter, public :: IDICT_SUM = 0, IDICT_MIN = 1, IDICT_MAX = 2, &
    IDICT_MEAN = 3

  public :: idict_new_mpi, idict_mpi_rank, idict_mpi_reduce, idict_mpi_field, &
    idict_mpi_stitching, idict_mpi_set_block

  interface idict_mpi_set_block
    module procedure set_block_1, set_block_2, set_block_3
  end interface

  integer(c_int), parameter :: COLUMN_MAJOR = 1

  interface
    function c_check_version(v) bind(C, name="idict_check_version") result(s)
      import :: c_int32_t, c_int
      integer(c_int32_t), value :: v
      integer(c_int) :: s
    end function
    function c_new_mpi(name, comm, out) bind(C, name="idict_new_mpi") result(s)
      import :: c_char, c_int, c_int64_t
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int), value :: comm
      integer(c_int64_t) :: out
      integer(c_int) :: s
    end function
    function c_rank(d, rank, size) bind(C, name="idict_mpi_rank") result(s)
      import :: c_int64_t, c_int
      integer(c_int64_t), value :: d
      integer(c_int) :: rank, size
      integer(c_int) :: s
    end function
    function c_reduce(d, key, how) bind(C, name="idict_mpi_reduce") result(s)
      import :: c_int64_t, c_char, c_int
      integer(c_int64_t), value :: d
      character(kind=c_char), intent(in) :: key(*)
      integer(c_int), value :: how
      integer(c_int) :: s
    end function
    function c_field(d, key, ndim, global, offset, shape, order) &
      bind(C, name="idict_mpi_field") result(s)
      import :: c_int64_t, c_char, c_size_t, c_int
      integer(c_int64_t), value :: d
      character(kind=c_char), intent(in) :: key(*)
      integer(c_size_t), value :: ndim
      integer(c_size_t), intent(in) :: global(*), offset(*), shape(*)
      integer(c_int), value :: order
      integer(c_int) :: s
    end function
    function c_stitching(d, yes) bind(C, name="idict_mpi_stitching") result(s)
      import :: c_int64_t, c_int
      integer(c_int64_t), value :: d
      integer(c_int) :: yes
      integer(c_int) :: s
    end function
    function c_set_block(d, key, data, n) bind(C, name="idict_mpi_set_block") result(s)
      import :: c_int64_t, c_char, c_double, c_size_t, c_int
      integer(c_int64_t), value :: d
      character(kind=c_char), intent(in) :: key(*)
      real(c_double), intent(in) :: data(*)
      integer(c_size_t), value :: n
      integer(c_int) :: s
    end function
  end interface

contains

  !> This rank's part of the run `name` of the whole job over `comm` (a
  !> communicator as Fortran has it, e.g. MPI_COMM_WORLD). Collective.
  subroutine idict_new_mpi(d, name, comm, stat)
    type(idict_t), intent(out) :: d
    character(*), intent(in) :: name
    integer, intent(in) :: comm
    integer, intent(out), optional :: stat
    integer(c_int) :: s
    s = c_check_version(IDICT_ABI_VERSION)
    if (s == IDICT_OK) s = c_new_mpi(idict_cstr(name), int(comm, c_int), d%handle)
    call idict_done(s, stat)
  end subroutine

  !> This rank's number (from 0) and the job's size.
  subroutine idict_mpi_rank(d, rank, size, stat)
    type(idict_t), intent(in) :: d
    integer, intent(out) :: rank, size
    integer, intent(out), optional :: stat
    integer(c_int) :: r, n
    r = -1
    n = 0
    call idict_done(c_rank(d%handle, r, n), stat)
    rank = int(r)
    size = int(n)
  end subroutine

  !> How `key`'s values on the ranks become the run's: IDICT_SUM, IDICT_MIN,
  !> IDICT_MAX or IDICT_MEAN.
  subroutine idict_mpi_reduce(d, key, how, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    integer, intent(in) :: how
    integer, intent(out), optional :: stat
    call idict_done(c_reduce(d%handle, idict_cstr(key), int(how, c_int)), stat)
  end subroutine

  !> This rank's block of a field decomposed over the ranks, in Fortran's
  !> terms: the field's shape, the block's first index in each dimension
  !> (1-based) and its shape. The field shows with that shape, stitched
  !> on rank 0 only while someone watches.
  subroutine idict_mpi_field(d, key, global, first, shape, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    integer, intent(in) :: global(:), first(:), shape(:)
    integer, intent(out), optional :: stat
    integer(c_size_t) :: g(size(global)), o(size(first)), n(size(shape))
    g = int(global, c_size_t)
    o = int(first - 1, c_size_t)
    n = int(shape, c_size_t)
    call idict_done(c_field(d%handle, idict_cstr(key), int(size(global), c_size_t), &
                            g, o, n, COLUMN_MAJOR), stat)
  end subroutine

  !> Whether this step's update stitches the fields (a program may skip
  !> preparing its blocks otherwise).
  logical function idict_mpi_stitching(d, stat)
    type(idict_t), intent(in) :: d
    integer, intent(out), optional :: stat
    integer(c_int) :: yes
    yes = 0
    call idict_done(c_stitching(d%handle, yes), stat)
    idict_mpi_stitching = yes /= 0
  end function

  subroutine set_block_1(d, key, block, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    real(c_double), intent(in), contiguous :: block(:)
    integer, intent(out), optional :: stat
    call idict_done(c_set_block(d%handle, idict_cstr(key), block, &
                                int(size(block), c_size_t)), stat)
  end subroutine

  subroutine set_block_2(d, key, block, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    real(c_double), intent(in), contiguous, target :: block(:, :)
    integer, intent(out), optional :: stat
    real(c_double), pointer :: flat(:)
    flat(1:size(block)) => block
    call idict_done(c_set_block(d%handle, idict_cstr(key), flat, &
                                int(size(block), c_size_t)), stat)
  end subroutine

  subroutine set_block_3(d, key, block, stat)
    type(idict_t), intent(in) :: d
    character(*), intent(in) :: key
    real(c_double), intent(in), contiguous, target :: block(:, :, :)
    integer, intent(out), optional :: stat
    real(c_double), pointer :: flat(:)
    flat(1:size(block)) => block
    call idict_done(c_set_block(d%handle, idict_cstr(key), flat, &
                                int(size(block), c_size_t)), stat)
  end subroutine
end module
