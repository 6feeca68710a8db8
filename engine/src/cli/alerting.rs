//! `alert test`, `alert status`, and the alert step of `run`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use logcrunch::alert::smtp::Mailer;
use logcrunch::alert::{self, Alert, Alerter, Message, Scope};
use logcrunch::catalog::Table;
use logcrunch::catalog::{self, Catalog};
use logcrunch::config::Config;
use logcrunch::parse::value::format_rfc3339;
use logcrunch::parse::value::now_us;
use logcrunch::parse::value::parse_duration;
use logcrunch::report::{OutputFormat, write_table};

#[derive(Subcommand, Debug)]
pub enum AlertCommand {
    /// Send a test message through the configured SMTP server (`email:` of the config).
    Test(TestArgs),
    /// Pending (queued, not yet accepted by the server) and recently sent alert messages.
    Status(StatusArgs),
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Recipient (default: email.to of the config).
    #[arg(long, value_name = "ADDR")]
    to: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Dataset directory (default: storage.dataset of the config).
    #[arg(long, value_name = "DIR", value_parser = logcrunch::catalog::remote::dataset_location)]
    dataset: Option<PathBuf>,
    /// Sent messages to list besides the pending ones.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

pub fn alert(config: &Config, cmd: AlertCommand, dry_run: bool) -> anyhow::Result<i32> {
    match cmd {
        AlertCommand::Test(a) => {
            let to = if a.to.is_empty() {
                config.email.to.clone()
            } else {
                a.to
            };
            anyhow::ensure!(
                !to.is_empty(),
                logcrunch::error::Error::Usage(
                    "no recipient: set email.to in the config or pass --to ADDR".into()
                )
            );
            let now = now_us();
            let messages: Vec<Message> = to
                .iter()
                .map(|t| Message {
                    id: 0,
                    created_us: now,
                    run: "test".into(),
                    to: t.clone(),
                    subject: "[logcrunch] test message".into(),
                    text: format!(
                        "This is a test message from logcrunch, sent {} through {}:{}.\n",
                        format_rfc3339(now),
                        config.email.host,
                        config.email.port
                    ),
                    html: format!(
                        "<html><body><p>This is a test message from logcrunch, sent {} through \
                         {}:{}.</p></body></html>\n",
                        format_rfc3339(now),
                        config.email.host,
                        config.email.port
                    ),
                    status: "pending".into(),
                    attempts: 0,
                    last_error: None,
                })
                .collect();
            if dry_run {
                print_messages(&messages)?;
                return Ok(0);
            }
            let mailer = Mailer::new(&config.email)?;
            for m in &messages {
                mailer.send(m).map_err(|e| {
                    anyhow::anyhow!("the test message to {} was not sent: {e}", m.to)
                })?;
                println!("sent a test message to {}", m.to);
            }
            Ok(0)
        }
        AlertCommand::Status(a) => {
            let dataset = a.dataset.unwrap_or_else(|| config.storage.dataset.clone());
            logcrunch::catalog::remote::local_only(&dataset, "alert status")?;
            let cat = Catalog::open(&dataset)?;
            let list = alert::outbox(&cat, false, a.limit)?;
            let table = Table {
                columns: [
                    "id",
                    "status",
                    "created",
                    "run",
                    "to",
                    "subject",
                    "attempts",
                    "last_error",
                ]
                .map(String::from)
                .to_vec(),
                rows: list
                    .iter()
                    .map(|m| {
                        vec![
                            m.id.into(),
                            m.status.clone().into(),
                            format_rfc3339(m.created_us).into(),
                            m.run.clone().into(),
                            m.to.clone().into(),
                            m.subject.clone().into(),
                            m.attempts.into(),
                            m.last_error.clone().into(),
                        ]
                    })
                    .collect(),
            };
            write_table(&table, a.format, &mut std::io::stdout().lock())?;
            Ok(0)
        }
    }
}

fn print_messages(messages: &[Message]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for m in messages {
        writeln!(
            out,
            "--- dry run: not sent ---\nTo: {}\nSubject: {}\n\n{}",
            m.to, m.subject, m.text
        )?;
    }
    Ok(())
}

/// The alert step of `run`: evaluates the rules over the run's days, queues the digests, and
/// delivers everything pending (this run's and earlier runs'). Delivery failures are reported
/// and kept for the next run; they do not fail the run.
pub fn run_step(
    config: &Config,
    dataset: &Path,
    scope: Option<&Scope>,
    dry_run: bool,
) -> anyhow::Result<serde_json::Value> {
    let alerts = match scope {
        Some(s) => evaluate(config, dataset, s)?,
        None => Vec::new(),
    };
    deliver(
        config,
        dataset,
        &alerts,
        scope.map_or("", |s| s.run.as_str()),
        dry_run,
    )
}

/// The threat categories the alert rules name (those of the configured signatures).
fn categories(config: &Config) -> anyhow::Result<Vec<logcrunch::security::Category>> {
    Ok(logcrunch::security::SignatureFile::load(config.security.signatures.as_deref())?.categories)
}

/// The alerts of the rules over `scope`, those still in their cooldown left out.
pub fn evaluate(config: &Config, dataset: &Path, scope: &Scope) -> anyhow::Result<Vec<Alert>> {
    let categories = categories(config)?;
    let alerter = Alerter::new(&config.alerting, &config.email, &categories);
    let (_lock, cat) = catalog::open_writer(dataset)?;
    Ok(alerter.evaluate(&cat, scope, now_us())?)
}

/// Queues `alerts` as the digests of `run` (one per recipient) and delivers everything pending;
/// with `dry_run`, prints the digests instead.
pub fn deliver(
    config: &Config,
    dataset: &Path,
    alerts: &[Alert],
    run: &str,
    dry_run: bool,
) -> anyhow::Result<serde_json::Value> {
    let now = now_us();
    if dry_run {
        print_messages(&alert::digests(alerts, run, now))?;
        return Ok(serde_json::json!({"alerts": alerts.len(), "dry_run": true}));
    }
    let categories = categories(config)?;
    let alerter = Alerter::new(&config.alerting, &config.email, &categories);
    let (_lock, cat) = catalog::open_writer(dataset)?;
    let queued = if alerts.is_empty() {
        Vec::new()
    } else {
        alerter.queue(&cat, alerts, run, now)?
    };
    let pending = alert::outbox(&cat, true, 0)?;
    let (mut sent, mut failed) = (0, Vec::new());
    if !pending.is_empty() {
        let backoff = parse_duration(&config.alerting.backoff).map_err(anyhow::Error::msg)?;
        match Mailer::new(&config.email) {
            Ok(mailer) => {
                for m in &pending {
                    let (tries, outcome) =
                        mailer.send_with_retry(m, config.alerting.attempts, backoff);
                    match &outcome {
                        Ok(()) => sent += 1,
                        Err(e) => failed.push(format!("to {}: {e}", m.to)),
                    }
                    alert::mark(&cat, m.id, tries, outcome, now_us())?;
                }
            }
            Err(e) => failed.push(format!("{e}")),
        }
    }
    for f in &failed {
        eprintln!(
            "logcrunch: warning: alert not delivered, kept for the next run ({f}); see `logcrunch alert status`"
        );
    }
    Ok(serde_json::json!({
        "alerts": alerts.len(),
        "queued": queued.len(),
        "sent": sent,
        "pending": pending.len() - sent,
    }))
}
