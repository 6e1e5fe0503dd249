//! `lorenz`: the Lorenz attractor by RK4; steer `sigma`, `rho`, `beta`.

use clap::Parser;
use idict_examples::{launch, lorenz};

/// The Lorenz system integrated with RK4, served with idict.
#[derive(Parser)]
struct Args {
    /// Time step.
    #[arg(long, default_value_t = 0.01)]
    dt: f64,
    #[command(flatten)]
    run: launch::RunArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (idict, server) = launch::start("lorenz", &args.run)?;
    let defaults = lorenz::LorenzConfig::default();
    let cfg = lorenz::LorenzConfig {
        dt: args.dt,
        max_steps: args.run.steps.unwrap_or(defaults.max_steps),
        rate: args.run.rate.unwrap_or(defaults.rate),
    };
    let steps = lorenz::run(&idict, &cfg)?;
    eprintln!("lorenz: {steps} steps");
    launch::finish(&idict, server)
}
