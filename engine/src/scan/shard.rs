//! A deterministic share of the inputs, for ingest spread over processes with no coordinator.
//!
//! `ingest --shard K/N` keeps the inputs whose content fingerprint (the hash of their first
//! [`FINGERPRINT_BYTES`], decoded) falls in share K of N. Content, not the path, decides: every
//! process started with the same arguments computes the same split, a rotated or compressed copy
//! of a log goes to the shard of the original (where the planner recognises it), and a shard run
//! again after a crash takes the same inputs, which the manifest then skips or resumes.

use std::str::FromStr;

use super::{Encoding, FINGERPRINT_BYTES, Input, fingerprint};
use crate::error::{Error, Result};

/// Share `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("a shard is K/N (1 <= K <= N), e.g. 2/4; got `{s}`"))?;
        let parse = |v: &str| v.trim().parse::<u64>().ok();
        match (parse(k), parse(n)) {
            (Some(index), Some(count)) if (1..=count).contains(&index) => {
                Ok(Shard { index, count })
            }
            _ => Err(format!(
                "a shard is K/N with 1 <= K <= N, e.g. 2/4; got `{s}`"
            )),
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether content with fingerprint `hash` belongs to this share.
    fn owns(&self, hash: u64) -> bool {
        hash % self.count == self.index - 1
    }

    /// The inputs of this share, in their order. Standard input cannot be shared out.
    pub fn select(&self, inputs: Vec<Input>) -> Result<Vec<Input>> {
        let mut kept = Vec::with_capacity(inputs.len() / self.count as usize + 1);
        for input in inputs {
            if input.encoding == Encoding::Stdin {
                return Err(Error::Usage(
                    "--shard splits files, not standard input: give the files instead of -".into(),
                ));
            }
            if self.owns(fingerprint(&input, FINGERPRINT_BYTES)?.0) {
                kept.push(input);
            }
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_parsed_and_checked() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "4", "a/b", "1/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!("3/8".parse::<Shard>().unwrap().to_string(), "3/8");
    }

    #[test]
    fn every_input_goes_to_exactly_one_shard_whatever_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut inputs = Vec::new();
        for i in 0..40 {
            let path = dir.path().join(format!("access-{i}.log"));
            std::fs::write(&path, format!("line of file {i}\n")).unwrap();
            inputs.push(Input {
                path,
                encoding: Encoding::Plain,
                size: 0,
            });
        }
        let shards: Vec<Shard> = (1..=3).map(|k| format!("{k}/3").parse().unwrap()).collect();
        let mut seen = Vec::new();
        for s in &shards {
            let kept = s.select(inputs.clone()).unwrap();
            assert!(
                !kept.is_empty() && kept.len() < inputs.len(),
                "{s}: {}",
                kept.len()
            );
            seen.extend(kept);
        }
        seen.sort_by(|a, b| a.path.cmp(&b.path));
        let mut all = inputs.clone();
        all.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(seen, all);
        // A copy under another name goes where the original went.
        let copy = dir.path().join("renamed.log.1");
        std::fs::copy(&inputs[7].path, &copy).unwrap();
        let copy = Input {
            path: copy,
            ..inputs[7].clone()
        };
        for s in &shards {
            assert_eq!(
                s.select(vec![inputs[7].clone()]).unwrap().len(),
                s.select(vec![copy.clone()]).unwrap().len()
            );
        }
    }
}
