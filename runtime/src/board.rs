//! Board profiles (`boards/*.toml`): what differs between a Raspberry Pi, a Jetson and a PC — target,
//! threads, microphone, model and index paths, top-k and endpointing thresholds.
//!
//! A profile is loaded by name (`rpi4`, `rpi5`, `jetson-orin-nano`, `x86_64`: a `boards/NAME.toml` next to
//! the working directory or the executable, else the copy built into the binary) or by path. Unknown keys
//! and unusable values are refused with the key named. Command-line flags override profile values.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::endpoint::EndpointConfig;

/// The profiles shipped in `boards/`, built in so that `--board NAME` works wherever the binary is.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("rpi4", include_str!("../../boards/rpi4.toml")),
    ("rpi5", include_str!("../../boards/rpi5.toml")),
    (
        "jetson-orin-nano",
        include_str!("../../boards/jetson-orin-nano.toml"),
    ),
    ("x86_64", include_str!("../../boards/x86_64.toml")),
];

#[derive(Debug, Error)]
pub enum BoardError {
    #[error("board {0:?} is not known: use one of {1}, or the path of a .toml profile")]
    Unknown(String, String),
    #[error("cannot read board profile {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("board profile {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("board profile {origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// One board.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Short name, e.g. `rpi4`.
    pub name: String,
    /// One line about the hardware.
    #[serde(default)]
    pub description: String,
    /// Rust target triple of the binary for this board, e.g. `aarch64-unknown-linux-gnu`.
    pub target: String,
    /// Inference threads for the model (matrix multiply, depthwise convolutions, GELUs; `--threads`
    /// overrides).
    pub threads: usize,
    /// The ONNX model; relative paths are from the working directory. Absent: the default search.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// The image-memory index; as `model`.
    #[serde(default)]
    pub index: Option<PathBuf>,
    /// Answers shown per question.
    pub top_k: usize,
    /// Overrides the model's calibrated "not in memory" threshold.
    #[serde(default)]
    pub threshold: Option<f32>,
    #[serde(default)]
    pub audio: AudioProfile,
    #[serde(default)]
    pub endpoint: EndpointConfig,
}

/// The microphone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioProfile {
    /// The capture device's name or part of it (e.g. "USB"); absent: the default input.
    pub device: Option<String>,
    /// Preferred capture rate in Hz, used only when the device reports it; otherwise its default rate.
    pub rate: Option<u32>,
    /// Seconds of audio the capture ring holds before samples are dropped (and counted).
    pub ring_seconds: f32,
}

impl Default for AudioProfile {
    fn default() -> Self {
        Self {
            device: None,
            rate: None,
            ring_seconds: 2.0,
        }
    }
}

impl Board {
    /// Parses and checks a profile; `origin` names it in messages.
    pub fn parse(text: &str, origin: &str) -> Result<Board, BoardError> {
        let board: Board = toml::from_str(text).map_err(|e| BoardError::Parse {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        board.validate().map_err(|message| BoardError::Invalid {
            origin: origin.to_string(),
            message,
        })?;
        Ok(board)
    }

    /// A file path, or a name: `boards/NAME.toml` in the usual places, else the built-in profile.
    pub fn load(name_or_path: &str) -> Result<Board, BoardError> {
        let looks_like_path = name_or_path.contains('/') || name_or_path.ends_with(".toml");
        if looks_like_path {
            let path = Path::new(name_or_path);
            let text = std::fs::read_to_string(path).map_err(|source| BoardError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            return Board::parse(&text, &path.display().to_string());
        }
        for dir in boards_dirs() {
            let path = dir.join(format!("{name_or_path}.toml"));
            if path.is_file() {
                let text = std::fs::read_to_string(&path).map_err(|source| BoardError::Io {
                    path: path.clone(),
                    source,
                })?;
                return Board::parse(&text, &path.display().to_string());
            }
        }
        match BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            Some((n, text)) => Board::parse(text, &format!("{n} (built in)")),
            None => Err(BoardError::Unknown(
                name_or_path.to_string(),
                BUILT_IN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// Every rule a profile must follow; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name: must not be empty".into());
        }
        let parts: Vec<&str> = self.target.split('-').collect();
        if parts.len() < 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "target: {:?} is not a target triple (e.g. aarch64-unknown-linux-gnu)",
                self.target
            ));
        }
        if !(1..=256).contains(&self.threads) {
            return Err(format!("threads: {} is outside 1..=256", self.threads));
        }
        if !(1..=100).contains(&self.top_k) {
            return Err(format!("top_k: {} is outside 1..=100", self.top_k));
        }
        if let Some(t) = self.threshold {
            if !t.is_finite() || !(-1.0..=1.0).contains(&t) {
                return Err(format!("threshold: {t} is not a cosine score in -1..=1"));
            }
        }
        if let Some(rate) = self.audio.rate {
            if !(8_000..=192_000).contains(&rate) {
                return Err(format!("audio.rate: {rate} Hz is outside 8000..=192000"));
            }
        }
        if self
            .audio
            .device
            .as_deref()
            .is_some_and(|d| d.trim().is_empty())
        {
            return Err(
                "audio.device: leave it out for the default input rather than empty".into(),
            );
        }
        let ring = self.audio.ring_seconds;
        if !ring.is_finite() || !(0.1..=60.0).contains(&ring) {
            return Err(format!("audio.ring_seconds: {ring} is outside 0.1..=60"));
        }
        self.endpoint.validate().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Whether this binary was built for the profile's architecture and OS.
    pub fn matches_this_build(&self) -> bool {
        let arch = self.target.split('-').next().unwrap_or("");
        arch == std::env::consts::ARCH && self.target.contains(std::env::consts::OS)
    }
}

/// Where `boards/NAME.toml` is looked for: `$VISUALBYTE_BOARDS`, `./boards`, next to the executable.
pub fn boards_dirs() -> Vec<PathBuf> {
    shipped_dirs("VISUALBYTE_BOARDS", "boards")
}

/// Where a folder shipped with the binary (`boards`, `models`) is looked for, in order: the folder
/// `$env_var` names, `./folder`, and next to the executable (`<exe dir>/folder`, `<exe dir>/../folder`).
pub fn shipped_dirs(env_var: &str, folder: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os(env_var) {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(PathBuf::from(folder));
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            dirs.push(dir.join(folder));
            dirs.push(dir.join(format!("../{folder}")));
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_profile_parses_and_names_itself() {
        for (name, text) in BUILT_IN {
            let board = Board::parse(text, name).unwrap();
            assert_eq!(board.name, *name);
            assert!(board.endpoint.validate().is_ok());
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_the_key_named() {
        let base = BUILT_IN[0].1;
        let extra = format!("{base}\ncolour = \"red\"\n");
        let msg = Board::parse(&extra, "t").unwrap_err().to_string();
        assert!(msg.contains("colour"), "{msg}");
        let nested = base.replace("[endpoint]", "[endpoint]\nhangover = 3");
        let msg = Board::parse(&nested, "t").unwrap_err().to_string();
        assert!(msg.contains("hangover"), "{msg}");
        let zero = base.replace("top_k = ", "top_k = 0 #");
        let msg = Board::parse(&zero, "t").unwrap_err().to_string();
        assert!(msg.contains("top_k"), "{msg}");
        let typed = base.replace("threads = ", "threads = \"four\" #");
        let msg = Board::parse(&typed, "t").unwrap_err().to_string();
        assert!(msg.contains("threads"), "{msg}");
    }

    #[test]
    fn unknown_board_names_list_the_known_ones() {
        let msg = Board::load("toaster").unwrap_err().to_string();
        assert!(
            msg.contains("rpi4") && msg.contains("jetson-orin-nano"),
            "{msg}"
        );
        assert!(Board::load("rpi5").is_ok());
    }
}
