//! A run whose 2-D array is wider than most GPUs' largest texture: a
//! [1, 20000] f64 array by default (plus a 1-D one), changing a few times a
//! second.
//! It prints the address and controller token, to open it in the inspector
//! and see it drawn (downsampled) rather than crash the renderer:
//!
//! ```text
//! cargo run -p idict-inspector --example wide_array [WIDTH] [HEIGHT]
//! idict-inspector ADDRESS --token TOKEN
//! ```

use idict::{IDict, ServeOptions, Value};
use std::time::Duration;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let width = args.next().transpose()?.unwrap_or(20_000);
    let height = args.next().transpose()?.unwrap_or(1);
    let idict = IDict::new("wide-array");
    let server = ServeOptions::default().announce(false).serve(&idict)?;
    println!("{} {}", server.address(), server.tokens().controller);
    let mut step = 0u64;
    // wait(): the pause gate; false once terminated.
    while idict.wait() {
        let phase = step as f64 * 0.2;
        let wide: Vec<f64> = (0..width * height)
            .map(|i| ((i % width) as f64 * 6e-4 + (i / width) as f64 * 0.05 + phase).sin())
            .collect();
        let curve: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.02 + phase).cos()).collect();
        {
            let mut d = idict.lock();
            d.insert("wide", Value::array(wide, vec![height, width])?);
            d.insert("curve", Value::array(curve, vec![1000])?);
            d.insert("step", step);
        }
        idict.notify_update()?;
        std::thread::sleep(Duration::from_millis(250));
        step += 1;
    }
    server.wait_then_close(Duration::from_secs(1));
    Ok(())
}
