! The heat example as an MPI job in Fortran: u(n, n) split in strips of
! columns over the ranks, halos exchanged with MPI_Sendrecv, the steady
! test an MPI_Allreduce: the program's own MPI. idict makes the job one
! run, served by rank 0: every rank pauses, steps and takes a write of dt
! at the same step, residual and energy are reduced over the ranks, and
! u is stitched whole, with its Fortran shape, while watched.
!
!   mpirun -n 4 heat_mpi [N [STEPS_PER_SECOND [MAX_STEPS]]]
!
! Needs libidict built with MPI (cmake -DIDICT_MPI=ON).
program heat_mpi
  use, intrinsic :: iso_c_binding, only: c_double
  use mpi
  use idict
  use idict_mpi
  implicit none
  type(idict_t) :: d
  type(idict_server_t) :: server
  real(c_double), allocatable :: u(:, :), next(:, :), g(:, :)
  real(c_double) :: h, dt, dt_max, source, t, residual, global_residual, r, lap
  real(c_double) :: energy, peak
  real(c_double), parameter :: alpha = 1.0d0, tolerance = 1.0d-4
  real :: rate
  integer :: n, i, j, first, last, cols, rank, nranks, up, down, ierr
  integer :: max_steps, step, count_rate, start, now
  character(len=32) :: arg
  character(len=128) :: text

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nranks, ierr)
  n = 128
  rate = 60.0
  max_steps = -1
  if (command_argument_count() >= 1) then
    call get_command_argument(1, arg)
    read (arg, *) n
  end if
  if (command_argument_count() >= 2) then
    call get_command_argument(2, arg)
    read (arg, *) rate
  end if
  if (command_argument_count() >= 3) then
    call get_command_argument(3, arg)
    read (arg, *) max_steps
  end if
  n = max(n, 8)
  h = 1.0d0/(n - 1)
  dt_max = h*h/(4.0d0*alpha)
  ! This rank's columns of the interior (2 .. n-1): first to last.
  first = 2 + ((n - 2)*rank)/nranks
  last = 1 + ((n - 2)*(rank + 1))/nranks
  cols = last - first + 1

  call idict_new_mpi(d, "heat", MPI_COMM_WORLD)
  call idict_writable_f64(d, "dt", 0.9d0*dt_max, 0.0d0, dt_max)
  call idict_writable_f64(d, "source", 1.0d0, 0.0d0, 1.0d6)
  call idict_set(d, "n", n)
  call idict_set(d, "cols", cols)
  call idict_mpi_reduce(d, "residual", IDICT_MAX)
  call idict_mpi_reduce(d, "energy", IDICT_SUM)
  call idict_mpi_reduce(d, "max_u", IDICT_MAX)
  call idict_mpi_reduce(d, "cols", IDICT_SUM)
  call idict_mpi_field(d, "u", [n, n], [1, first], [n, cols])
  call idict_serve(d, server)
  if (rank == 0) then
    write (text, '(a,i0,a,i0,a,i0,a)') 'heat_mpi (Fortran): ', n, 'x', n, ' grid over ', &
      nranks, ' ranks'
    call idict_message(d, IDICT_INFO, trim(text))
  end if

  ! The strip with a halo column each side: u(1:n, first-1:last+1).
  allocate (u(n, first - 1:last + 1), next(n, first - 1:last + 1), g(n, first - 1:last + 1))
  u = 0
  next = 0
  do j = first - 1, last + 1
    do i = 1, n
      g(i, j) = exp(-(((i - 1)*h - 0.35d0)**2 + ((j - 1)*h - 0.6d0)**2)/(2*0.08d0**2))
    end do
  end do
  up = merge(rank - 1, MPI_PROC_NULL, rank > 0)
  down = merge(rank + 1, MPI_PROC_NULL, rank + 1 < nranks)
  t = 0
  step = 0
  call system_clock(start, count_rate)
  do while (max_steps < 0 .or. step < max_steps)
    if (.not. idict_wait(d)) exit
    if (rate > 0) then
      do
        call system_clock(now)
        if (real(now - start)/count_rate >= step/rate) exit
      end do
    end if
    dt = idict_get_f64(d, "dt")
    source = idict_get_f64(d, "source")
    ! Halos: the first column goes up, the last down.
    call MPI_Sendrecv(u(:, first), n, MPI_DOUBLE_PRECISION, up, 0, u(:, last + 1), n, &
                      MPI_DOUBLE_PRECISION, down, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    call MPI_Sendrecv(u(:, last), n, MPI_DOUBLE_PRECISION, down, 1, u(:, first - 1), n, &
                      MPI_DOUBLE_PRECISION, up, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
    residual = 0
    do j = first, last
      do i = 2, n - 1
        lap = (u(i - 1, j) + u(i + 1, j) + u(i, j - 1) + u(i, j + 1) - 4*u(i, j))/(h*h)
        r = alpha*lap + source*g(i, j)
        next(i, j) = u(i, j) + dt*r
        residual = max(residual, abs(r))
      end do
    end do
    u(:, first:last) = next(:, first:last)
    t = t + dt
    step = step + 1
    energy = sum(u(:, first:last))*h*h
    peak = maxval(u(:, first:last))
    call idict_set(d, "step", step)
    call idict_set(d, "t", t)
    call idict_set(d, "residual", residual)
    call idict_set(d, "energy", energy)
    call idict_set(d, "max_u", peak)
    if (idict_mpi_stitching(d)) call idict_mpi_set_block(d, "u", u(:, first:last))
    call idict_notify_update(d)
    ! Steady everywhere or nowhere: the program's own collective.
    call MPI_Allreduce(residual, global_residual, 1, MPI_DOUBLE_PRECISION, MPI_MAX, &
                       MPI_COMM_WORLD, ierr)
    if (global_residual < tolerance) exit
  end do
  call idict_notify_update_final(d)
  call idict_server_wait_then_close(server, 10.0d0)
  call idict_free(d)
  write (*, '(a,i0,a,i0)') 'rank ', rank, ': ended at step ', step
  call MPI_Finalize(ierr)
end program
