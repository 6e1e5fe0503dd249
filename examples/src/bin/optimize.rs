//! `optimize`: gradient descent with momentum on Rosenbrock; steer `lr`, `momentum`.

use clap::Parser;
use idict_examples::{launch, optimize};

/// Gradient descent with momentum on the Rosenbrock function, served with idict.
#[derive(Parser)]
struct Args {
    /// Initial learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[command(flatten)]
    run: launch::RunArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (idict, server) = launch::start("optimize", &args.run)?;
    let defaults = optimize::OptimizeConfig::default();
    let cfg = optimize::OptimizeConfig {
        lr: args.lr,
        max_steps: args.run.steps.unwrap_or(defaults.max_steps),
        rate: args.run.rate.unwrap_or(defaults.rate),
        ..defaults
    };
    let p = optimize::run(&idict, &cfg)?;
    eprintln!("optimize: stopped at ({:.6}, {:.6})", p[0], p[1]);
    launch::finish(&idict, server)
}
