//! The C interface through the real ABI: `tests/c/*.c` (and the C++
//! wrapper's `tests/cpp/*.cpp`) compiled by the system's compiler against
//! `include/` and this build's library (`libidict_c`), then run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A C or C++ compiler and the standard it compiles to.
struct Compiler {
    program: String,
    standard: &'static str,
}

impl Compiler {
    /// The C compiler (`$CC`, else `cc`: rustc links with it, so it is there).
    fn c() -> Compiler {
        Compiler {
            program: std::env::var("CC").unwrap_or_else(|_| "cc".into()),
            standard: "-std=c11",
        }
    }

    /// The C++ compiler (`$CXX`, else `c++`), if there is one.
    fn cxx() -> Option<Compiler> {
        let program = compiler_from("CXX", "c++", "a C++ compiler", "g++")?;
        Some(Compiler {
            program,
            standard: "-std=c++17",
        })
    }
}

/// This build's C library as a user links it: `<dir>/lib/libidict.so`,
/// and `libidict.so.<ABI>` (its SONAME, what the loader looks for), both
/// naming the one cargo put beside the test itself, in
/// `target/<profile>/deps` (the copy one level up is refreshed only by
/// `cargo build`). The directory to pass to `-L` and `-rpath`.
fn linked_library(dir: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let deps = exe.parent().expect("target/<profile>/deps/<test>");
    let built = deps.join("libidict_c.so");
    assert!(built.exists(), "no libidict_c.so in {}", deps.display());
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).expect("lib dir");
    let soname = format!("libidict.so.{}", idict_c::IDICT_ABI_VERSION);
    for name in ["libidict.so", soname.as_str()] {
        std::os::unix::fs::symlink(&built, lib.join(name)).expect("symlink the library");
    }
    lib
}

/// Compiles `tests/c/<name>.c` and runs it; its stdout.
fn compile_and_run(name: &str) -> String {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/{name}.c"));
    compile_and_run_source(&Compiler::c(), &source, name, &[])
}

/// Compiles the program `source` and runs it with `args`; its stdout.
fn compile_and_run_source(compiler: &Compiler, source: &Path, name: &str, args: &[&str]) -> String {
    compile_and_launch(compiler, source, name, &[], args)
}

/// The same, the program run by `launcher` (e.g. `mpirun -n 2`) if given.
fn compile_and_launch(
    compiler: &Compiler,
    source: &Path,
    name: &str,
    launcher: &[&str],
    args: &[&str],
) -> String {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().expect("tempdir");
    let libs = linked_library(out.path());
    let exe = out.path().join(name);
    let cc = &compiler.program;
    let built = Command::new(cc)
        .arg(compiler.standard)
        .arg("-Wall")
        .arg("-Wextra")
        .arg("-Werror")
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg("-D_POSIX_C_SOURCE=200112L")
        .arg(source)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", libs.display()))
        .arg(format!("-Wl,-rpath,{}", libs.display()))
        .arg("-lidict")
        .arg("-lm")
        .output()
        .unwrap_or_else(|e| panic!("{cc} (a C compiler: rustc links with it) does not run: {e}"));
    assert!(
        built.status.success(),
        "{name}.c does not compile:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    run_program(&exe, launcher, args, out.path(), name)
}

/// Runs `exe` (by `launcher`, if given) with `args`, its run files in
/// `runs`; its stdout, or a failure with what it printed.
fn run_program(exe: &Path, launcher: &[&str], args: &[&str], runs: &Path, name: &str) -> String {
    let mut command = match launcher {
        [] => Command::new(exe),
        [program, rest @ ..] => {
            let mut c = Command::new(program);
            c.args(rest).arg(exe);
            c
        }
    };
    let ran = command
        .args(args)
        .env("IDICT_RUNS_DIR", runs)
        // cargo's LD_LIBRARY_PATH names target/<profile> too, where the copy
        // of the library is only as fresh as the last `cargo build`: the
        // program loads the one it was linked against (its rpath).
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("DYLD_LIBRARY_PATH")
        .output()
        .unwrap_or_else(|e| panic!("{name} does not run: {e}"));
    assert!(
        ran.status.success(),
        "{name}: {}\n{}",
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    String::from_utf8_lossy(&ran.stdout).into_owned()
}

#[test]
fn a_c_program_runs_the_loop_and_every_misuse_is_refused() {
    assert_eq!(compile_and_run("abi").trim(), "ok");
}

/// The C heat example builds against the header and runs its loop: five
/// steps of a 16×16 grid, unpaced.
#[test]
fn the_c_heat_example_builds_and_runs() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/c/heat.c");
    let out = compile_and_run_source(&Compiler::c(), &source, "heat", &["16", "0", "5"]);
    assert!(out.starts_with("heat: 5 steps"), "{out}");
}

/// The header-only C++ wrapper: RAII handles, exceptions with the status
/// and message, arrays by type, a checkpoint restored.
#[test]
fn a_cpp_program_uses_the_raii_wrapper() {
    let Some(cxx) = Compiler::cxx() else {
        return;
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cpp/wrapper.cpp");
    assert_eq!(
        compile_and_run_source(&cxx, &source, "wrapper", &[]).trim(),
        "ok"
    );
}

/// The compiler `$var` names, else `default`, if it runs; else None, saying
/// on the terminal which test is left out and why (a machine with only the
/// Rust toolchain may lack it), unless `.ci/run` asked for every test
/// (`IDICT_TESTS_REQUIRE_TOOLS`).
fn compiler_from(var: &str, default: &str, what: &str, package: &str) -> Option<String> {
    let program = std::env::var(var).unwrap_or_else(|_| default.into());
    let found = Command::new(&program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let why = format!("{program} is not installed (Debian: {package})");
        assert!(
            std::env::var_os("IDICT_TESTS_REQUIRE_TOOLS").is_none(),
            "{why}"
        );
        let _ = writeln!(
            std::io::stderr(),
            "note: left out a test that needs {what}: {why}"
        );
        return None;
    }
    Some(program)
}

/// Compiles the module `include/idict.f90` and `program` with it, runs the
/// program with `args`; its stdout.
fn fortran_run(fc: &str, program: &Path, args: &[&str]) -> String {
    fortran_launch(fc, &["idict.f90"], program, &[], args)
}

/// The same with the modules `include/MODULES` (in order), the program run
/// by `launcher` (e.g. `mpirun -n 2`) if given.
fn fortran_launch(
    fc: &str,
    modules: &[&str],
    program: &Path,
    launcher: &[&str],
    args: &[&str],
) -> String {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().expect("tempdir");
    let libs = linked_library(out.path());
    let exe = out.path().join("program");
    let built = Command::new(fc)
        .arg("-Wall")
        .arg("-Werror")
        .arg("-J")
        .arg(out.path())
        .args(modules.iter().map(|m| crate_dir.join("include").join(m)))
        .arg(program)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", libs.display()))
        .arg(format!("-Wl,-rpath,{}", libs.display()))
        .arg("-lidict")
        .output()
        .unwrap_or_else(|e| panic!("{fc} does not run: {e}"));
    assert!(
        built.status.success(),
        "{} does not compile:\n{}",
        program.display(),
        String::from_utf8_lossy(&built.stderr)
    );
    run_program(
        &exe,
        launcher,
        args,
        out.path(),
        &program.display().to_string(),
    )
}

/// The Fortran module: the loop, a 2-D array in place, `stat=` codes and
/// their messages; and the Fortran heat example's loop.
#[test]
fn fortran_programs_use_the_module() {
    let Some(fc) = compiler_from("FC", "gfortran", "a Fortran compiler", "gfortran") else {
        return;
    };
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = fortran_run(&fc, &crate_dir.join("tests/fortran/module.f90"), &[]);
    assert_eq!(out.trim(), "ok");
    let heat = fortran_run(
        &fc,
        &crate_dir.join("../../examples/fortran/heat.f90"),
        &["16", "0", "5"],
    );
    assert!(heat.starts_with("heat: 5 steps"), "{heat}");
}

/// The MPI functions through the real ABI, in a real 2-rank job: a short
/// collective loop and every misuse refused (needs the `mpi` feature and
/// Open MPI's mpicc and mpirun).
#[cfg(feature = "mpi")]
#[test]
fn an_mpi_job_from_c_and_every_misuse_is_refused() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/mpi.c");
    let mpicc = Compiler {
        program: "mpicc".into(),
        standard: "-std=c11",
    };
    let mut mpirun = vec!["mpirun", "--oversubscribe", "-n", "2"];
    if is_root() {
        // Open MPI refuses root unless told (CI runs as root).
        mpirun.push("--allow-run-as-root");
    }
    assert_eq!(
        compile_and_launch(&mpicc, &source, "mpi", &mpirun, &[]).trim(),
        "ok"
    );
}

/// The Fortran heat example as a 2-rank job through the `idict_mpi`
/// module: five steps on every rank (needs the `mpi` feature and Open
/// MPI's mpifort).
#[cfg(feature = "mpi")]
#[test]
fn the_fortran_heat_example_runs_as_an_mpi_job() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let program = crate_dir.join("../../examples/fortran/heat_mpi.f90");
    let mut mpirun = vec!["mpirun", "--oversubscribe", "-n", "2"];
    if is_root() {
        mpirun.push("--allow-run-as-root");
    }
    let out = fortran_launch(
        "mpifort",
        &["idict.f90", "idict_mpi.f90"],
        &program,
        &mpirun,
        &["16", "0", "5"],
    );
    // mpirun forwards the ranks' lines as they come: two may share a line.
    let ended = out.matches("ended at step 5").count();
    assert_eq!(ended, 2, "both ranks end at step 5: {out}");
}

#[cfg(feature = "mpi")]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
