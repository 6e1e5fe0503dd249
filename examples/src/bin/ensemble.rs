//! `ensemble`: many damped, driven oscillators, one key each (100,000 by
//! default); steer `drive`.

use clap::Parser;
use idict_examples::{ensemble, launch};

/// An ensemble of oscillators, one key per member, served with idict.
#[derive(Parser)]
struct Args {
    /// How many members (keys).
    #[arg(long, default_value_t = 100_000)]
    members: usize,
    #[command(flatten)]
    run: launch::RunArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (idict, server) = launch::start("ensemble", &args.run)?;
    let defaults = ensemble::EnsembleConfig::default();
    let cfg = ensemble::EnsembleConfig {
        members: args.members,
        max_steps: args.run.steps.unwrap_or(defaults.max_steps),
        rate: args.run.rate.unwrap_or(defaults.rate),
        ..defaults
    };
    let steps = ensemble::run(&idict, &cfg)?;
    eprintln!("ensemble: {steps} steps");
    launch::finish(&idict, server)
}
