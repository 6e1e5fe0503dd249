//! `montecarlo_pi`: a running Monte Carlo estimate of pi; steer `batch`.

use clap::Parser;
use idict_examples::{launch, montecarlo_pi};

/// A Monte Carlo estimate of pi, served with idict.
#[derive(Parser)]
struct Args {
    /// Points per iteration.
    #[arg(long, default_value_t = 10_000)]
    batch: i64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    run: launch::RunArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (idict, server) = launch::start("montecarlo_pi", &args.run)?;
    let defaults = montecarlo_pi::PiConfig::default();
    let cfg = montecarlo_pi::PiConfig {
        batch: args.batch,
        seed: args.seed,
        max_steps: args.run.steps.unwrap_or(defaults.max_steps),
        rate: args.run.rate.unwrap_or(defaults.rate),
    };
    let steps = montecarlo_pi::run(&idict, &cfg)?;
    eprintln!("montecarlo_pi: {steps} steps");
    launch::finish(&idict, server)
}
