//! `idc-sim [--port N] [--seed N] [--knobs FILE.json] [--seed-file FILE.json]`
//!
//! Serves the simulated Identity Center on 127.0.0.1 and prints
//! `idc-sim listening on http://127.0.0.1:PORT` once it accepts connections. The seed
//! file is a `SeedDocument` (Identity Center state and Service Catalog portfolios).

use idc_sim::{Knobs, SeedDocument, Simulator, start};

fn usage(problem: &str) -> ! {
    eprintln!(
        "idc-sim: {problem}\nusage: idc-sim [--port N] [--seed N] [--knobs FILE.json] [--seed-file FILE.json]"
    );
    std::process::exit(2);
}

fn read_json<T: serde::de::DeserializeOwned>(path: &str) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| usage(&format!("{path}: {e}")));
    serde_json::from_str(&text).unwrap_or_else(|e| usage(&format!("{path}: {e}")))
}

#[tokio::main]
async fn main() {
    let mut port = 0u16;
    let mut seed = 1u64;
    let mut knobs = Knobs::default();
    let mut initial = SeedDocument::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--port" => {
                port = value
                    .parse()
                    .unwrap_or_else(|_| usage("--port takes a number"))
            }
            "--seed" => {
                seed = value
                    .parse()
                    .unwrap_or_else(|_| usage("--seed takes a number"))
            }
            "--knobs" => knobs = read_json(&value),
            "--seed-file" => initial = read_json(&value),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    let simulator = Simulator::new(knobs, seed);
    simulator.with_model(|model| model.seed_document(initial));
    match start(simulator, port).await {
        Ok(address) => println!("idc-sim listening on http://{address}"),
        Err(e) => usage(&format!("cannot listen on 127.0.0.1:{port}: {e}")),
    }
    // Serve until killed.
    std::future::pending::<()>().await;
}
