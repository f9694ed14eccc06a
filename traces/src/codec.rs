//! The compression codec of a trace's column chunks.

use std::fmt;
use std::str::FromStr;

use parquet::basic::{Compression, ZstdLevel};

/// How a trace's columns are compressed. Every codec here is read by the
/// `parquet` crate, PyArrow, Polars and DuckDB alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// Snappy, the default: on text-heavy traces it writes as fast as LZ4
    /// with smaller files, and every Parquet reader knows it.
    #[default]
    Snappy,
    /// zstd level 3: the smallest files (about 2/3 of Snappy's), for about
    /// 1.4 times the CPU time of a whole conversion.
    Zstd,
    /// LZ4 (Parquet's `LZ4_RAW`): about as fast as Snappy, larger files here.
    Lz4,
    /// No compression: the least CPU, about 3 times Snappy's file size.
    None,
}

impl Codec {
    /// Every codec, in the order the help text lists them.
    pub const ALL: [Codec; 4] = [Codec::Snappy, Codec::Zstd, Codec::Lz4, Codec::None];

    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
            Codec::Snappy => "snappy",
            Codec::None => "none",
        }
    }

    /// The names of every codec, for command-line help.
    pub fn names() -> [&'static str; 4] {
        Codec::ALL.map(Codec::name)
    }

    /// The Parquet compression this codec writes.
    pub(crate) fn parquet(self) -> parquet::errors::Result<Compression> {
        Ok(match self {
            Codec::Lz4 => Compression::LZ4_RAW,
            Codec::Zstd => Compression::ZSTD(ZstdLevel::try_new(3)?),
            Codec::Snappy => Compression::SNAPPY,
            Codec::None => Compression::UNCOMPRESSED,
        })
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A codec name that is not one of [`Codec::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compression {given:?} (expected one of: {})", Codec::names().join(", "))]
pub struct UnknownCodec {
    pub given: String,
}

impl FromStr for Codec {
    type Err = UnknownCodec;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Codec::ALL
            .into_iter()
            .find(|c| c.name() == wanted)
            .ok_or_else(|| UnknownCodec {
                given: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for codec in Codec::ALL {
            assert_eq!(codec.name().parse::<Codec>(), Ok(codec));
        }
        assert_eq!(" ZSTD ".parse::<Codec>(), Ok(Codec::Zstd));
    }

    #[test]
    fn unknown_names_are_refused_with_the_choices() {
        let err = "gzip".parse::<Codec>().expect_err("gzip is not offered");
        assert_eq!(
            err.to_string(),
            "unknown compression \"gzip\" (expected one of: snappy, zstd, lz4, none)"
        );
    }

    #[test]
    fn each_codec_maps_to_its_parquet_codec() {
        let codecs: Vec<_> = Codec::ALL
            .into_iter()
            .map(|c| c.parquet().expect("valid level").to_string())
            .collect();
        assert_eq!(
            codecs,
            ["SNAPPY", "ZSTD(ZstdLevel(3))", "LZ4_RAW", "UNCOMPRESSED"]
        );
    }
}
