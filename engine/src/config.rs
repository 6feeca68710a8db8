//! Settings from `config/config.yaml`.
//!
//! Every key has a default, so a missing file or a partial one is fine; unknown keys are rejected so a
//! typo is reported instead of silently ignored. Relative paths are taken from the working directory
//! (the shipped file assumes the repository root). The built-in copies of the shipped config and
//! patterns make the binary usable from any directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

/// The shipped `config/config.yaml`, used when no file is found.
pub const BUILTIN_CONFIG: &str = include_str!("../../config/config.yaml");
/// Where the configuration is looked for when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/config.yaml";

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where `logcrunch run` finds its input.
    pub logs: LogsConfig,
    /// Where the dataset lives.
    pub storage: StorageConfig,
    /// Parse and write settings of `ingest`.
    pub ingest: IngestConfig,
    /// Endpoint normalisation rules.
    pub routes: crate::route::RoutesConfig,
    /// When a route counts as slow.
    pub performance_thresholds: crate::report::PerformanceThresholds,
    /// When errors count as a burst.
    pub error_thresholds: crate::report::ErrorThresholds,
    /// Where `run` writes its reports, and their size.
    pub reports: crate::report::ReportsConfig,
    /// Application log.
    pub logging: LoggingConfig,
    /// Threat signatures and behavioural rules.
    pub security: crate::security::SecurityConfig,
    /// Latency histograms and route groups.
    pub stats: crate::stats::StatsConfig,
    /// Anomaly detectors.
    pub anomaly_detection: crate::detect::DetectConfig,
    /// Alert rules, cooldown and retries.
    pub alerting: crate::alert::AlertingConfig,
    /// The SMTP server alerts go through.
    pub email: crate::alert::EmailConfig,
    /// Raw log archive, compaction and retention.
    pub archive: crate::archive::ArchiveConfig,
    /// The patterns file with the log formats.
    pub patterns: Option<PathBuf>,
    /// Where this configuration was read from (`None`: built-in).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// `logs:` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Directory that `logcrunch run` ingests new and grown files from.
    pub source_dir: PathBuf,
    /// Log format of the files in `source_dir` (`auto`: detected per file).
    pub format: String,
}

/// `storage:` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Dataset directory (Parquet partitions, manifest, quarantine), `file://` URL of one, or
    /// `s3://bucket/prefix`.
    #[serde(deserialize_with = "dataset_location")]
    pub dataset: PathBuf,
}

/// `ingest:` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Target size of a parse chunk in bytes (`4MiB` style suffixes accepted).
    #[serde(deserialize_with = "de_size")]
    pub chunk_size: usize,
    /// Lines longer than this are quarantined as `line_too_long` (bytes).
    #[serde(deserialize_with = "de_size")]
    pub max_line_bytes: usize,
    /// Fail the command (exit 4) when bad lines / lines exceeds this ratio.
    pub max_bad_ratio: Option<f64>,
    /// Bad lines kept as samples in the quarantine file per source and run.
    pub quarantine_samples: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// zstd level of the Parquet files.
    pub zstd_level: i32,
}

/// `logging:` section.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// Level of the log file (`error`, `warn`, `info`, `debug`, `trace`).
    pub level: String,
    /// The log file (created with its directory); `null` for none.
    pub file: Option<PathBuf>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            file: Some(PathBuf::from("logs/logcrunch.log")),
        }
    }
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            source_dir: PathBuf::from("testdata/sample"),
            format: "auto".into(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dataset: PathBuf::from("data"),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            threads: 0,
            chunk_size: 4 << 20,
            max_line_bytes: 64 << 10,
            max_bad_ratio: None,
            quarantine_samples: 10_000,
            row_group_rows: 256 << 10,
            zstd_level: 1,
        }
    }
}

impl Config {
    /// Loads `path`, or `config/config.yaml` when it exists, or the built-in configuration.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let default = Path::new(DEFAULT_CONFIG_PATH);
        let chosen = match path {
            Some(p) => Some(p),
            None if default.is_file() => Some(default),
            None => None,
        };
        match chosen {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| Error::io("cannot read", p, e))?;
                let mut cfg = Config::parse(&text, p)?;
                cfg.path = Some(p.to_path_buf());
                Ok(cfg)
            }
            None => Config::parse(BUILTIN_CONFIG, Path::new("<built-in config.yaml>")),
        }
    }

    /// Parses configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Config> {
        let cfg: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_norway::from_str(text).map_err(|e| Error::Config {
                path: origin.to_path_buf(),
                message: e.to_string(),
            })?
        };
        cfg.validate(origin)?;
        Ok(cfg)
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |message: String| Error::Config {
            path: origin.to_path_buf(),
            message,
        };
        let ing = &self.ingest;
        if ing.chunk_size == 0 {
            return Err(bad("ingest.chunk_size must be at least 1 byte".into()));
        }
        if ing.max_line_bytes < 64 {
            return Err(bad("ingest.max_line_bytes must be at least 64".into()));
        }
        if let Some(r) = ing.max_bad_ratio
            && !(0.0..=1.0).contains(&r)
        {
            return Err(bad(format!(
                "ingest.max_bad_ratio must be between 0 and 1, got {r}"
            )));
        }
        if ing.row_group_rows == 0 {
            return Err(bad("ingest.row_group_rows must be positive".into()));
        }
        if !matches!(
            self.logging.level.as_str(),
            "error" | "warn" | "info" | "debug" | "trace"
        ) {
            return Err(bad(format!(
                "logging.level must be error, warn, info, debug or trace, got `{}`",
                self.logging.level
            )));
        }
        if !(0.0..=1.0).contains(&self.error_thresholds.burst_5xx_ratio) {
            return Err(bad(
                "error_thresholds.burst_5xx_ratio must be between 0 and 1".into(),
            ));
        }
        if self.reports.top == 0 {
            return Err(bad("reports.top must be at least 1".into()));
        }
        crate::route::Router::new(&self.routes).map_err(|e| bad(e.to_string()))?;
        self.stats.validate().map_err(bad)?;
        self.anomaly_detection.validate().map_err(bad)?;
        self.alerting.validate().map_err(bad)?;
        self.email.validate().map_err(bad)?;
        self.archive.validate().map_err(bad)?;
        if !(1..=22).contains(&ing.zstd_level) {
            return Err(bad(format!(
                "ingest.zstd_level must be 1..=22, got {}",
                ing.zstd_level
            )));
        }
        Ok(())
    }

    /// Worker threads to use: the configured count, or one per core.
    pub fn threads(&self) -> usize {
        crate::scan::threads_or_cores(self.ingest.threads)
    }
}

/// Parses `4194304`, `4MiB`, `64 KiB`, `1G` into bytes.
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn de_size<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Int(usize),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Int(n) => Ok(n),
        Size::Text(s) => parse_size(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid size `{s}` (use bytes or a suffix: 64KiB, 4MiB)"
            ))
        }),
    }
}

fn dataset_location<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<PathBuf, D::Error> {
    let text = String::deserialize(d)?;
    crate::catalog::remote::dataset_location(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("4MiB"), Some(4 << 20));
        assert_eq!(parse_size("64 KiB"), Some(64 << 10));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn the_dataset_is_a_directory_a_file_url_or_an_s3_url() {
        let dataset = |v: &str| {
            Config::parse(&format!("storage:\n  dataset: {v}\n"), Path::new("c.yaml"))
                .map(|c| c.storage.dataset)
        };
        assert_eq!(
            dataset("file:///srv/logs").unwrap(),
            PathBuf::from("/srv/logs")
        );
        assert_eq!(dataset("s3://b/p").unwrap(), PathBuf::from("s3://b/p"));
        let e = dataset("gs://b/p").unwrap_err().to_string();
        assert!(e.contains("c.yaml") && e.contains("gs://"), "{e}");
    }

    #[test]
    fn builtin_config_parses_and_matches_defaults_where_shipped() {
        let cfg = Config::parse(BUILTIN_CONFIG, Path::new("builtin")).unwrap();
        assert_eq!(cfg.storage.dataset, PathBuf::from("data"));
        assert!(cfg.ingest.chunk_size >= 1 << 20);
        let defaults = crate::security::SecurityConfig::default();
        assert_eq!(cfg.security.behaviour, defaults.behaviour);
        assert_eq!(cfg.security.paranoia, defaults.paranoia);
        assert_eq!(cfg.stats, crate::stats::StatsConfig::default());
        assert_eq!(
            cfg.anomaly_detection,
            crate::detect::DetectConfig::default()
        );
        assert_eq!(cfg.alerting, crate::alert::AlertingConfig::default());
        assert_eq!(cfg.email, crate::alert::EmailConfig::default());
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_file_named() {
        let err = Config::parse("ingest:\n  chunk_sise: 4MiB\n", Path::new("my.yaml")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("my.yaml") && msg.contains("chunk_sise"),
            "{msg}"
        );
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let err = Config::parse("ingest:\n  max_bad_ratio: 2\n", Path::new("c.yaml")).unwrap_err();
        assert!(err.to_string().contains("max_bad_ratio"));
        let err = Config::parse("ingest:\n  chunk_size: 0\n", Path::new("c.yaml")).unwrap_err();
        assert!(err.to_string().contains("chunk_size"));
    }
}
