! The heat example in Fortran: u_t = alpha * lap(u) + s * g(x, y) on the
! unit square, u = 0 on the boundary, by explicit finite differences; the
! same equations, keys and writable dt and source as the Rust and C ones.
! The field u(n, n) is published in place, with its true shape.
!
! Usage: heat [N [STEPS_PER_SECOND [MAX_STEPS]]]   (defaults 128, 60, none)
program heat
  use, intrinsic :: iso_c_binding, only: c_double, c_int64_t
  use idict
  implicit none
  type(idict_t) :: d
  type(idict_server_t) :: server
  real(c_double), allocatable :: u(:, :), next(:, :), g(:, :)
  real(c_double) :: h, dt, dt_max, source, t, residual, r, lap, x, y, energy
  real(c_double), parameter :: alpha = 1.0d0, tolerance = 1.0d-4
  real :: rate
  integer :: n, i, j
  integer(c_int64_t) :: step, max_steps, start, now, ticks
  character(len=32) :: arg
  character(len=128) :: text

  n = 128; rate = 60.0; max_steps = -1
  if (command_argument_count() >= 1) then
    call get_command_argument(1, arg); read (arg, *) n
  end if
  if (command_argument_count() >= 2) then
    call get_command_argument(2, arg); read (arg, *) rate
  end if
  if (command_argument_count() >= 3) then
    call get_command_argument(3, arg); read (arg, *) max_steps
  end if
  n = max(n, 3)
  h = 1.0d0/(n - 1)
  dt_max = h*h/(4.0d0*alpha)

  call idict_new(d, "heat")
  call idict_terminate_on_signals(d)
  call idict_writable_f64(d, "dt", 0.9d0*dt_max, 0.0d0, dt_max)
  call idict_writable_f64(d, "source", 1.0d0, 0.0d0, 1.0d6)
  call idict_set(d, "n", n)
  call idict_set(d, "alpha", alpha)
  write (text, '(a,i0,a,i0,a,es10.4)') 'heat (Fortran): ', n, 'x', n, &
    ' grid, stability limit dt <= ', dt_max
  call idict_message(d, IDICT_INFO, trim(text))
  call idict_serve(d, server)

  ! A Gaussian heat source off the centre. Row i is y = (i-1) h and column
  ! j is x = (j-1) h, as in the Rust and C examples, so u(i, j) looks the same.
  allocate (u(n, n), next(n, n), g(n, n))
  u = 0; next = 0
  do j = 1, n
    do i = 1, n
      x = (j - 1)*h; y = (i - 1)*h
      g(i, j) = exp(-((x - 0.35d0)**2 + (y - 0.6d0)**2)/(2.0d0*0.08d0**2))
    end do
  end do

  call system_clock(start, ticks)
  t = 0; step = 0; residual = huge(1.0d0)
  ! idict_wait: the pause gate and steering; .false. once terminated.
  do while ((max_steps < 0 .or. step < max_steps) .and. idict_wait(d))
    if (rate > 0) call pace(step + 1)
    dt = idict_get_f64(d, "dt")
    source = idict_get_f64(d, "source")
    residual = 0
    do j = 2, n - 1
      do i = 2, n - 1
        lap = (u(i - 1, j) + u(i + 1, j) + u(i, j - 1) + u(i, j + 1) - 4*u(i, j))/(h*h)
        r = alpha*lap + source*g(i, j)
        next(i, j) = u(i, j) + dt*r
        residual = max(residual, abs(r))
      end do
    end do
    u = next
    t = t + dt
    step = step + 1
    energy = sum(u)*h*h
    call idict_set(d, "step", step)
    call idict_set(d, "t", t)
    call idict_set(d, "residual", residual)
    call idict_set(d, "energy", energy)
    call idict_set(d, "max_u", maxval(u))
    call idict_set(d, "u", u)
    call idict_notify_update(d)
    if (residual < tolerance) then
      write (text, '(a,i0,a,es10.3,a)') 'heat: steady after ', step, &
        ' steps (residual ', residual, ')'
      call idict_message(d, IDICT_INFO, trim(text))
      exit
    end if
  end do
  call idict_notify_update_final(d)
  call idict_server_wait_then_close(server, 10.0d0)
  call idict_free(d)
  print '(a,i0,a,es10.3)', 'heat: ', step, ' steps, residual ', residual

contains

  !> Sleeps until step k's time at `rate` steps per second.
  subroutine pace(k)
    integer(c_int64_t), intent(in) :: k
    do
      call system_clock(now)
      if (real(now - start)/real(ticks) >= real(k)/rate) exit
      call sleep_ms(1)
    end do
  end subroutine

  subroutine sleep_ms(ms)
    use, intrinsic :: iso_c_binding, only: c_int
    integer, intent(in) :: ms
    interface
      function usleep(us) bind(C, name="usleep") result(s)
        import :: c_int
        integer(c_int), value :: us
        integer(c_int) :: s
      end function
    end interface
    integer(c_int) :: ignored
    ignored = usleep(int(ms*1000, c_int))
  end subroutine

end program
