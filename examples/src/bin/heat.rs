//! `heat`: a 2-D heat equation you can watch converge and steer (`dt`, `source`).

use clap::Parser;
use idict_examples::{heat, launch};

/// A 2-D heat equation by finite differences, served with idict.
#[derive(Parser)]
struct Args {
    /// Grid points per side.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Stop when the residual falls below this.
    #[arg(long, default_value_t = 1e-4)]
    tolerance: f64,
    /// Let dt be steered past the stability limit (up to 100 times it), so
    /// the field blows up: to try triggers (`idict trigger heat add nan
    /// 'isnan(residual)' --pause`).
    #[arg(long)]
    unstable_dt: bool,
    #[command(flatten)]
    run: launch::RunArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (idict, server) = launch::start("heat", &args.run)?;
    let defaults = heat::HeatConfig::default();
    let cfg = heat::HeatConfig {
        n: args.size,
        tolerance: args.tolerance,
        unstable_dt: args.unstable_dt,
        max_steps: args.run.steps.unwrap_or(defaults.max_steps),
        rate: args.run.rate.unwrap_or(defaults.rate),
        ..defaults
    };
    let summary = heat::run(&idict, &cfg)?;
    eprintln!(
        "heat: {} steps, residual {:.3e}{}",
        summary.steps,
        summary.residual,
        if summary.converged { ", converged" } else { "" }
    );
    launch::finish(&idict, server)
}
