//! The Lambda function: read configuration, build clients once, serve batches.

use assignment_worker::adapters::{aws_config_from_env, aws_worker};
use assignment_worker::config::Config;
use assignment_worker::handler::function_handler;
use assignment_worker::telemetry;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
    let worker = aws_worker(&aws_config_from_env().await, config);
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        function_handler(worker, event).await
    }))
    .await
}
