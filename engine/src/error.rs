//! Typed errors of the library.
//!
//! Every variant names the file, line, field or format involved and ends with what the user can do
//! next, because these messages are what a user sees when a command stops. The binary maps them to
//! the documented exit codes with [`Error::exit_code`]; bad *lines* are never errors (they are data,
//! counted and quarantined by the parser).

use std::path::PathBuf;

/// Exit code: the command could not do its job (I/O failure, corrupt dataset, query error).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code: the invocation was wrong (arguments, configuration, patterns, input paths).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: the run finished but more lines were bad than `--max-bad-ratio` allows.
pub const EXIT_BAD_RATIO: i32 = 4;

/// Result alias of the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that stops a logcrunch command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("cannot read", "cannot write", ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A configuration file is invalid.
    #[error("{path}: {message}\n  fix the file or point --config at another one")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong, with the key involved.
        message: String,
    },
    /// A log format in the patterns file is invalid.
    #[error("format `{format}` in {path}: {message}")]
    Pattern {
        /// The patterns file.
        path: PathBuf,
        /// The format's name.
        format: String,
        /// What is wrong, with the field or group involved.
        message: String,
    },
    /// `--format` names a format the patterns file does not define.
    #[error(
        "unknown log format `{name}`; formats in {path}: {known}\n  pick one with --format or add it to that file"
    )]
    UnknownFormat {
        /// The name asked for.
        name: String,
        /// The patterns file that was searched.
        path: PathBuf,
        /// The names it defines, comma-separated.
        known: String,
    },
    /// Auto-detection found no format that matches enough of an input's lines.
    #[error("cannot tell the log format of {path}: no format matches {:.0}% of its first lines; best: {candidates}\n  pass --format NAME, or add the format to the patterns file and check it with: logcrunch formats test --format NAME {path}", min_rate * 100.0)]
    NoFormat {
        /// The input.
        path: PathBuf,
        /// The best candidates with their rates.
        candidates: String,
        /// The rate required.
        min_rate: f64,
    },
    /// An input path does not exist.
    #[error(
        "no such file or directory: {0}\n  check the path; globs must be quoted so that logcrunch expands them"
    )]
    InputNotFound(PathBuf),
    /// A directory or glob given as input holds no log files.
    #[error(
        "no log files in {0}\n  logcrunch reads *.log*, *access*, *.txt, *.gz and *.zst files; pass files explicitly to read others"
    )]
    NoLogFiles(PathBuf),
    /// A commit of another process held the dataset's lock for longer than readers wait.
    #[error(
        "dataset {0} was being changed by another logcrunch process for longer than a reader waits\n  try again when it has finished"
    )]
    DatasetLocked(PathBuf),
    /// Another process writes the dataset (`ingest`, `run`, `archive` or `watch`).
    #[error(
        "dataset {} is being written by another logcrunch process: {holder}\n  one writer at a time: wait for it to finish, or stop it (a `watch` follows the logs already, so `run` is not needed beside it)",
        path.display()
    )]
    DatasetWriter {
        /// The dataset directory.
        path: PathBuf,
        /// Who holds the writer's lock (`pid N (logcrunch watch)`).
        holder: String,
    },
    /// The dataset's files are inconsistent or unreadable.
    #[error("dataset {path}: {message}")]
    Dataset {
        /// The dataset directory or the file in it.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// Object storage refused or failed a request (after its retries).
    #[error(
        "object storage {location}: {message}\n  check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE), the endpoint (AWS_ENDPOINT_URL) and that the bucket exists"
    )]
    Storage {
        /// The object or prefix (`s3://bucket/key`).
        location: String,
        /// What went wrong.
        message: String,
    },
    /// Writing a Parquet file failed.
    #[error("cannot write Parquet file {path}: {source}")]
    Parquet {
        /// The file being written.
        path: PathBuf,
        /// The Parquet writer's error.
        source: parquet::errors::ParquetError,
    },
    /// Building an Arrow batch failed (a schema mismatch, which is a bug in a format definition).
    #[error("format `{format}`: cannot build Arrow batch: {source}")]
    Arrow {
        /// The format whose rows were being built.
        format: String,
        /// Arrow's error.
        source: arrow::error::ArrowError,
    },
    /// DuckDB refused a statement.
    #[cfg(feature = "duckdb")]
    #[error(
        "query failed: {source}\n  the table is `logs`; list its columns with: logcrunch query \"DESCRIBE logs\""
    )]
    Query {
        /// DuckDB's error.
        source: duckdb::Error,
    },
    /// An archived file does not decompress to the bytes that were archived.
    #[error("archive {path} is damaged: {message}")]
    Corrupt {
        /// The archive file.
        path: PathBuf,
        /// What does not match, and what to do.
        message: String,
    },
    /// A command-line value is invalid.
    #[error("{0}")]
    Usage(String),
    /// A run that changes the dataset stopped before its commit (a full disk, an I/O error): what
    /// it wrote was removed and the dataset is as it was.
    #[error("{source}\n  nothing of this run was committed: the dataset is as it was before it")]
    NotCommitted {
        /// What stopped it.
        source: Box<Error>,
    },
}

impl Error {
    /// Shorthand for an [`Error::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The process exit code documented for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. }
            | Error::Pattern { .. }
            | Error::UnknownFormat { .. }
            | Error::NoFormat { .. }
            | Error::InputNotFound(_)
            | Error::NoLogFiles(_)
            | Error::Usage(_) => EXIT_USAGE,
            Error::Io { .. }
            | Error::DatasetLocked(_)
            | Error::DatasetWriter { .. }
            | Error::Dataset { .. }
            | Error::Parquet { .. }
            | Error::Arrow { .. }
            | Error::Storage { .. }
            | Error::Corrupt { .. } => EXIT_FAILURE,
            #[cfg(feature = "duckdb")]
            Error::Query { .. } => EXIT_FAILURE,
            Error::NotCommitted { source } => source.exit_code(),
        }
    }

    /// `self`, saying that nothing of the run that met it was committed.
    pub fn not_committed(self) -> Error {
        match self {
            Error::NotCommitted { .. } => self,
            source => Error::NotCommitted {
                source: Box::new(source),
            },
        }
    }
}

#[cfg(feature = "duckdb")]
impl From<duckdb::Error> for Error {
    fn from(source: duckdb::Error) -> Self {
        Error::Query { source }
    }
}
