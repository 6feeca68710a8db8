//! SMTP delivery with lettre: one connection setup per message, TLS as configured (STARTTLS is
//! required when asked for, never silently skipped), and errors that say what to fix.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};

use super::{EmailConfig, Message, Security};
use crate::error::{Error, Result};
use crate::parse::value::parse_duration;

/// Sends messages through the configured SMTP server.
pub struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
    endpoint: String,
    username: Option<String>,
}

fn config_error(message: String) -> Error {
    Error::Usage(message)
}

impl Mailer {
    /// A mailer for `email`; reads the password and the CA file now.
    pub fn new(email: &EmailConfig) -> Result<Mailer> {
        email.validate().map_err(config_error)?;
        let from: Mailbox = email.from.parse().map_err(|e| {
            config_error(format!(
                "email.from {:?} is not an address: {e}",
                email.from
            ))
        })?;
        let timeout = parse_duration(&email.timeout).map_err(config_error)?;
        let mut b = SmtpTransport::builder_dangerous(&email.host)
            .port(email.port)
            .timeout(Some(timeout));
        if email.security != Security::None {
            let mut tls = TlsParameters::builder(email.host.clone());
            if let Some(ca) = &email.ca_file {
                let pem =
                    std::fs::read(ca).map_err(|e| Error::io("cannot read email.ca_file", ca, e))?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    config_error(format!(
                        "email.ca_file {} is not a PEM certificate: {e}",
                        ca.display()
                    ))
                })?;
                tls = tls.add_root_certificate(cert);
            }
            let params = tls
                .build_rustls()
                .map_err(|e| config_error(format!("email: cannot set up TLS: {e}")))?;
            b = b.tls(match email.security {
                Security::Starttls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            });
        }
        if let Some(user) = &email.username {
            b = b.credentials(Credentials::new(user.clone(), password(email)?));
        }
        Ok(Mailer {
            transport: b.build(),
            from,
            endpoint: format!("{}:{}", email.host, email.port),
            username: email.username.clone(),
        })
    }

    /// Sends `m` once; the error says what went wrong and what to check.
    pub fn send(&self, m: &Message) -> std::result::Result<(), String> {
        let to: Mailbox =
            m.to.parse()
                .map_err(|e| format!("recipient {:?} is not an address: {e}", m.to))?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                m.text.clone(),
                m.html.clone(),
            ))
            .map_err(|e| format!("cannot build the message: {e}"))?;
        self.transport
            .send(&email)
            .map(|_| ())
            .map_err(|e| self.explain(&e, &m.to))
    }

    /// Sends `m` up to `attempts` times, waiting `backoff` and then twice as long each time;
    /// returns the number of tries and the outcome of the last.
    pub fn send_with_retry(
        &self,
        m: &Message,
        attempts: u32,
        backoff: Duration,
    ) -> (u32, std::result::Result<(), String>) {
        let mut wait = backoff;
        let mut last = String::new();
        for attempt in 1..=attempts.max(1) {
            match self.send(m) {
                Ok(()) => return (attempt, Ok(())),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, to = %m.to, "alert delivery failed");
                    last = e;
                }
            }
            if attempt < attempts {
                std::thread::sleep(wait);
                wait *= 2;
            }
        }
        (attempts.max(1), Err(last))
    }

    fn explain(&self, e: &lettre::transport::smtp::Error, to: &str) -> String {
        let code = e.status().map(|c| c.to_string());
        let detail = e.to_string();
        match code.as_deref() {
            Some(c) if c.starts_with("535") || c.starts_with("534") || c.starts_with("530") => {
                format!(
                    "the SMTP server {} refused the login of {:?} ({detail}): check email.username \
                     and the password in email.password_env / email.password_file",
                    self.endpoint,
                    self.username.as_deref().unwrap_or("")
                )
            }
            Some(c) if c.starts_with("55") => format!(
                "the SMTP server {} refused recipient {to} ({detail}): check email.to or the \
                 rule's `to`",
                self.endpoint
            ),
            _ if detail.contains("CaUsedAsEndEntity") => format!(
                "TLS with {} failed: its certificate is a CA certificate (basicConstraints CA:TRUE, \
                 the default of `openssl req -x509`) used as a server certificate; give the server \
                 a certificate with CA:FALSE, or one signed by a CA that email.ca_file names",
                self.endpoint
            ),
            _ if e.is_tls()
                || detail.contains("certificate")
                || detail.to_ascii_lowercase().contains("tls") =>
            {
                format!(
                    "TLS with {} failed ({detail}): check email.security and email.ca_file",
                    self.endpoint
                )
            }
            _ if e.is_timeout() => format!(
                "the SMTP server {} did not answer in time ({detail}); it stays queued",
                self.endpoint
            ),
            _ if e.is_client() || e.is_transient() || e.is_permanent() => {
                format!("the SMTP server {} said: {detail}", self.endpoint)
            }
            _ => format!(
                "cannot talk to the SMTP server {} ({detail}): is it running and is \
                 email.host/email.port right? The message stays queued",
                self.endpoint
            ),
        }
    }
}

/// The password from `password_env` or `password_file` (first line).
fn password(email: &EmailConfig) -> Result<String> {
    if let Some(var) = &email.password_env {
        return std::env::var(var).map_err(|_| {
            config_error(format!(
                "email.password_env names {var}, but it is not set: export {var}=... before running"
            ))
        });
    }
    if let Some(path) = &email.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("cannot read email.password_file", path, e))?;
        return Ok(text.lines().next().unwrap_or("").to_string());
    }
    Err(config_error(
        "email.username is set but no password source: set email.password_env or \
         email.password_file"
            .into(),
    ))
}
